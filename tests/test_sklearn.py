"""neurocore.sklearn: scikit-learn's own estimator checks, agreement with sklearn.neural_network (exact steps in
float64 with SGD, scores and loss curves with the defaults), pickling, clone, Pipeline + GridSearchCV."""

from __future__ import annotations

import os
import pickle
import pickletools
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reliability import property_settings

sklearn = pytest.importorskip("sklearn")

from sklearn import datasets  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkMLPRegressor  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import neurocore as nc  # noqa: E402
from neurocore.sklearn import MLPClassifier, MLPRegressor, NeuralNetClassifier, NeuralNetRegressor  # noqa: E402


def small_net(n_features, n_outputs):
    return nc.Sequential([nc.Dense(n_features, 16), nc.ReLU(), nc.Dense(16, n_outputs)], seed=0)


# --------------------------------------------------------------------------------------------------
# scikit-learn's estimator checks. max_iter=100 is what scikit-learn itself tests its MLPs with; the
# NeuralNet estimators get a net of 16 units and 30 epochs at lr=0.01 (the checks want R^2 > 0.5 on a
# small regression set). No check is expected to fail.
# --------------------------------------------------------------------------------------------------
CHECKED = [
    MLPClassifier(max_iter=100, random_state=0),
    MLPRegressor(max_iter=100, random_state=0),
    NeuralNetClassifier(small_net, epochs=30, lr=0.01, random_state=0),
    NeuralNetRegressor(small_net, epochs=30, lr=0.01, random_state=0),
]
EXPECTED_FAILURES: dict = {}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(CHECKED, expected_failed_checks=lambda est: EXPECTED_FAILURES.get(type(est).__name__, {}))
def test_sklearn_estimator_checks(estimator, check):
    with threadpool_limits(1):   # scikit-learn's own fits inside some checks: no BLAS threads fighting ours
        check(estimator)


# --------------------------------------------------------------------------------------------------
# Optional dependency
# --------------------------------------------------------------------------------------------------
def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_import_neurocore_does_not_import_sklearn():
    run = _python("import sys, neurocore; print('sklearn' in sys.modules, 'scipy' in sys.modules)")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "False"]


def test_missing_sklearn_names_the_extra():
    run = _python("import sys; sys.modules['sklearn'] = None\n"
                  "try:\n    import neurocore.sklearn\nexcept ImportError as e:\n    print(e)")
    assert run.returncode == 0, run.stderr
    assert 'pip install "neurocore[sklearn]"' in run.stdout


# --------------------------------------------------------------------------------------------------
# The same steps as scikit-learn: float64, SGD, same random_state -> same weights to rounding
# --------------------------------------------------------------------------------------------------
def _quiet_fit(est, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with threadpool_limits(1):
            return est.fit(X, y, **kw)


def _same_weights(a, b, rtol):
    assert len(a.coefs_) == len(b.coefs_) and len(a.intercepts_) == len(b.intercepts_)
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert wa.shape == wb.shape
        scale = np.max(np.abs(wa))
        np.testing.assert_allclose(wb, wa, rtol=0, atol=rtol * scale)


SGD_CASES = {
    # 75 samples in batches of 20: a last batch of 15 with its own alpha / batch scaling
    "multiclass-nesterov-invscaling": ("multiclass", dict(learning_rate="invscaling", power_t=0.3, alpha=0.05,
                                                          batch_size=20, learning_rate_init=0.1)),
    "binary-momentum": ("binary", dict(nesterovs_momentum=False, alpha=0.5, batch_size=20, activation="tanh")),
    "multilabel-logistic": ("multilabel", dict(alpha=0.01, batch_size=32, activation="logistic",
                                               learning_rate_init=0.2)),
    "regression-2-outputs": ("regression", dict(alpha=0.1, batch_size=16, learning_rate_init=0.01,
                                                hidden_layer_sizes=(7, 5))),
    "adaptive-early-stopping": ("multiclass", dict(learning_rate="adaptive", early_stopping=True, tol=0.05,
                                                   n_iter_no_change=1, momentum=0.5, learning_rate_init=0.3)),
    "no-momentum-no-shuffle": ("regression", dict(momentum=0.0, shuffle=False, identity=True)),
}


def _task(kind, n=75, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    if kind == "regression":
        return X, np.c_[np.sin(X[:, 0]) + X[:, 1], X[:, 2] * X[:, 3]], SkMLPRegressor, MLPRegressor
    if kind == "multilabel":
        return X, (X[:, :3] + 0.3 * rng.standard_normal((n, 3)) > 0).astype(int), SkMLPClassifier, MLPClassifier
    logits = X[:, :3] if kind == "multiclass" else X[:, :1]
    y = np.argmax(np.c_[np.zeros(n), logits], axis=1) if kind == "multiclass" else (logits[:, 0] > 0).astype(int)
    return X, y, SkMLPClassifier, MLPClassifier


@pytest.mark.parametrize("case", list(SGD_CASES))
def test_sgd_float64_takes_sklearns_steps(case):
    kind, kw = SGD_CASES[case]
    kw = dict(kw)
    if kw.pop("identity", False):
        kw["activation"] = "identity"
    X, y, Sk, Ours = _task(kind)
    params = {"solver": "sgd", "max_iter": 25, "random_state": 3, "hidden_layer_sizes": (9,), **kw}
    theirs = _quiet_fit(Sk(**params), X, y)
    ours = _quiet_fit(Ours(**params, dtype="float64"), X, y)
    _same_weights(theirs, ours, 1e-9)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-12)   # <= 8 batches: exact alpha term
    if theirs.validation_scores_ is not None:
        np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-12)
        assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_)
    else:
        assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-12)
    assert ours.out_activation_ == theirs.out_activation_
    assert (ours.n_layers_, ours.n_outputs_) == (theirs.n_layers_, theirs.n_outputs_)
    if kind == "regression":
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=0, atol=1e-9)
    else:
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=0, atol=1e-9)


@property_settings(25)
@given(kind=st.sampled_from(["binary", "multiclass", "multilabel", "regression"]), n=st.integers(2, 70),
       hidden=st.lists(st.integers(1, 12), min_size=0, max_size=2), batch=st.integers(1, 80),
       activation=st.sampled_from(["identity", "logistic", "tanh", "relu"]), alpha=st.sampled_from([0.0, 1e-4, 0.3]),
       momentum=st.sampled_from([0.0, 0.5, 0.9]), nesterov=st.booleans(),
       schedule=st.sampled_from(["constant", "invscaling", "adaptive"]), shuffle=st.booleans(),
       epochs=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_property_sgd_float64_takes_sklearns_steps(kind, n, hidden, batch, activation, alpha, momentum, nesterov,
                                                     schedule, shuffle, epochs, seed):
    X, y, Sk, Ours = _task(kind, n=n, seed=seed)
    params = dict(solver="sgd", hidden_layer_sizes=tuple(hidden), batch_size=batch, activation=activation,
                  alpha=alpha, momentum=momentum, nesterovs_momentum=nesterov, learning_rate=schedule,
                  shuffle=shuffle, max_iter=epochs, n_iter_no_change=1, tol=1e-3, learning_rate_init=0.05,
                  random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # ConvergenceWarning, batch_size > n_samples (both libraries)
        theirs = Sk(**params).fit(X, y)
        ours = Ours(**params, dtype="float64").fit(X, y)
    _same_weights(theirs, ours, 1e-8)
    assert (ours.n_iter_, ours.t_) == (theirs.n_iter_, theirs.t_)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)


def test_partial_fit_and_warm_start_take_sklearns_steps():
    X, y, _, _ = _task("multiclass")
    params = dict(solver="sgd", random_state=1, hidden_layer_sizes=(8,), learning_rate="invscaling", alpha=0.01,
                  batch_size=10, learning_rate_init=0.2)
    theirs, ours = SkMLPClassifier(**params), MLPClassifier(**params, dtype="float64")
    for est in (theirs, ours):
        for start in (0, 25, 50, 0):
            est.partial_fit(X[start:start + 25], y[start:start + 25], classes=[0, 1, 2, 3])
    _same_weights(theirs, ours, 1e-9)
    assert ours.t_ == theirs.t_ == 100 and ours.n_iter_ == theirs.n_iter_ == 1
    for est in (theirs, ours):
        est.set_params(warm_start=True, max_iter=3)
        _quiet_fit(est, X, y)
    _same_weights(theirs, ours, 1e-9)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-12)


# --------------------------------------------------------------------------------------------------
# With the defaults (adam, float32): scores and loss curves agree with scikit-learn's
# --------------------------------------------------------------------------------------------------
def _split_scaled(X, y, regression=False):
    Xtr, Xte, ytr, yte = train_test_split(X, y, random_state=0)
    scaler = StandardScaler().fit(Xtr)
    if regression:
        mean, std = ytr.mean(), ytr.std()
        ytr, yte = (ytr - mean) / std, (yte - mean) / std
    return scaler.transform(Xtr), scaler.transform(Xte), ytr, yte


@pytest.mark.parametrize("name", ["digits", "breast_cancer", "diabetes"])
def test_scores_and_loss_curves_match_sklearn(name):
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    regression = name == "diabetes"
    Xtr, Xte, ytr, yte = _split_scaled(X, y, regression)
    Sk, Ours = (SkMLPRegressor, MLPRegressor) if regression else (SkMLPClassifier, MLPClassifier)
    params = dict(random_state=0, max_iter=60 if name == "digits" else 200)
    theirs = _quiet_fit(Sk(**params), Xtr, ytr)
    ours = _quiet_fit(Ours(**params), Xtr, ytr)
    assert abs(ours.score(Xte, yte) - theirs.score(Xte, yte)) <= 0.02
    assert ours.n_iter_ == theirs.n_iter_   # the same stopping epoch under the tol / n_iter_no_change rule
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-2)
    assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-2)
    assert ours.t_ == theirs.t_ == ours.n_iter_ * len(Xtr)


# --------------------------------------------------------------------------------------------------
# Targets, attributes, parameters
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regression"])
def test_fitted_attributes_have_sklearns_shapes(kind):
    X, y, Sk, Ours = _task(kind)
    params = dict(hidden_layer_sizes=(5, 4), max_iter=5, random_state=0)
    theirs, ours = _quiet_fit(Sk(**params), X, y), _quiet_fit(Ours(**params), X, y)
    assert [c.shape for c in ours.coefs_] == [c.shape for c in theirs.coefs_]
    assert [b.shape for b in ours.intercepts_] == [b.shape for b in theirs.intercepts_]
    for attr in ("n_layers_", "n_outputs_", "out_activation_", "n_features_in_", "n_iter_", "t_"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    if kind != "regression":
        assert np.array_equal(ours.classes_, theirs.classes_)
        assert ours.predict(X).shape == theirs.predict(X).shape
        assert ours.predict_proba(X).shape == theirs.predict_proba(X).shape
        np.testing.assert_allclose(ours.predict_log_proba(X), np.log(ours.predict_proba(X)))
    else:
        assert ours.predict(X).shape == theirs.predict(X).shape == (len(X), 2)


@pytest.mark.parametrize("Est", [MLPClassifier, NeuralNetClassifier])
def test_string_labels(Est):
    X, y = datasets.load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = _quiet_fit(Est(random_state=0), StandardScaler().fit_transform(X), names)
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
    pred = clf.predict(StandardScaler().fit_transform(X))
    assert pred.dtype == names.dtype and set(pred) <= set(names)
    assert np.mean(pred == names) > 0.8


def test_feature_names_from_a_dataframe():
    pytest.importorskip("pandas")
    X, y = datasets.load_iris(return_X_y=True, as_frame=True)
    clf = _quiet_fit(MLPClassifier(max_iter=20, random_state=0), X, y)
    assert list(clf.feature_names_in_) == list(X.columns)


def test_alpha_leaves_intercepts_alone():
    """alpha decays weights only: with zero data gradient (identity net on y = its own output) weights shrink
    and intercepts do not move."""
    X = np.zeros((40, 3))
    y = np.zeros(40)
    reg = MLPRegressor(hidden_layer_sizes=(), solver="sgd", alpha=10.0, momentum=0.0, learning_rate_init=0.1,
                       max_iter=1, random_state=0, dtype="float64", shuffle=False, batch_size=40)
    _quiet_fit(reg, X, y)   # all-zero inputs: the weight gradient is alpha * W / 40; the bias gradient is the output
    assert reg.coefs_[0].shape == (3, 1)
    rs = np.random.RandomState(0)
    bound = np.sqrt(6.0 / 4)
    w0, b0 = rs.uniform(-bound, bound, (3, 1)), rs.uniform(-bound, bound, 1)
    np.testing.assert_allclose(reg.coefs_[0], w0 * (1 - 0.1 * 10.0 / 40), rtol=1e-12)
    np.testing.assert_allclose(reg.intercepts_[0], b0 - 0.1 * b0, rtol=1e-12)   # the squared-error gradient only
    assert reg.loss_curve_[0] == pytest.approx(0.5 * b0[0] ** 2 + 0.5 * 10.0 * float(w0.ravel() @ w0.ravel()) / 40)


@pytest.mark.parametrize("params,pattern", [
    (dict(solver="lbfgs"), "use solver='adam'"),
    (dict(activation="softplus"), "activation"),
    (dict(hidden_layer_sizes=(10, 0)), "hidden_layer_sizes must be > 0"),
    (dict(learning_rate_init=0.0), "learning_rate_init"),
    (dict(batch_size=0), "batch_size"),
    (dict(momentum=1.5), "momentum"),
    (dict(beta_2=1.0), "beta_2"),
    (dict(n_iter_no_change=0), "n_iter_no_change"),
    (dict(dtype="float16"), "dtype"),
    (dict(shuffle="yes"), "shuffle"),
])
def test_bad_parameters_are_named_at_fit(params, pattern):
    X, y, _, _ = _task("binary")
    clf = MLPClassifier(**params)   # scikit-learn validates at fit, never in __init__
    with pytest.raises((ValueError, TypeError), match=pattern):
        clf.fit(X, y)
    assert not hasattr(clf, "classes_") and not hasattr(clf, "coefs_")


GARBAGE_X = {
    "strings": np.array([["a", "b"], ["c", "d"], ["e", "f"]]),
    "objects": np.array([[object(), 1.0]] * 3, dtype=object),
    "nan": np.array([[np.nan, 1.0], [0.0, 1.0], [1.0, 0.0]]),
    "inf": np.array([[np.inf, 1.0], [0.0, 1.0], [1.0, 0.0]]),
    "3-D": np.zeros((3, 2, 2)),
    "1-D": np.zeros(3),
    "empty": np.zeros((0, 2)),
    "ragged": [[1.0, 2.0], [3.0], [4.0, 5.0]],
    "complex": np.ones((3, 2), dtype=complex),
    "float32 overflow": np.array([[1e300, 1.0], [0.0, 1.0], [1.0, 0.0]]),
}


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor, NeuralNetClassifier, NeuralNetRegressor])
@pytest.mark.parametrize("name", list(GARBAGE_X))
def test_garbage_input_raises_and_leaves_the_estimator_unchanged(Est, name):
    est = Est(random_state=0, **({"max_iter": 2} if Est in (MLPClassifier, MLPRegressor) else {"epochs": 2}))
    y = np.array([0, 1, 0])
    with pytest.raises((ValueError, TypeError)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(GARBAGE_X[name], y)
    X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    _quiet_fit(est, X, y)
    before = est.predict(X)
    with pytest.raises((ValueError, TypeError)):
        est.predict(GARBAGE_X[name])
    np.testing.assert_array_equal(est.predict(X), before)


def test_regressor_rejects_poisson():
    with pytest.raises(ValueError, match="squared_error"):
        MLPRegressor(loss="poisson").fit(np.ones((4, 2)), np.ones(4))


# --------------------------------------------------------------------------------------------------
# Pickle, clone, model selection
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0),
                                  lambda: NeuralNetClassifier(small_net, epochs=3, random_state=0)],
                         ids=["MLPClassifier", "NeuralNetClassifier"])
def test_pickle_goes_through_npz_and_training_resumes_identically(make):
    X, y, _, _ = _task("multiclass", n=120)
    est = _quiet_fit(make(), X, y)
    blob = pickle.dumps(est)
    assert b"neurocore._core" not in blob and b"Network_float" not in blob
    imported = {arg for op, arg, _ in pickletools.genops(blob) if op.name in ("SHORT_BINUNICODE", "BINUNICODE")}
    assert "from_bytes" in imported
    twin = pickle.loads(blob)
    np.testing.assert_array_equal(twin.predict_proba(X), est.predict_proba(X))
    for e in (est, twin):
        e.partial_fit(X, y)
    np.testing.assert_array_equal(twin.predict_proba(X), est.predict_proba(X))
    copy = clone(est)
    assert copy.get_params() == est.get_params() and not hasattr(copy, "classes_")


def test_pipeline_in_grid_search_with_two_jobs():
    X, y = datasets.load_breast_cancer(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", MLPClassifier(max_iter=30, random_state=0))])
    grid = GridSearchCV(pipe, {"mlp__hidden_layer_sizes": [(8,), (32,)], "mlp__alpha": [1e-4, 3.0]}, cv=2, n_jobs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, y)
    assert set(grid.best_params_) == {"mlp__hidden_layer_sizes", "mlp__alpha"}
    assert grid.best_score_ > 0.9
    assert np.all(np.isfinite(grid.cv_results_["mean_test_score"]))
    assert grid.score(X, y) > 0.95


# --------------------------------------------------------------------------------------------------
# NeuralNet* around user networks
# --------------------------------------------------------------------------------------------------
def test_neural_net_classifier_around_a_custom_network():
    X, y = datasets.load_digits(return_X_y=True)
    X = X / 16.0

    def net(n_features, n_classes):
        return nc.Sequential([nc.Dense(n_features, 64), nc.BatchNorm(64), nc.GELU(), nc.Dropout(0.1),
                              nc.Dense(64, n_classes)], seed=1)

    clf = NeuralNetClassifier(net, optimizer=nc.AdamW(lr=3e-3), epochs=8, batch_size=64, random_state=0)
    clf.fit(X[:1500], y[:1500])
    assert clf.model_.out_features == 10 and clf.n_iter_ == 8 and len(clf.loss_curve_) == 8
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X[1500:], y[1500:]) > 0.9
    assert clf.optimizer.steps == 0, "the optimizer parameter is a template and must stay unbound"


def test_neural_net_binary_single_output_and_multilabel():
    X, y, _, _ = _task("binary", n=200)
    one = NeuralNetClassifier(lambda n, k: small_net(n, 1), epochs=40, lr=0.01, random_state=0).fit(X, y)
    assert one._loss.kind == "bce_with_logits" and one.predict_proba(X).shape == (200, 2)
    assert one.score(X, y) > 0.9
    X, Y, _, _ = _task("multilabel", n=200)
    multi = NeuralNetClassifier(small_net, epochs=40, lr=0.01, random_state=0).fit(X, Y)
    assert multi.predict(X).shape == Y.shape and multi.score(X, Y) > 0.5
    with pytest.raises(ValueError, match="needs 3"):
        NeuralNetClassifier(lambda n, k: small_net(n, 2)).fit(X, Y)


def test_neural_net_regressor_multi_output_and_partial_fit():
    X, Y, _, _ = _task("regression", n=300)
    reg = NeuralNetRegressor(small_net, epochs=60, lr=0.01, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (300, 2) and reg.score(X, Y) > 0.6
    seq = NeuralNetRegressor(small_net, random_state=0)
    for _ in range(3):
        seq.partial_fit(X, Y[:, 0])
    assert seq.predict(X).shape == (300,) and len(seq.loss_curve_) == 3 and seq.model_.optimizer.steps == 3 * 10


def test_readme_sklearn_block_runs():
    import pathlib
    import re

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    (code,) = re.findall(r"```python sklearn\n(.*?)```", readme, re.S)
    assert "from neurocore.sklearn import MLPClassifier" in code
    code = re.sub(r"max_iter=\d+", "max_iter=3", code).replace("n_jobs=2", "n_jobs=1")
    code = re.sub(r"epochs=\d+", "epochs=2", code)
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["clf"].n_iter_ == 3 and namespace["deep"].n_iter_ == 2
