#!/usr/bin/env bash
# Build neurocore with AddressSanitizer + UndefinedBehaviorSanitizer in its own venv and run the tests.
# Usage: bash tools/sanitize.sh [pytest args...]   (default: the whole suite)
#
# Environment:
#   NEUROCORE_HYPOTHESIS_SCALE  share of the property tests' examples to run (default 0.25 here: the
#                               instrumented build is several times slower; 1 runs them all)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-asan
python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet scikit-build-core pybind11 numpy tqdm pytest hypothesis
python -m pip install --quiet --no-build-isolation . \
  -Ccmake.define.NEUROCORE_SANITIZE=ON -Ccmake.build-type=RelWithDebInfo -Cbuild-dir=build/asan

# Python itself is not instrumented: the ASan runtime must be loaded first, and CPython's own
# allocations are not leak-checked (detect_leaks=0); the extension's memory errors are all caught.
# allocator_may_return_null=1: a failed huge allocation returns NULL (MemoryError in Python, as without
# ASan) instead of aborting; the tests of huge requests rely on that.
asan_lib=$(g++ -print-file-name=libasan.so)
ubsan_lib=$(g++ -print-file-name=libubsan.so)
export LD_PRELOAD="$asan_lib $ubsan_lib"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_init_order=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export NEUROCORE_HYPOTHESIS_SCALE="${NEUROCORE_HYPOTHESIS_SCALE:-0.25}"


start=$(date +%s)
python -m pytest -q -p no:cacheprovider "$@"
echo "sanitizer run: $(( $(date +%s) - start )) s of tests, hypothesis examples x${NEUROCORE_HYPOTHESIS_SCALE}"
