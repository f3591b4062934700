"""Garbage for every public argument of the API contract: a ValueError/TypeError/OverflowError (OSError for
file paths, MemoryError for sizes) and an unchanged model -- never a crash, never another exception.

Two sources of garbage:

* tables: every argument gets a pool of wrong values (wrong types, NaN/inf, negative, huge integers past
  int64, empty containers, arbitrary objects; for arrays: wrong ndim/shape/dtype, empty, NaN, inf,
  values beyond float32, ragged lists, ...). Values the contract calls valid are listed per argument
  and skipped, except that valid *layouts* of an array (Fortran order, strided views, other real dtypes,
  read-only, nested lists) must give exactly the result of the canonical C-contiguous array.
* hypothesis: random arrays (random ndim 0..3, sizes 0..6 or the expected ones, random dtypes, special
  values) thrown at every array argument.

"Unchanged" means: parameters and gradients bitwise equal, the same optimizer object and state, and the
forward kept for backward still usable (backward after the rejected call gives the same results).
"""

from __future__ import annotations

import math
import os
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from reliability import property_settings

import neurocore as nc
import reference as ref
from conftest import assert_close

ALLOWED = (ValueError, TypeError, OverflowError)
IN, HIDDEN, OUT, N = 4, 5, 3, 6


class _Opaque:
    def __repr__(self):
        return "<opaque object>"


class OwnError(Exception):
    """Raised by the caller's own broken object: the library may let it through or turn it into TypeError."""


class _BadArray:
    """array-like whose conversion blows up."""

    def __array__(self, *args, **kwargs):
        raise OwnError("no array for you")

    def __len__(self):
        return 3

    def __repr__(self):
        return "<_BadArray>"


SCALARS = [
    ("None", None), ("True", True), ("False", False), ("''", ""), ("'3'", "3"), ("b'3'", b"3"),
    ("3j", 3j), ("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf), ("1e308", 1e308),
    ("-1e308", -1e308), ("-1", -1), ("0", 0), ("0.5", 0.5), ("-0.5", -0.5), ("2**63", 2**63),
    ("2**64", 2**64), ("-2**63-1", -2**63 - 1), ("10**100", 10**100), ("[]", []), ("[3]", [3]),
    ("(3,)", (3,)), ("{}", {}), ("object()", _Opaque()), ("np.nan", np.float64("nan")),
    ("np.int64(-5)", np.int64(-5)), ("np.uint64(max)", np.uint64(2**64 - 1)),
    ("np.array([1, 2])", np.array([1, 2])), ("np.array([])", np.array([])), ("Fraction(1, 3)", Fraction(1, 3)),
    ("slice", slice(None)), ("lambda", lambda: 3), ("type", int), ("Ellipsis", ...),
]


# --------------------------------------------------------------------------- the model under attack
class Ctx:
    """A small float32/float64 model with a kept forward and known backward results."""

    def __init__(self, dtype="float32", loss="cross_entropy"):
        rng = np.random.default_rng(0)
        self.model = nc.Sequential([nc.Dense(IN, HIDDEN), nc.ReLU(), nc.Dense(HIDDEN, OUT)], dtype=dtype, seed=1)
        for layer in self.model.layers:
            if isinstance(layer, nc.Dense):
                layer.bias[...] = rng.standard_normal(layer.bias.shape)
        self.dtype = np.dtype(dtype)
        self.x = rng.standard_normal((N, IN)).astype(self.dtype)
        self.labels = np.array([0, 1, 2, 1, 0, 2])
        self.targets = rng.standard_normal((N, OUT)).astype(self.dtype)
        self.probs = rng.uniform(0.1, 0.9, (N, OUT)).astype(self.dtype)
        self.binary = rng.integers(0, 2, (N, OUT)).astype(self.dtype)
        self.gout = rng.standard_normal((N, OUT)).astype(self.dtype)
        self.model.fit(self.x, self.labels, optimizer=nc.SGD(lr=0.1, momentum=0.9), epochs=1, batch_size=4,
                       seed=0, verbose=0)  # the model has an optimizer with state
        self.model.forward(self.x)
        self.gx = self.model.backward(self.gout)
        self.snapshot()

    def snapshot(self):
        m = self.model
        self.params = [p.copy() for p in m.parameters()]
        self.grads = [g.copy() for g in m.gradients()]
        self.optimizer = m.optimizer
        self.opt_state = {k: v.copy() for k, v in m.optimizer.state_arrays().items()}

    def changes(self, check_forward=True):
        """What differs from the snapshot (empty list: unchanged)."""
        m, out = self.model, []
        for i, (a, b) in enumerate(zip(m.parameters(), self.params)):
            if not np.array_equal(a, b, equal_nan=True):
                out.append(f"parameter {i} changed")
        for i, (a, b) in enumerate(zip(m.gradients(), self.grads)):
            if not np.array_equal(a, b, equal_nan=True):
                out.append(f"gradient {i} changed")
        if m.optimizer is not self.optimizer:
            out.append(f"model.optimizer replaced by {m.optimizer!r}")
        else:
            for k, v in m.optimizer.state_arrays().items():
                if k not in self.opt_state or not np.array_equal(v, self.opt_state[k], equal_nan=True):
                    out.append(f"optimizer state {k!r} changed")
        if not out and check_forward:  # the kept forward must survive a rejected call
            try:
                gx = m.backward(self.gout)
            except Exception as exc:
                out.append(f"backward after the rejected call fails: {type(exc).__name__}: {exc}")
            else:
                if not np.array_equal(gx, self.gx):
                    out.append("backward after the rejected call gives another dL/dx")
                elif any(not np.array_equal(a, b) for a, b in zip(m.gradients(), self.grads)):
                    out.append("backward after the rejected call gives other gradients")
        return out


def attempt(ctx, call, extra_allowed=()):
    """Run call(); returns ("rejected", None) / ("accepted", result) / ("bad", description)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a warning on the way (e.g. NumPy's overflow in a cast) is not a crash
        try:
            result = call()
        except ALLOWED + (OwnError,) + tuple(extra_allowed) as exc:
            if not str(exc):
                return "bad", f"{type(exc).__name__} with an empty message"
            if ctx is not None:
                # fit may have run a step before a loss overflowed: no kept forward to check then
                changed = ctx.changes(check_forward=not isinstance(exc, FloatingPointError))
                if changed:
                    return "bad", f"{type(exc).__name__}({exc}) but " + "; ".join(changed)
            return "rejected", None
        except BaseException as exc:
            return "bad", f"{type(exc).__name__}: {str(exc)[:200]}"
    return "accepted", result


def run_table(name, values, make_call, valid=(), *, dtype="float32", extra_allowed=()):
    """Try every (label, value); returns the list of misbehaviours and the count of values tried."""
    problems, tried = [], 0
    for label, value in values:
        ctx = Ctx(dtype)
        tried += 1
        outcome, info = attempt(ctx, make_call(ctx, value), extra_allowed)
        if outcome == "bad":
            problems.append(f"{name}={label}: {info}")
        elif outcome == "accepted" and label not in valid:
            problems.append(f"{name}={label}: accepted (garbage should be refused)")
    return problems, tried


TRIED = {"table": 0}


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    """With NEUROCORE_REPORT_COUNTS=1 (and -s), print how many garbage values were tried."""
    yield
    if os.environ.get("NEUROCORE_REPORT_COUNTS"):
        print(f"\ngarbage values tried: {TRIED['table']} from the tables; hypothesis: {HYPOTHESIS_COUNTS}")


def check(name, values, make_call, valid=(), **kw):
    problems, tried = run_table(name, values, make_call, valid, **kw)
    TRIED["table"] += tried
    assert not problems, f"{len(problems)} of {tried} garbage values misbehaved:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- scalar arguments
HUGE = ("2**63", "2**64", "10**100", "np.uint64(max)")
# scale=: None or a finite non-zero number (a (mean, std) pair is tried in tests/test_memmap.py)
SCALE_OK = ("None", "0.5", "-0.5", "-1", "1e308", "-1e308", "-2**63-1", "Fraction(1, 3)", "np.int64(-5)",
            "np.uint64(max)") + HUGE
# name: (labels of SCALARS that are valid for it, make_call(ctx, value), further allowed exceptions).
# Valid values may be accepted or refused; everything else must be refused.
SCALAR_CASES = {
    "Dense(in_features)": ((), lambda c, v: lambda: nc.Sequential([nc.Dense(v, 3)]), (MemoryError,)),
    "Dense(out_features)": ((), lambda c, v: lambda: nc.Sequential([nc.Dense(3, v)]), (MemoryError,)),
    "Dense(bias)": (("True", "False"), lambda c, v: lambda: nc.Sequential([nc.Dense(3, 2, bias=v)]), ()),
    "Dense(init)": (("None",), lambda c, v: lambda: nc.Sequential([nc.Dense(3, 2, init=v)]), ()),
    "LeakyReLU(alpha)": (("0", "0.5", "Fraction(1, 3)"), lambda c, v: lambda: nc.LeakyReLU(alpha=v), ()),
    "Sequential(layers)": ((), lambda c, v: lambda: nc.Sequential(v), ()),
    # np.dtype(None) and np.dtype(<a float64 scalar>) are float64
    "Sequential(dtype)": (("None", "np.nan"), lambda c, v: lambda: nc.Sequential([nc.Dense(3, 2)], dtype=v), ()),
    "Sequential(seed)": (("None", "0") + HUGE, lambda c, v: lambda: nc.Sequential([nc.Dense(3, 2)], seed=v), ()),
    "forward(training)": (("True", "False"), lambda c, v: lambda: c.model.forward(c.x, training=v), ()),
    "predict(batch_size)": (HUGE, lambda c, v: lambda: c.model.predict(c.x, batch_size=v), ()),
    "evaluate(batch_size)": (HUGE, lambda c, v: lambda: c.model.evaluate(c.x, c.labels, batch_size=v), ()),
    "evaluate(loss)": ((), lambda c, v: lambda: c.model.evaluate(c.x, c.labels, loss=v), ()),
    "fit(loss)": ((), lambda c, v: lambda: c.model.fit(c.x, c.labels, loss=v, verbose=0), ()),
    "fit(optimizer)": (("None",), lambda c, v: lambda: c.model.fit(c.x, c.labels, optimizer=v, verbose=0), ()),
    "fit(epochs)": (("0",), lambda c, v: lambda: c.model.fit(c.x, c.labels, epochs=v, verbose=0), ()),
    "fit(batch_size)": (HUGE, lambda c, v: lambda: c.model.fit(c.x, c.labels, batch_size=v, verbose=0), ()),
    "fit(shuffle)": (("True", "False"), lambda c, v: lambda: c.model.fit(c.x, c.labels, shuffle=v, verbose=0), ()),
    "fit(seed)": (("None", "0") + HUGE, lambda c, v: lambda: c.model.fit(c.x, c.labels, seed=v, verbose=0), ()),
    "fit(validation_data)": (("None",),
                             lambda c, v: lambda: c.model.fit(c.x, c.labels, validation_data=v, verbose=0), ()),
    "fit(verbose)": (("0",) + HUGE, lambda c, v: lambda: c.model.fit(c.x, c.labels, verbose=v), ()),
    "fit(on_nonfinite)": ((), lambda c, v: lambda: c.model.fit(c.x, c.labels, on_nonfinite=v, verbose=0), ()),
    "fit(scale)": (SCALE_OK, lambda c, v: lambda: c.model.fit(c.x, c.labels, scale=v, verbose=0), (FloatingPointError,)),
    "predict(scale)": (SCALE_OK, lambda c, v: lambda: c.model.predict(c.x, scale=v), ()),
    "evaluate(scale)": (SCALE_OK, lambda c, v: lambda: c.model.evaluate(c.x, c.labels, scale=v), ()),
    "fit(distributed)": (("None",), lambda c, v: lambda: c.model.fit(c.x, c.labels, distributed=v, verbose=0), ()),
    "fit(sharded)": (("False",), lambda c, v: lambda: c.model.fit(c.x, c.labels, sharded=v, verbose=0), ()),
    "SGD(lr)": (("0.5", "1e308", "Fraction(1, 3)") + HUGE, lambda c, v: lambda: nc.SGD(lr=v), ()),
    "SGD(momentum)": (("0", "0.5", "Fraction(1, 3)"), lambda c, v: lambda: nc.SGD(lr=0.1, momentum=v), ()),
    "SGD(nesterov)": (("False",), lambda c, v: lambda: nc.SGD(lr=0.1, nesterov=v), ()),
    "SGD(decay_bias)": (("True", "False"), lambda c, v: lambda: nc.SGD(lr=0.1, decay_bias=v), ()),
    "Adam(decay_bias)": (("True", "False"), lambda c, v: lambda: nc.Adam(decay_bias=v), ()),
    "SGD(weight_decay)": (("0", "0.5", "1e308", "Fraction(1, 3)") + HUGE, lambda c, v: lambda: nc.SGD(lr=0.1, weight_decay=v), ()),
    "SGD.step(model)": ((), lambda c, v: lambda: nc.SGD(lr=0.1).step(v), ()),
    "set_num_threads(n)": ((), lambda c, v: lambda: nc.set_num_threads(v), ()),
    "load_state_dict(state)": ((), lambda c, v: lambda: c.model.load_state_dict(v), ()),
    "load_state_dict(state[name])": ((), lambda c, v: lambda: c.model.load_state_dict(
        {**c.model.state_dict(), "layers.0.bias": v}), ()),
}
# Not tried: huge epochs (valid: it would train for ever).
EXCLUDED = {"fit(epochs)": HUGE}


@pytest.mark.parametrize("name", list(SCALAR_CASES))
def test_scalar_argument_garbage(name):
    valid, make_call, extra = SCALAR_CASES[name]
    pool = [(label, v) for label, v in SCALARS if label not in EXCLUDED.get(name, ())]
    old = nc.get_num_threads()
    try:
        check(name, pool, make_call, valid, extra_allowed=extra)
    finally:
        nc.set_num_threads(old)


def test_save_include_optimizer_garbage(tmp_path):
    target = str(tmp_path / "m.npz")
    check("save(include_optimizer)", SCALARS, lambda c, v: lambda: c.model.save(target, include_optimizer=v),
          ("True", "False"))


def test_set_num_threads_garbage_leaves_the_count():
    old = nc.get_num_threads()
    try:
        for label, v in SCALARS:
            outcome, _ = attempt(None, lambda v=v: nc.set_num_threads(v))
            if outcome == "rejected":
                assert nc.get_num_threads() == old, f"set_num_threads({label}) refused but changed the count"
            nc.set_num_threads(old)
    finally:
        nc.set_num_threads(old)


def test_layer_lists_garbage():
    d = nc.Dense(3, 2)
    pools = [
        ("[None]", [None]), ("[Dense class]", [nc.Dense]), ("[ReLU] only", [nc.ReLU()]), ("[[Dense]]", [[nc.Dense(3, 2)]]),
        ("[d, d]", [d, d]), ("non-chaining", [nc.Dense(3, 2), nc.Dense(3, 2)]), ("['dense']", ["dense"]),
        ("[Loss]", [nc.MSELoss()]), ("[SGD]", [nc.SGD()]), ("generator of junk", (i for i in range(3))),
        ("str", "Dense"), ("Dense instance", nc.Dense(3, 2)), ("dict of junk", {1: 2}), ("bytes", b"ab"),
    ]
    check("Sequential(layers)", pools, lambda c, v: lambda: nc.Sequential(v))


def test_reusing_a_layer_of_another_model_never_harms_that_model():
    """Refused, or copied with its arrays: either way the first model keeps its own memory and values."""
    a = nc.Sequential([nc.Dense(3, 2)], seed=0)
    before = a.layers[0].weight.copy()
    x = np.ones((1, 3))
    out = a.predict(x)
    try:
        b = nc.Sequential([a.layers[0]])
    except ALLOWED:
        pass
    else:
        assert np.array_equal(b.layers[0].weight, before)
        b.layers[0].weight[...] = 7.0
        b.fit(np.ones((4, 3)), np.array([0, 1, 0, 1]), epochs=2, verbose=0)
    assert np.array_equal(a.layers[0].weight, before)
    assert np.array_equal(a.predict(x), out)


# --------------------------------------------------------------------------- array arguments
def array_pool(shape, dtype, kind, any_rows=False):
    """Garbage for an argument expecting an array of `shape`; kind is "matrix" (2-D), "labels" ((n,) class
    indices) or "vector" ((n,) reals). Returns (good, bad, extreme, layouts):
    bad must be refused; extreme holds NaN/inf/beyond-float32 values of the right shape; layouts are
    (label, value, how) valid spellings of `good` ("same": the same values, compare with the C-contiguous
    copy; "cast": other dtypes, compare with the values cast to the model's dtype)."""
    rng = np.random.default_rng(7)
    n = shape[0]
    if kind == "labels":
        good = rng.integers(0, OUT, n)
    elif kind == "probs":
        good = rng.uniform(0, 1, shape).astype(dtype)
    else:
        good = rng.standard_normal(shape).astype(dtype)
    bad = [
        ("0-d", np.array(1.0)), ("scalar 1.0", 1.0), ("None", None), ("str", "abc"), ("bytes", b"abcd"),
        ("object array", good.astype(object)), ("str array", good.astype(str)),
        ("complex array", good.astype(np.complex128)), ("datetime array", np.zeros(shape, "M8[s]")),
        ("timedelta array", np.zeros(shape, "m8[s]")), ("structured array", np.zeros(shape, "f4,f4")),
        ("3-d", good[..., None, None]),
        ("ragged list", [[1.0, 2.0], [3.0]]), ("nested list of str", [["a"] * 2] * n),
        ("dict", {"a": good}), ("set", {1, 2}), ("bad __array__", _BadArray()), ("object()", _Opaque()),
    ]
    if not any_rows:  # the rows must match another argument's
        bad += [("empty", np.zeros((0,) + shape[1:], dtype)), ("one row more", np.concatenate([good, good[:1]])),
                ("one row less", good[:-1])]
    if kind in ("matrix", "probs"):
        bad += [("1-d", good[0]), ("one column more", np.hstack([good, good[:, :1]])),
                ("one column less", good[:, :-1]), ("zero columns", np.zeros((n, 0), dtype)),
                ("transposed", np.ascontiguousarray(good.T)), ("flattened", good.reshape(-1))]
    else:
        bad += [("2-d column", good[:, None]), ("2-d row", good[None, :])]
    extreme = [("NaN", np.full(shape, np.nan)), ("inf", np.full(shape, np.inf)), ("-inf", np.full(shape, -np.inf)),
               ("one NaN", _with(good.astype(np.float64), np.nan)), ("1e300", np.full(shape, 1e300)),
               ("1e39", np.full(shape, 1e39))]
    layouts = [("list", good.tolist(), "same"), ("read-only", _readonly(good), "same"),
               ("strided view", _strided(good), "same"), ("negative strides", good[::-1][::-1], "same")]
    if kind in ("matrix", "probs"):
        layouts += [("Fortran order", np.asfortranarray(good), "same"),
                    ("column-reversed view", np.ascontiguousarray(good[:, ::-1])[:, ::-1], "same")]
    if kind == "labels":
        layouts += [("int8", good.astype(np.int8), "same"), ("uint64", good.astype(np.uint64), "same"),
                    ("integer-valued floats", good.astype(np.float64), "same")]
    else:
        other = np.float64 if dtype == np.float32 else np.float32
        layouts += [("float16", good.astype(np.float16), "cast"), ("int8", np.round(good).astype(np.int8), "cast"),
                    ("bool", good > 0, "cast"), ("other float dtype", good.astype(other), "cast"),
                    ("uint64", np.abs(np.round(good)).astype(np.uint64), "cast"),
                    ("int list", np.round(good).astype(int).tolist(), "cast")]
    return good, bad, extreme, layouts


def _with(a, value):
    a = a.copy()
    a.flat[a.size // 2] = value
    return a


def _readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _strided(a):
    wide = np.zeros((a.shape[0] * 2,) + a.shape[1:], a.dtype)
    wide[::2] = a
    return wide[::2]


# name: (shape, kind, extreme values accepted?, model dtype decides the arithmetic?, make_call(ctx, value))
ARRAY_CASES = {
    "forward(x)": ((N, IN), "matrix", True, True, lambda c, v: lambda: c.model.forward(v)),
    "predict(x)": ((N, IN), "matrix", True, True, lambda c, v: lambda: c.model.predict(v)),
    "backward(grad_output)": ((N, OUT), "matrix", True, True, lambda c, v: lambda: c.model.backward(v)),
    "evaluate(x)": ((N, IN), "matrix", True, True, lambda c, v: lambda: c.model.evaluate(v, c.labels)),
    "evaluate(y labels)": ((N,), "labels", False, True, lambda c, v: lambda: c.model.evaluate(c.x, v)),
    "evaluate(y mse)": ((N, OUT), "matrix", False, True, lambda c, v: lambda: c.model.evaluate(c.x, v, loss="mse")),
    "fit(x)": ((N, IN), "matrix", False, True, lambda c, v: lambda: c.model.fit(v, c.labels, seed=0, verbose=0)),
    "fit(y labels)": ((N,), "labels", False, True, lambda c, v: lambda: c.model.fit(c.x, v, seed=0, verbose=0)),
    "fit(y mse)": ((N, OUT), "matrix", False, True, lambda c, v: lambda: c.model.fit(c.x, v, loss="mse", seed=0, verbose=0)),
    "fit(y bce_with_logits)": ((N, OUT), "probs", False, True,
                               lambda c, v: lambda: c.model.fit(c.x, v, loss="bce_with_logits", seed=0, verbose=0)),
    "fit(validation x)": ((N, IN), "matrix", False, True,
                          lambda c, v: lambda: c.model.fit(c.x, c.labels, validation_data=(v, c.labels), seed=0, verbose=0)),
    "fit(validation y)": ((N,), "labels", False, True,
                          lambda c, v: lambda: c.model.fit(c.x, c.labels, validation_data=(c.x, v), seed=0, verbose=0)),
    "MSELoss(output)": ((N, OUT), "matrix", True, False, lambda c, v: lambda: nc.MSELoss()(v, c.targets)),
    "MSELoss(target)": ((N, OUT), "matrix", False, True, lambda c, v: lambda: nc.MSELoss()(c.targets, v)),
    "CrossEntropyLoss(output)": ((N, OUT), "matrix", True, False,
                                 lambda c, v: lambda: nc.CrossEntropyLoss()(v, c.labels)),
    "CrossEntropyLoss(labels)": ((N,), "labels", False, True, lambda c, v: lambda: nc.CrossEntropyLoss()(c.targets, v)),
    "BCEWithLogitsLoss(output)": ((N, OUT), "matrix", True, False,
                                  lambda c, v: lambda: nc.BCEWithLogitsLoss()(v, c.binary)),
    "BCEWithLogitsLoss(target)": ((N, OUT), "probs", False, True,
                                  lambda c, v: lambda: nc.BCEWithLogitsLoss()(c.targets, v)),
    "BCELoss(target)": ((N, OUT), "probs", False, True, lambda c, v: lambda: nc.BCELoss()(c.probs, v)),
    "Dense.weight = value": ((IN, HIDDEN), "matrix", True, True,
                             lambda c, v: lambda: setattr(c.model.layers[0], "weight", v)),
    "Dense.bias = value": ((HIDDEN,), "vector", True, True, lambda c, v: lambda: setattr(c.model.layers[0], "bias", v)),
}
# any number of rows is fine for these (no other argument to match); forward needs one row at least
ANY_ROWS = ("forward(x)", "predict(x)")
FIT_ALLOWED = (FloatingPointError,)  # finite data whose loss overflows: documented, and the model is unchanged


def _label_garbage():
    return [("negative label", np.array([0, 1, -1, 1, 0, 2])), ("label = n_classes", np.array([0, 1, OUT, 1, 0, 2])),
            ("huge label", np.array([0, 1, 2**62, 1, 0, 2])), ("non-integer label", np.array([0, 1, 1.5, 1, 0, 2])),
            ("label 1e300", np.array([0, 1, 1e300, 1, 0, 2])), ("NaN label", np.array([0, 1, np.nan, 1, 0, 2])),
            ("inf label", np.array([0, 1, np.inf, 1, 0, 2])), ("bool labels", np.array([True, False] * 3)),
            ("uint64 max label", np.array([0, 1, 2**64 - 1, 1, 0, 2], np.uint64))]


def _garbage_for(name, dtype):
    shape, kind, extreme_ok, _, _ = ARRAY_CASES[name]
    good, bad, extreme, layouts = array_pool(shape, np.dtype(dtype), kind, any_rows=name in ANY_ROWS)
    pool = list(bad) + list(extreme)
    if kind == "labels":
        pool += _label_garbage()
    if name.startswith(("BCELoss(target", "BCEWithLogitsLoss(target", "fit(y bce")):
        pool += [("target -0.5", np.full(shape, -0.5)), ("target 1.5", np.full(shape, 1.5))]
    if name == "forward(x)":
        pool.append(("empty", np.zeros((0, IN), dtype)))
    valid = {label for label, _ in extreme} if extreme_ok else set()
    if name == "CrossEntropyLoss(output)":
        valid.add("one column more")  # more classes than the labels use: fine
    if dtype == "float64" and kind != "labels":
        valid |= {"1e300", "1e39"}  # finite in float64
    return good, pool, valid, layouts


@pytest.mark.parametrize("name", list(ARRAY_CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_array_argument_garbage(name, dtype):
    make_call = ARRAY_CASES[name][-1]
    _, pool, valid, _ = _garbage_for(name, dtype)
    check(name, pool, make_call, valid, dtype=dtype, extra_allowed=FIT_ALLOWED if name.startswith("fit") else ())


@pytest.mark.parametrize("name", list(ARRAY_CASES))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_valid_array_layouts_give_the_canonical_result(name, dtype):
    """Strides, order, read-only, nested lists give bitwise the C-contiguous array's result; other real
    dtypes give the result of the values cast to the model's dtype. For fit and assignments, the
    resulting parameters are compared."""
    _, kind, _, model_dtype, make_call = ARRAY_CASES[name]
    good, _, _, layouts = _garbage_for(name, dtype)
    for label, value, how in layouts:
        if how == "cast" and not model_dtype:
            continue  # a loss computes in its output's dtype: another dtype is another computation
        if kind == "labels":
            canonical = good
        elif how == "same":
            canonical = np.ascontiguousarray(np.asarray(value))
        else:
            canonical = np.asarray(value).astype(dtype)
        ref_ctx, ctx = Ctx(dtype), Ctx(dtype)
        expected = make_call(ref_ctx, canonical)()
        outcome, got = attempt(ctx, make_call(ctx, value))
        assert outcome == "accepted", f"{name}={label}: {got or 'refused a valid array'}"
        _assert_same(got, expected, f"{name}={label}")
        for i, (a, b) in enumerate(zip(ctx.model.parameters(), ref_ctx.model.parameters())):
            assert np.array_equal(a, b), f"{name}={label}: parameter {i} differs from the canonical call's"


def _assert_same(got, expected, where):
    if isinstance(expected, dict):
        assert got.keys() == expected.keys(), where
        for k in expected:
            _assert_same(got[k], expected[k], f"{where} [{k}]")
    elif isinstance(expected, (tuple, list)):
        assert len(got) == len(expected), where
        for a, b in zip(got, expected):
            _assert_same(a, b, where)
    elif isinstance(expected, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == expected.dtype, f"{where}: {got!r}"
        assert np.array_equal(got, expected, equal_nan=True), f"{where}: result differs from the canonical array's"
    elif expected is None:
        assert got is None, where
    else:
        assert got == expected or (math.isnan(got) and math.isnan(expected)), f"{where}: {got} != {expected}"


# --------------------------------------------------------------------------- files
def test_save_and_load_path_garbage(tmp_path):
    (tmp_path / "junk.npz").write_bytes(os.urandom(300))
    (tmp_path / "dir.npz").mkdir()
    paths = [("None", None), ("3", 3), ("3.5", 3.5), ("''", ""), ("NUL in path", "a\0b.npz"),
             ("bytes NUL", b"a\0b"), ("list", ["a.npz"]), ("object()", _Opaque()),
             ("directory", str(tmp_path / "dir.npz")), ("missing folder", str(tmp_path / "no" / "m.npz"))]
    check("save(path)", paths, lambda c, v: lambda: c.model.save(v), extra_allowed=(OSError,))
    load_paths = paths + [("missing file", str(tmp_path / "missing.npz")), ("random bytes", str(tmp_path / "junk.npz"))]
    problems = []
    for label, v in load_paths:
        outcome, info = attempt(None, lambda v=v: nc.load(v), (OSError,))
        if outcome != "rejected":
            problems.append(f"load({label}): {info if outcome == 'bad' else 'accepted'}")
    TRIED["table"] += len(load_paths)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- hypothesis: random arrays
DTYPE_CHOICES = ["float32", "float64", "float16", "int8", "int64", "uint64", "bool", "complex64", "object",
                 "U3", "M8[s]"]
FILLS = ["normal", "nan", "inf", "-inf", "huge", "tiny", "zero", "mixed"]


@st.composite
def random_arrays(draw, expected_shape):
    ndim = draw(st.sampled_from([0, 1, 2, 3, len(expected_shape), len(expected_shape)]))
    dims = []
    for axis in range(ndim):
        right = expected_shape[axis] if axis < len(expected_shape) else 1
        dims.append(draw(st.sampled_from([right, right, right, 0, 1, 2, 5, 6])))
    dtype = draw(st.sampled_from(DTYPE_CHOICES))
    fill = draw(st.sampled_from(FILLS))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    base = np.asarray(rng.standard_normal(dims) * 3)
    special = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf, "huge": 1e300, "tiny": 1e-320, "zero": 0.0}
    if fill in special:
        base = np.full(dims, special[fill])
    elif fill == "mixed" and base.size:
        base.flat[rng.integers(0, base.size)] = rng.choice([np.nan, np.inf, 1e300])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if dtype in ("int8", "int64", "uint64", "bool"):
            arr = np.nan_to_num(base, nan=0, posinf=2**62, neginf=-2**62).astype(dtype)
        elif dtype in ("U3", "M8[s]"):
            arr = np.zeros(dims, dtype)
        else:
            arr = base.astype(dtype)
    layout = draw(st.sampled_from(["c", "fortran", "strided", "list"]))
    if layout == "fortran":
        arr = np.asfortranarray(arr)
    elif layout == "strided" and arr.ndim >= 1:
        wide = np.zeros((arr.shape[0] * 2,) + arr.shape[1:], arr.dtype)
        wide[::2] = arr
        arr = wide[::2]
    elif layout == "list":
        arr = arr.tolist()
    return arr


HYPOTHESIS_TARGETS = ["forward(x)", "predict(x)", "backward(grad_output)", "evaluate(x)", "evaluate(y labels)",
                      "fit(x)", "fit(y labels)", "fit(y mse)", "MSELoss(output)", "MSELoss(target)",
                      "CrossEntropyLoss(output)", "CrossEntropyLoss(labels)", "BCEWithLogitsLoss(target)",
                      "Dense.weight = value", "fit(validation x)"]
HYPOTHESIS_COUNTS = {"tried": 0, "rejected": 0, "accepted": 0}


@property_settings(1500)
@given(data=st.data(), name=st.sampled_from(HYPOTHESIS_TARGETS), dtype=st.sampled_from(["float32", "float64"]))
def test_random_arrays_for_every_array_argument(data, name, dtype):
    shape, kind, extreme_ok, _, make_call = ARRAY_CASES[name]
    value = data.draw(random_arrays(shape), label="value")
    ctx = Ctx(dtype)
    outcome, info = attempt(ctx, make_call(ctx, value), FIT_ALLOWED if name.startswith("fit") else ())
    HYPOTHESIS_COUNTS["tried"] += 1
    HYPOTHESIS_COUNTS[outcome if outcome != "bad" else "rejected"] += 1
    event(f"{outcome}")
    assert outcome != "bad", f"{name}: {info}"
    if outcome == "accepted":
        # whatever was accepted must have had the right shape and a real dtype
        arr = np.asarray(value)
        assert arr.dtype.kind in "biuf", f"{name} accepted dtype {arr.dtype}"
        if name in ANY_ROWS:
            ok = arr.ndim == 2 and arr.shape[1] == shape[1] and (arr.shape[0] > 0 or name == "predict(x)")
        elif name == "CrossEntropyLoss(output)":  # any number of classes above the largest label
            ok = arr.ndim == 2 and arr.shape[0] == shape[0] and arr.shape[1] >= OUT
        else:
            ok = arr.shape == shape
        assert ok, f"{name} accepted shape {arr.shape}, expected {shape}"
        if not extreme_ok:
            with np.errstate(all="ignore"):
                cast = arr.astype(np.dtype(dtype)) if kind != "labels" else arr
            assert np.isfinite(cast).all(), f"{name} accepted non-finite values"


# --------------------------------------------------------------------------- the compiled testing hooks
HOOK_DTYPES = ["float32", "float64", "float32", "float64", "float16", "int32", "complex64", "object", "bool"]
ACT_NAMES = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "gelu", "", "RELU", "nope"]


@st.composite
def hook_arrays(draw, shape=None):
    """An array of `shape` (or of a random one, 0..3 dims of 0..5), mostly float32/64, sometimes with a
    special value, sometimes not contiguous."""
    if shape is None or draw(st.integers(0, 4)) == 0:
        shape = tuple(draw(st.lists(st.integers(0, 5), min_size=0, max_size=3)))
    dtype = draw(st.sampled_from(HOOK_DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    arr = np.asarray(rng.standard_normal(shape))
    if draw(st.integers(0, 3)) == 0 and arr.size:
        arr.flat[0] = draw(st.sampled_from([np.nan, np.inf, 1e300, -0.0]))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        arr = arr.astype(dtype)
    if draw(st.integers(0, 3)) == 0 and arr.ndim == 2:
        wide = np.zeros((arr.shape[0], 2 * arr.shape[1]), arr.dtype)
        wide[:, ::2] = arr
        arr = wide[:, ::2]  # the same values, not contiguous
    return arr


@property_settings(600)
@given(data=st.data(), hook=st.sampled_from(["gemm", "reference_gemm", "activation_forward", "activation_backward",
                                              "loss"]))
def test_compiled_hooks_refuse_garbage_and_compute_what_they_accept(data, hook):
    """nc._core's testing hooks take arbitrary arrays: a clean error, or the reference's result."""
    m, k, n = (data.draw(st.integers(1, 5), label=lb) for lb in "mkn")
    trans_a, trans_b = data.draw(st.booleans(), label="trans_a"), data.draw(st.booleans(), label="trans_b")
    if hook in ("gemm", "reference_gemm"):
        a = data.draw(hook_arrays((k, m) if trans_a else (m, k)), label="a")
        b = data.draw(hook_arrays((n, k) if trans_b else (k, n)), label="b")
        kw = {"trans_a": trans_a, "trans_b": trans_b, "bias": data.draw(st.one_of(st.none(), hook_arrays((n,)))),
              "activation": data.draw(st.sampled_from(ACT_NAMES))}
    else:
        a = data.draw(hook_arrays((m, n)), label="a")
        b = data.draw(hook_arrays((m,) if data.draw(st.booleans()) else (m, n)), label="b")
    if hook in ("gemm", "reference_gemm"):
        call = lambda: getattr(nc._core, hook)(a, b, **kw)
    elif hook == "activation_forward":
        name = data.draw(st.sampled_from(ACT_NAMES))
        call = lambda: nc._core.activation_forward(name, a)
    elif hook == "activation_backward":
        name = data.draw(st.sampled_from(ACT_NAMES))
        call = lambda: nc._core.activation_backward(name, a, b)
    else:
        kind = data.draw(st.sampled_from(["mse", "bce", "bce_with_logits", "cross_entropy", "nope"]))
        call = lambda: nc._core.loss(kind, a, b)
    outcome, result = attempt(None, call)
    event(f"{hook}: {outcome}")
    assert outcome != "bad", f"{hook}: {result}"
    if outcome == "accepted" and hook in ("gemm", "reference_gemm"):
        expected = None
        dt = np.float64 if a.dtype == np.float64 else np.float32
        if a.dtype.kind == "c" or b.dtype.kind == "c":
            event("complex input accepted (imaginary part dropped)")
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the hook casts like NumPy does: compare with NumPy's cast
            aa, bb = np.asarray(a, dtype=dt), np.asarray(b, dtype=dt)
            bias = None if kw["bias"] is None else np.asarray(kw["bias"], dtype=dt)
            if np.isfinite(aa).all() and np.isfinite(bb).all() and (bias is None or np.isfinite(bias).all()) \
                    and np.abs(aa).max(initial=0) < 1e30 and np.abs(bb).max(initial=0) < 1e30:
                expected = ref.gemm(aa, bb, kw["trans_a"], kw["trans_b"], bias, kw["activation"])
                scale = ref.gemm_error_scale(aa, bb, kw["trans_a"], kw["trans_b"], bias)
        if expected is not None:
            assert result.shape == expected.shape and result.dtype == dt
            assert_close(result, expected, dt, scale=scale, factor=8, err_msg=f"{hook} {kw}")
    if outcome == "accepted" and hook == "activation_forward" and a.dtype in (np.float32, np.float64) \
            and np.isfinite(a).all() and np.abs(a).max(initial=0) < 1e30:
        assert_close(result, ref.act_forward(name, a), a.dtype, factor=8, err_msg=f"activation_forward {name}")
