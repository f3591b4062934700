"""Property tests (hypothesis, derandomized): random layer stacks, widths 1..300, batch sizes 1..257, both
dtypes, every kernel table, 1 and 2 threads.

* forward and backward (dL/dx and every gradient) equal the float64 reference element by element, within
  the rounding a correct implementation can make (``rounding.py``: the error scale of each element,
  plus the ReLU-kink allowance); each model runs two batch sizes in a row, so buffers grow and shrink;
* ``fit(shuffle=False)`` equals ``reference.fit`` (parameters and per-epoch loss) for random stacks,
  losses and SGD settings. In float32 the stacks are smooth (no ReLU/LeakyReLU): over many steps a
  pre-activation within rounding of a kink would legitimately send training down another path.
"""

from __future__ import annotations

import numpy as np
import rounding
from hypothesis import given
from hypothesis import strategies as st
from reliability import (
    ACTIVATIONS,
    DTYPES,
    ISAS,
    SMOOTH_ACTIVATIONS,
    build,
    describe,
    in_width,
    kernel_set,
    out_width,
    property_settings,
    stacks,
    thread_count,
)

import neurocore as nc
import reference as ref
from conftest import assert_close, tol


@property_settings(160)
@given(desc=stacks(), dtype=st.sampled_from(DTYPES), isa=st.sampled_from(ISAS), threads=st.sampled_from([1, 2]),
       batches=st.lists(st.integers(1, 257), min_size=2, max_size=2), seed=st.integers(0, 2**32 - 1),
       x_scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_forward_backward_equal_reference(desc, dtype, isa, threads, batches, seed, x_scale):
    rng = np.random.default_rng(seed)
    with kernel_set(isa), thread_count(threads):
        model = build(desc, dtype, seed)
        specs = ref.layer_specs(model)
        for batch in batches:
            where = f"{describe(desc)} {dtype.name} {isa} threads={threads} batch={batch}"
            x = (x_scale * rng.standard_normal((batch, in_width(desc)))).astype(dtype)
            out = model.forward(x)
            assert out.dtype == dtype and out.shape == (batch, out_width(desc))
            fwd = rounding.forward_scales(specs, x)
            fwd_scales, cache = fwd
            expected = cache[-1][1]
            factor = rounding.comparison_factor(dtype, rounding.accumulation_length(specs, x))
            rounding.assert_matches(out, expected, dtype, fwd_scales[-1], factor, err_msg=f"forward {where}")

            gout = rng.standard_normal(out.shape).astype(dtype)
            gx = model.backward(gout)
            exp_gx, exp_grads = ref.seq_backward(specs, cache, gout)
            (d_scale, g_scales), (d_allow, g_allow) = rounding.backward_scales(specs, x, gout,
                                                                              tol(dtype) * factor, fwd)
            rounding.assert_matches(gx, exp_gx, dtype, d_scale, factor, d_allow, err_msg=f"dL/dx {where}")
            grads = model.gradients()
            assert len(grads) == len(exp_grads)
            for i, (g, e) in enumerate(zip(grads, exp_grads)):
                rounding.assert_matches(g, e, dtype, g_scales[i], factor, g_allow[i],
                                        err_msg=f"gradient {i} {where}")


@st.composite
def fit_cases(draw):
    dtype = draw(st.sampled_from(DTYPES))
    loss = draw(st.sampled_from(["mse", "cross_entropy", "bce_with_logits"]
                                + (["bce"] if dtype == np.float64 else [])))
    acts = SMOOTH_ACTIVATIONS if dtype == np.float32 else tuple(ACTIVATIONS)
    desc = draw(stacks(activations=acts))
    if loss == "bce":  # probabilities: the stack ends in a sigmoid
        desc = desc + [("sigmoid", None)]
    n = draw(st.integers(1, 80))
    batch = draw(st.integers(1, 257))
    epochs = draw(st.integers(1, 3))
    momentum = draw(st.sampled_from([0.0, 0.5, 0.9]))
    sgd = {"lr": draw(st.sampled_from([0.01, 0.05, 0.1])), "momentum": momentum,
           "nesterov": momentum > 0 and draw(st.booleans()),
           "weight_decay": draw(st.sampled_from([0.0, 1e-3, 0.1]))}
    return {"dtype": dtype, "loss": loss, "desc": desc, "n": n, "batch": batch, "epochs": epochs, "sgd": sgd,
            "isa": draw(st.sampled_from(ISAS)), "threads": draw(st.sampled_from([1, 2])),
            "seed": draw(st.integers(0, 2**32 - 1))}


def targets(loss, n, n_out, dtype, rng):
    if loss == "cross_entropy":
        return rng.integers(0, n_out, size=n)
    if loss == "mse":
        return rng.standard_normal((n, n_out)).astype(dtype)
    return rng.integers(0, 2, size=(n, n_out)).astype(dtype)


@property_settings(110)
@given(case=fit_cases())
def test_fit_without_shuffle_equals_reference_loop(case):
    dtype, loss, desc, n, batch, epochs, sgd = (case[k] for k in ("dtype", "loss", "desc", "n", "batch",
                                                                  "epochs", "sgd"))
    rng = np.random.default_rng(case["seed"])
    with kernel_set(case["isa"]), thread_count(case["threads"]):
        model = build(desc, dtype, case["seed"])
        x = rng.standard_normal((n, in_width(desc))).astype(dtype)
        y = targets(loss, n, out_width(desc), dtype, rng)
        specs0 = ref.layer_specs(model)
        hist = model.fit(x, y, loss=loss, optimizer=nc.SGD(**sgd), epochs=epochs, batch_size=batch,
                         shuffle=False, verbose=0)
    specs, ref_hist = ref.fit(specs0, x, y, loss, sgd["lr"], sgd["momentum"], sgd["nesterov"],
                              sgd["weight_decay"], epochs=epochs, batch_size=batch)
    steps = epochs * -(-n // batch)
    # every step adds rounding of the order of the forward/backward comparison above
    factor = rounding.comparison_factor(dtype, rounding.accumulation_length(specs0, x[:batch])) * steps ** 0.5
    where = (f"{describe(desc)} {dtype.name} {loss} n={n} batch={batch} epochs={epochs} {sgd} {case['isa']} "
             f"threads={case['threads']}")
    params = model.parameters()
    expected = ref.seq_params(specs)
    assert len(params) == len(expected)
    for i, (p, e) in enumerate(zip(params, expected)):
        assert_close(p, e, dtype, factor=factor, err_msg=f"parameter {i} {where}")
    assert len(hist["loss"]) == epochs
    np.testing.assert_allclose(hist["loss"], ref_hist, rtol=tol(dtype) * factor, atol=tol(dtype) * factor,
                               err_msg=where)
