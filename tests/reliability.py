"""Shared pieces of the reliability tests (properties, garbage input, memory, threads, faults, numerics).

* ``examples(n)``: the hypothesis budget, scaled by ``NEUROCORE_HYPOTHESIS_SCALE`` (the sanitizer run
  uses a fraction of it); ``property_settings(n)`` is derandomized so that CI is reproducible.
* ``stacks()``: a hypothesis strategy for random layer stacks (descriptions), ``build`` makes a model of
  one with random weights *and* biases (zero biases would hide bias bugs).
* ``kernel_set`` / ``thread_count``: run a block on one kernel table / thread count, then restore.
* ``under_sanitizer()``: True inside ``tools/sanitize.sh`` (the ASan runtime is preloaded).
* ``rss_bytes()``: the resident set size of this process now (Linux ``/proc``), or None.
"""

from __future__ import annotations

import contextlib
import math
import os

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

import neurocore as nc

ISAS = list(nc.cpu_info()["isa_available"])
DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
ACTIVATIONS = {
    "identity": nc.Identity,
    "sigmoid": nc.Sigmoid,
    "tanh": nc.Tanh,
    "relu": nc.ReLU,
    "leaky_relu": nc.LeakyReLU,
    "softmax": nc.Softmax,
}
SMOOTH_ACTIVATIONS = ("identity", "sigmoid", "tanh", "softmax")


def examples(n: int) -> int:
    """``n`` hypothesis examples, times ``NEUROCORE_HYPOTHESIS_SCALE`` (default 1), at least 5."""
    scale = float(os.environ.get("NEUROCORE_HYPOTHESIS_SCALE", "1"))
    return max(5, round(n * scale))


def property_settings(n: int) -> settings:
    """Derandomized (the same examples on every run), no example database, no per-example deadline.
    ``NEUROCORE_HYPOTHESIS_RANDOM=1`` draws fresh examples instead (to explore beyond CI's fixed set)."""
    explore = os.environ.get("NEUROCORE_HYPOTHESIS_RANDOM") == "1"
    return settings(max_examples=examples(n), deadline=None, derandomize=not explore, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                    print_blob=False)


def under_sanitizer() -> bool:
    return "libasan" in os.environ.get("LD_PRELOAD", "")


def rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def kernel_set(isa: str):
    old = nc._core.get_isa()
    nc._core.set_isa(isa)
    try:
        yield
    finally:
        nc._core.set_isa(old)


@contextlib.contextmanager
def thread_count(n: int):
    old = nc.get_num_threads()
    nc.set_num_threads(n)
    try:
        yield
    finally:
        nc.set_num_threads(old)


@st.composite
def stacks(draw, max_dense=3, max_width=300, activations=tuple(ACTIVATIONS), leading=True):
    """A layer stack as a list of ("dense", in, out, bias) and (activation, alpha) tuples: 1..max_dense
    Dense layers of widths 1..max_width, each followed by 0..2 activations; sometimes one in front."""
    n_dense = draw(st.integers(1, max_dense))
    widths = [draw(st.integers(1, max_width)) for _ in range(n_dense + 1)]

    def activation():
        name = draw(st.sampled_from(activations))
        return (name, draw(st.sampled_from([0.01, 0.3])) if name == "leaky_relu" else None)

    desc = []
    if leading and draw(st.integers(0, 7)) == 0:
        desc.append(activation())
    for i in range(n_dense):
        desc.append(("dense", widths[i], widths[i + 1], draw(st.booleans())))
        for _ in range(draw(st.sampled_from([0, 1, 1, 2]))):
            desc.append(activation())
    return desc


def in_width(desc) -> int:
    return next(d[1] for d in desc if d[0] == "dense")


def out_width(desc) -> int:
    return [d[2] for d in desc if d[0] == "dense"][-1]


def make_layers(desc):
    layers = []
    for d in desc:
        if d[0] == "dense":
            layers.append(nc.Dense(d[1], d[2], bias=d[3]))
        elif d[0] == "leaky_relu":
            layers.append(nc.LeakyReLU(alpha=d[1]))
        else:
            layers.append(ACTIVATIONS[d[0]]())
    return layers


def build(desc, dtype, seed: int):
    """A model of ``desc`` whose weights are N(0, 1/fan_in) and biases N(0, 0.25), from ``seed``."""
    model = nc.Sequential(make_layers(desc), dtype=np.dtype(dtype).name, seed=0)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, nc.Dense):
            layer.weight[...] = rng.standard_normal(layer.weight.shape) / math.sqrt(layer.in_features)
            if layer.bias is not None:
                layer.bias[...] = 0.5 * rng.standard_normal(layer.bias.shape)
    return model


def describe(desc) -> str:
    parts = []
    for d in desc:
        if d[0] == "dense":
            parts.append(f"Dense({d[1]},{d[2]}{'' if d[3] else ',nobias'})")
        else:
            parts.append(d[0] if d[1] is None else f"{d[0]}({d[1]})")
    return " > ".join(parts)


def replay_steps(model, x, y, loss, optimizer, batch_size, n_steps, probe=None):
    """Train ``model`` one step at a time, as ``fit(shuffle=False)`` visits the batches (one fit call per
    batch, the same optimizer throughout), and return the parameters after each step (index 0: before
    any step) and, with ``probe``, ``model.predict(probe)`` at each of those points."""
    n = len(x)
    per_epoch = -(-n // batch_size)
    states = [[p.copy() for p in model.parameters()]]
    outputs = [model.predict(probe)] if probe is not None else None
    for k in range(n_steps):
        j = k % per_epoch
        rows = slice(j * batch_size, min(n, (j + 1) * batch_size))
        model.fit(x[rows], y[rows], loss=loss, optimizer=optimizer, epochs=1, batch_size=batch_size,
                  shuffle=False, verbose=0)
        states.append([p.copy() for p in model.parameters()])
        if probe is not None:
            outputs.append(model.predict(probe))
    return states, outputs


def state_index(params, states):
    """The index of the state in ``states`` that ``params`` equals bitwise, or None."""
    for k, state in enumerate(states):
        if all(np.array_equal(a, b) for a, b in zip(params, state)):
            return k
    return None
