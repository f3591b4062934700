"""The lecture's "artificial neuron = logistic regression", as a test against scikit-learn.

A Dense(d, 1) + Sigmoid neuron trained with BCELoss and SGD weight decay lambda minimises
mean BCE + lambda/2 ||(w, b)||^2; LogisticRegression(C) minimises C * sum of log-losses + 1/2 ||w||^2, the same
problem when C = 1/(lambda n). Our weight decay shrinks the bias too, while scikit-learn's intercept is free, so
scikit-learn gets the bias as a penalised feature: fit_intercept=False on X with a column of ones appended.
With SGD(decay_bias=False) the bias is free too, and scikit-learn's default fit is the same problem.
"""
import numpy as np
import pytest

import neurocore as nc

sklearn_datasets = pytest.importorskip("sklearn.datasets")
sklearn_linear = pytest.importorskip("sklearn.linear_model")


@pytest.fixture(scope="module")
def breast_cancer():
    x, y = sklearn_datasets.load_breast_cancer(return_X_y=True)
    return (x - x.mean(axis=0)) / x.std(axis=0), y.astype(np.float64)


def neuron_coefficients(x, y, lam, decay_bias=True):
    """(w..., b) after full-batch Nesterov gradient descent to convergence (float64)."""
    model = nc.Sequential([nc.Dense(x.shape[1], 1, init="zeros"), nc.Sigmoid()], dtype="float64")
    model.fit(x, y, loss=nc.BCELoss(), optimizer=nc.SGD(lr=0.2, momentum=0.9, nesterov=True, weight_decay=lam,
                                                        decay_bias=decay_bias),
              epochs=600, batch_size=len(x), shuffle=False, verbose=0)
    return np.append(model.layers[0].weight[:, 0], model.layers[0].bias)


def relative(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("lam", [1e-1, 1e-2])
def test_sigmoid_neuron_with_weight_decay_is_penalised_logistic_regression(breast_cancer, lam):
    x, y = breast_cancer
    n = len(x)
    ours = neuron_coefficients(x, y, lam)
    with_ones = np.hstack([x, np.ones((n, 1))])
    theirs = sklearn_linear.LogisticRegression(C=1.0 / (lam * n), fit_intercept=False, tol=1e-10,
                                               max_iter=10_000).fit(with_ones, y).coef_[0]
    assert relative(ours, theirs) < 1e-3
    # The comparison has to penalise the bias: against scikit-learn's free intercept the neuron is far off.
    free = sklearn_linear.LogisticRegression(C=1.0 / (lam * n), tol=1e-10, max_iter=10_000).fit(x, y)
    assert relative(ours, np.append(free.coef_[0], free.intercept_)) > 1e-2


@pytest.mark.parametrize("lam", [1e-1, 1e-2])
def test_without_bias_decay_the_neuron_is_sklearns_default_logistic_regression(breast_cancer, lam):
    x, y = breast_cancer
    ours = neuron_coefficients(x, y, lam, decay_bias=False)
    free = sklearn_linear.LogisticRegression(C=1.0 / (lam * len(x)), tol=1e-10, max_iter=10_000).fit(x, y)
    assert relative(ours, np.append(free.coef_[0], free.intercept_)) < 1e-3
