"""The lecture's claim "artificial neuron = logistic regression", checked: one Dense unit with a sigmoid,
trained with BCELoss and weight decay, lands on scikit-learn's LogisticRegression coefficients.

    pip install ".[sklearn,plot]" && python examples/perceptron.py [--out perceptron.png] [--quick]

The neuron minimises the lecture's J(theta) + lambda/2 ||theta||^2 with J the mean binary cross-entropy over
the n samples; scikit-learn minimises C * (sum of the log-losses) + 1/2 ||w||^2. Dividing the first by
lambda shows they are the same problem when C = 1 / (lambda * n). One difference remains: our weight decay
shrinks the bias too, while scikit-learn leaves its intercept unpenalised. So scikit-learn gets the bias as
an ordinary, penalised feature: fit_intercept=False on X with a column of ones appended. Or the other way
round: SGD(decay_bias=False) exempts our bias from the decay, and then scikit-learn's default (free
intercept) is the same problem; the script checks both.

Writes a plot of the two coefficient vectors (default: perceptron.png next to this script).
"""
import argparse
import pathlib

import numpy as np

import neurocore as nc

HERE = pathlib.Path(__file__).resolve().parent
LAMBDA = 1e-2


def load_standardised():
    """Breast cancer (569 x 30, binary), each feature scaled to zero mean and unit variance."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    return (x - x.mean(axis=0)) / x.std(axis=0), y.astype(np.float64)


def fit_neuron(x, y, lam, epochs, decay_bias=True):
    """Full-batch gradient descent (Nesterov momentum) on mean BCE + lam/2 ||(w, b)||^2 (||w||^2 only with
    decay_bias=False); returns (w, b)."""
    neuron = nc.Sequential([nc.Dense(x.shape[1], 1, init="zeros"), nc.Sigmoid()], dtype="float64", seed=0)
    neuron.fit(x, y, loss=nc.BCELoss(), optimizer=nc.SGD(lr=0.2, momentum=0.9, nesterov=True, weight_decay=lam,
                                                         decay_bias=decay_bias),
               epochs=epochs, batch_size=len(x), shuffle=False, verbose=0)
    dense = neuron.layers[0]
    return dense.weight[:, 0].copy(), float(dense.bias[0])


def fit_sklearn(x, y, lam):
    """LogisticRegression with the same objective: C = 1/(lam n), the bias a penalised column of ones."""
    from sklearn.linear_model import LogisticRegression

    ones = np.hstack([x, np.ones((len(x), 1))])
    clf = LogisticRegression(C=1.0 / (lam * len(x)), fit_intercept=False, tol=1e-10, max_iter=10_000).fit(ones, y)
    return clf.coef_[0, :-1], float(clf.coef_[0, -1])


def fit_sklearn_free_intercept(x, y, lam):
    """scikit-learn's default: the same C, but an unpenalised intercept (a different problem)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=1.0 / (lam * len(x)), tol=1e-10, max_iter=10_000).fit(x, y)
    return clf.coef_[0], float(clf.intercept_[0])


def relative_difference(a, b):
    """||a - b|| / ||b|| over all coefficients, bias included."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "perceptron.png")
    parser.add_argument("--quick", action="store_true", help="fewer epochs (a smoke test; the match is looser)")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = load_standardised()
    w, b = fit_neuron(x, y, LAMBDA, epochs=60 if args.quick else 600)
    w_sk, b_sk = fit_sklearn(x, y, LAMBDA)
    ours, theirs = np.append(w, b), np.append(w_sk, b_sk)
    rel = relative_difference(ours, theirs)
    print(f"breast cancer, n={len(x)}, d={x.shape[1]}, lambda={LAMBDA:g}, C=1/(lambda n)={1 / (LAMBDA * len(x)):.5f}")
    print(f"relative difference ||theta - theta_sklearn|| / ||theta_sklearn|| = {rel:.2e}; "
          f"largest coefficient gap {np.max(np.abs(ours - theirs)):.2e}; bias {b:.6f} vs {b_sk:.6f}")

    fig, ax = plt.subplots(figsize=(11, 4.2))
    idx = np.arange(len(ours))
    ax.bar(idx - 0.2, theirs, width=0.4, label="scikit-learn LogisticRegression")
    ax.bar(idx + 0.2, ours, width=0.4, label="neurocore Dense(30, 1) + Sigmoid")
    ax.set_xticks(idx, [str(i) for i in range(len(w))] + ["bias"], fontsize=8)
    ax.set(xlabel="feature", ylabel="coefficient",
           title=f"One sigmoid neuron = logistic regression (lambda={LAMBDA:g}; relative difference {rel:.1e})")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    w_free, b_free = fit_sklearn_free_intercept(x, y, LAMBDA)
    free = np.append(w_free, b_free)
    print(f"against scikit-learn's default free intercept instead: relative difference "
          f"{relative_difference(ours, free):.2e} (bias {b_free:.6f}): the bias penalty matters")
    w_nd, b_nd = fit_neuron(x, y, LAMBDA, epochs=60 if args.quick else 600, decay_bias=False)
    print(f"SGD(decay_bias=False) against that free intercept: relative difference "
          f"{relative_difference(np.append(w_nd, b_nd), free):.2e} (bias {b_nd:.6f})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
