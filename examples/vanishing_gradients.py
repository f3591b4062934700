"""The lecture's vanishing-gradient problem, measured: a 10-layer sigmoid MLP on the digits, next to the
same network with ReLU, with BatchNorm, and with residual blocks.

    pip install ".[plot]" && python examples/vanishing_gradients.py [--out vanishing_gradients.png] [--quick]

Left: the mean gradient norm of each Dense layer's weights over the first epoch (history["grad_norm"],
computed in C++). Right: the training loss per epoch (default: vanishing_gradients.png next to this script).
"""
import argparse
import pathlib

import numpy as np

import neurocore as nc
from neurocore.datasets import load_digits

HERE = pathlib.Path(__file__).resolve().parent
DEPTH, WIDTH = 10, 64


def plain(act):
    layers = [nc.Dense(64, WIDTH), act()]
    for _ in range(DEPTH - 2):
        layers += [nc.Dense(WIDTH, WIDTH), act()]
    return layers + [nc.Dense(WIDTH, 10)]


def with_batchnorm():
    layers = [nc.Dense(64, WIDTH), nc.BatchNorm(WIDTH), nc.Sigmoid()]
    for _ in range(DEPTH - 2):
        layers += [nc.Dense(WIDTH, WIDTH), nc.BatchNorm(WIDTH), nc.Sigmoid()]
    return layers + [nc.Dense(WIDTH, 10)]


def with_residuals():
    layers = [nc.Dense(64, WIDTH), nc.Sigmoid()]
    for _ in range(DEPTH - 2):
        layers += [nc.Residual([nc.Dense(WIDTH, WIDTH), nc.Sigmoid()])]
    return layers + [nc.Dense(WIDTH, 10)]


NETWORKS = {
    "sigmoid": lambda: plain(nc.Sigmoid),
    "ReLU": lambda: plain(nc.ReLU),
    "sigmoid + BatchNorm": with_batchnorm,
    "sigmoid + residual": with_residuals,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "vanishing_gradients.png")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="2 epochs (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.epochs = 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = load_digits()
    results = {}
    for name, build in NETWORKS.items():
        model = nc.Sequential(build(), seed=0)
        hist = model.fit(x, y, loss="cross_entropy", optimizer=nc.SGD(lr=0.05, momentum=0.9), epochs=args.epochs,
                         batch_size=32, seed=0, track_gradients=True, verbose=0)
        results[name] = hist
        norms = hist["grad_norm"][0]
        print(f"{name:>20}: first-layer / last-layer gradient norm in epoch 1 = {norms[0]:.2e} / {norms[-1]:.2e} "
              f"(ratio {norms[0] / norms[-1]:.1e}); final training loss {hist['loss'][-1]:.3f}")

    fig, (ax_g, ax_l) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, hist in results.items():
        norms = np.array(hist["grad_norm"][0])
        ax_g.semilogy(np.arange(1, len(norms) + 1), norms, marker="o", label=name)
        ax_l.plot(np.arange(1, len(hist["loss"]) + 1), hist["loss"], label=name)
    ax_g.set(xlabel="Dense layer (1 = nearest the input)", ylabel="mean ||dL/dW|| in epoch 1",
             title=f"Gradient norm per layer, {DEPTH}-layer MLP")
    ax_l.set(xlabel="epoch", ylabel="training loss (cross-entropy)", title="Training loss", yscale="log")
    for ax in (ax_g, ax_l):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
