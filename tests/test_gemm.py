"""GEMM kernels (``nc._core.gemm``) vs the float64 reference and vs ``nc._core.reference_gemm``.

Every kernel table and 1/2 threads; the three forms of a dense layer (X@W, dY@W.T, X.T@dY,
plus both transposes), and shapes that hit every edge path of a blocked GEMM: 1, 2, 3,
micro-kernel sizes +-1 (MR=6; NR=16 float32 / 8 float64), block sizes +1 (KC=256, MC=72/168,
NC=2040/4080), primes and a batch of 1.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import neurocore as nc
import reference as ref
from conftest import assert_close

# (trans_a, trans_b): X@W, dY@W.T, X.T@dY, and A.T@B.T
FORMS = [(False, False), (False, True), (True, False), (True, True)]
FORM_IDS = ["NN", "NT", "TN", "TT"]

TINY = list(itertools.product([1, 2, 3], repeat=3))
# MR is 6 (avx2) / 8 (avx512) / 4 (baseline); NR is 16/32/8 (float32) and 8/16/4 (float64)
MICRO = [(m, n, k) for m in (3, 4, 5, 6, 7, 12, 13) for n in (3, 4, 5, 7, 8, 9, 15, 16, 17, 33) for k in (1, 5, 64)]
# KC = 256 (split into equal slices); MC = 64/72/128/144 (and 168 as in BLIS); NC = 2040/2048 (float64),
# 4080/4096 (float32); A read in place up to 16 column panels of C, B up to 64 rows of A
BLOCK = [
    (73, 17, 257),
    (65, 9, 255),
    (72, 16, 256),
    (129, 33, 257),
    (145, 5, 100),
    (169, 7, 513),
    (71, 97, 513),
    (7, 2041, 3),
    (7, 4081, 3),
    (145, 4081, 257),  # every block loop takes more than one trip at once
    (2, 3, 1031),  # long K, several KC panels
]
PRIMES = [(97, 131, 101), (131, 97, 257), (101, 103, 107)]
BATCH1 = [(1, 128, 784), (1, 1, 1), (1, 10, 128), (1, 4081, 5)]
SHAPES = {
    "tiny": TINY,
    "micro": MICRO,
    "block": BLOCK,
    "primes": PRIMES,
    "batch1": BATCH1,
}


def operands(rng, m, n, k, trans_a, trans_b, dtype):
    a_shape = (k, m) if trans_a else (m, k)
    b_shape = (n, k) if trans_b else (k, n)
    a = rng.standard_normal(a_shape).astype(dtype)
    b = rng.standard_normal(b_shape).astype(dtype)
    return a, b


def check_gemm(a, b, trans_a, trans_b, dtype, bias=None, activation="identity", alpha=0.01, label=""):
    got = nc._core.gemm(a, b, trans_a=trans_a, trans_b=trans_b, bias=bias, activation=activation, alpha=alpha)
    assert isinstance(got, np.ndarray)
    assert got.dtype == dtype, label
    expected = ref.gemm(a, b, trans_a, trans_b, bias, activation, alpha)
    scale = ref.gemm_error_scale(a, b, trans_a, trans_b, bias)
    if activation == "softmax":
        # a perturbation d of the logits moves p_i by at most ~2 p_i max|d|: bound by the row scale
        scale = np.broadcast_to(scale.max(axis=1, keepdims=True), scale.shape)
    assert_close(got, expected, dtype, scale=scale, err_msg=label)
    return got


@pytest.mark.parametrize("group", list(SHAPES))
@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
def test_gemm_shapes_vs_reference(isa, threads, dtype, form, group, rng):
    trans_a, trans_b = form
    for m, n, k in SHAPES[group]:
        a, b = operands(rng, m, n, k, trans_a, trans_b, dtype)
        check_gemm(a, b, trans_a, trans_b, dtype, label=f"{isa} {form} M={m} N={n} K={k}")


@pytest.mark.parametrize("form", FORMS, ids=FORM_IDS)
def test_gemm_matches_reference_gemm_hook(isa, dtype, form, rng):
    trans_a, trans_b = form
    for m, n, k in TINY[::5] + MICRO[::7] + BLOCK[:3] + PRIMES[:1]:
        a, b = operands(rng, m, n, k, trans_a, trans_b, dtype)
        bias = rng.standard_normal(n).astype(dtype)
        fast = nc._core.gemm(a, b, trans_a=trans_a, trans_b=trans_b, bias=bias, activation="tanh")
        slow = nc._core.reference_gemm(a, b, trans_a=trans_a, trans_b=trans_b, bias=bias, activation="tanh")
        assert slow.dtype == dtype
        expected = ref.gemm(a, b, trans_a, trans_b, bias, "tanh")
        scale = ref.gemm_error_scale(a, b, trans_a, trans_b, bias)
        label = f"M={m} N={n} K={k} {form}"
        assert_close(slow, expected, dtype, scale=scale, err_msg="reference_gemm " + label)
        # two correct float kernels differ by at most the sum of their rounding errors
        assert_close(fast, slow.astype(np.float64), dtype, scale=scale, factor=2.0, err_msg="gemm " + label)


EPILOGUE_SHAPES = [(1, 1, 1), (3, 2, 5), (7, 17, 9), (13, 33, 64), (73, 9, 257), (97, 131, 101), (5, 2041, 300),
                   (5, 4081, 3)]


@pytest.mark.parametrize("activation", ref.ACTIVATIONS)
def test_gemm_bias_activation_epilogue(isa, threads, dtype, activation, rng):
    alpha = 0.07
    for m, n, k in EPILOGUE_SHAPES:
        a, b = operands(rng, m, n, k, False, False, dtype)
        bias = rng.standard_normal(n).astype(dtype)
        got = check_gemm(a, b, False, False, dtype, bias=bias, activation=activation, alpha=alpha,
                         label=f"{activation} M={m} N={n} K={k}")
        if activation == "softmax":
            np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=0, atol=20 * np.finfo(dtype).eps * n)


@pytest.mark.parametrize("form", FORMS[1:], ids=FORM_IDS[1:])
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "leaky_relu"])
def test_gemm_epilogue_on_transposed_forms(isa, dtype, form, activation, rng):
    trans_a, trans_b = form
    for m, n, k in [(7, 17, 9), (73, 9, 257), (13, 33, 64)]:
        a, b = operands(rng, m, n, k, trans_a, trans_b, dtype)
        bias = rng.standard_normal(n).astype(dtype)
        check_gemm(a, b, trans_a, trans_b, dtype, bias=bias, activation=activation, alpha=0.2,
                   label=f"{activation} {form} M={m} N={n} K={k}")


def test_gemm_leaky_relu_alpha_is_used(isa, dtype, rng):
    a, b = operands(rng, 13, 17, 9, False, False, dtype)
    for alpha in (0.0, 0.01, 0.3):
        got = check_gemm(a, b, False, False, dtype, activation="leaky_relu", alpha=alpha, label=f"alpha={alpha}")
        c = ref.gemm(a, b)
        neg = c < 0
        assert neg.any()
        if alpha == 0.0:
            assert np.all(got[neg] == 0)


def test_gemm_exact_small_integers(isa, threads, dtype):
    # small integers are represented exactly: any correct kernel returns the exact product
    a = (np.arange(7 * 257).reshape(7, 257) % 5 - 2).astype(dtype)
    b = (np.arange(257 * 17).reshape(257, 17) % 7 - 3).astype(dtype)
    got = nc._core.gemm(a, b)
    exact = a.astype(np.int64) @ b.astype(np.int64)
    assert np.array_equal(got, exact.astype(dtype))


def test_gemm_rejects_bad_operands(dtype):
    a = np.ones((3, 4), dtype=dtype)
    with pytest.raises(ValueError, match=r"4|5|inner|shape|dimension"):
        nc._core.gemm(a, np.ones((5, 2), dtype=dtype))
    with pytest.raises(ValueError, match="bias"):
        nc._core.gemm(a, np.ones((4, 2), dtype=dtype), bias=np.ones(3, dtype=dtype))
    with pytest.raises(ValueError, match="swish"):
        nc._core.gemm(a, np.ones((4, 2), dtype=dtype), activation="swish")


def test_set_isa_and_cpu_info():
    info = nc.cpu_info()
    for key in ("isa", "isa_available", "features", "num_threads", "openmp", "compiler", "version"):
        assert key in info
    assert "baseline" in info["isa_available"]
    assert info["isa"] in info["isa_available"]
    assert info["num_threads"] == nc.get_num_threads()
    assert info["version"] == nc.__version__
    old = nc._core.get_isa()
    try:
        for name in info["isa_available"]:
            nc._core.set_isa(name)
            assert nc._core.get_isa() == name
        with pytest.raises(ValueError, match="no_such_isa"):
            nc._core.set_isa("no_such_isa")
        assert nc._core.get_isa() == info["isa_available"][-1]
    finally:
        nc._core.set_isa(old)


def test_isas_agree_closely(dtype, rng):
    """All kernel tables give results within rounding of each other."""
    a, b = operands(rng, 97, 131, 257, False, False, dtype)
    old = nc._core.get_isa()
    outs = {}
    try:
        for name in nc.cpu_info()["isa_available"]:
            nc._core.set_isa(name)
            outs[name] = nc._core.gemm(a, b)
    finally:
        nc._core.set_isa(old)
    scale = ref.gemm_error_scale(a, b)
    base = outs["baseline"].astype(np.float64)
    for name, out in outs.items():
        assert_close(out, base, dtype, scale=scale, factor=2.0, err_msg=name)


def test_isa_forced_by_environment():
    import os
    import subprocess
    import sys

    code = "import neurocore as nc; print(nc.cpu_info()['isa'])"
    env = dict(os.environ, NEUROCORE_ISA="baseline")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "baseline"
    # unforced, the widest automatic set: avx512 on Intel CPUs that have it, else avx2 where the CPU has it
    available = nc.cpu_info()["isa_available"]
    env.pop("NEUROCORE_ISA")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    try:
        with open("/proc/cpuinfo") as f:
            intel = "GenuineIntel" in f.read()
    except OSError:
        intel = False
    widest = "avx512" if intel and "avx512" in available else "avx2" if "avx2" in available else "baseline"
    assert out.stdout.strip() == widest
    if "avx512" in available:
        env["NEUROCORE_ISA"] = "avx512"
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "avx512"
    env["NEUROCORE_ISA"] = "no_such_isa"
    bad = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "NEUROCORE_ISA" in bad.stderr and "no_such_isa" in bad.stderr


@pytest.mark.parametrize("n,k", [(1, 1), (8, 3), (10, 128), (16, 300), (33, 257), (64, 40), (71, 9), (130, 1300), (200, 64)])
def test_one_row_alone_is_bitwise_the_same_as_inside_a_batch(isa, dtype, n, k):
    """A single input row takes the GEMV path; its sums run in the micro-kernel's order, so predict on one
    sample gives exactly the row it would get inside a batch (small and large batches, every epilogue)."""
    rng = np.random.default_rng(n * 1000 + k)
    b = rng.standard_normal((k, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    for m in (5, 70):  # 70 rows > the in-place-B limit: packed B
        a = rng.standard_normal((m, k)).astype(dtype)
        for act in ("identity", "relu", "tanh", "softmax"):
            full = nc._core.gemm(a, b, bias=bias, activation=act)
            for i in (0, m - 1):
                one = nc._core.gemm(a[i:i + 1], b, bias=bias, activation=act)
                assert np.array_equal(one[0], full[i]), (m, act, i)
