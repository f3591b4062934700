"""The lecture's activation functions and their derivatives, both computed by neurocore: the derivative is
what backward returns, the chain rule's local factor.

    pip install ".[plot]" && python examples/activations.py [--out activations.png] [--quick]

For each activation g, the network Dense(1, 1) (weight 1, bias 0) + g maps a column of inputs x to g(x);
backward(ones) then returns dg/dx at every x. The script checks the sigmoid's derivative against the
closed form sigm(x) (1 - sigm(x)) and prints the largest derivative of each activation: a sigmoid passes
back at most 0.25 of the gradient per layer, which is why deep sigmoid networks' gradients vanish.
Writes the picture (default: activations.png next to this script).
"""
import argparse
import pathlib

import numpy as np

import neurocore as nc

HERE = pathlib.Path(__file__).resolve().parent
ACTIVATIONS = {
    "sigmoid": nc.Sigmoid, "tanh": nc.Tanh, "ReLU": nc.ReLU, "LeakyReLU(0.1)": lambda: nc.LeakyReLU(0.1),
    "ELU": nc.ELU, "GELU": nc.GELU,
}


def value_and_derivative(activation, x):
    """g(x) and dg/dx for a column of inputs, from one forward and one backward pass."""
    net = nc.Sequential([nc.Dense(1, 1, init=np.ones((1, 1))), activation], dtype="float64")
    y = net.forward(x[:, None])
    dy_dx = net.backward(np.ones_like(y))
    return y[:, 0], dy_dx[:, 0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "activations.png")
    parser.add_argument("--quick", action="store_true", help="fewer points (a smoke test)")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.linspace(-4, 4, 41 if args.quick else 801)
    fig, (ax_g, ax_d) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, make in ACTIVATIONS.items():
        y, dy = value_and_derivative(make(), x)
        ax_g.plot(x, y, label=name)
        ax_d.plot(x, dy, label=name)
        print(f"{name:>15}: g(0) = {y[len(x) // 2]:+.4f}, largest dg/dx on [-4, 4] = {dy.max():.4f}")
    s = 1 / (1 + np.exp(-x))
    _, dsig = value_and_derivative(nc.Sigmoid(), x)
    print(f"sigmoid derivative from backward vs sigm(x)(1 - sigm(x)): largest gap {np.max(np.abs(dsig - s * (1 - s))):.1e}")
    ax_g.set(xlabel="x", ylabel="g(x)", title="Activation functions (forward)", ylim=(-1.5, 4))
    ax_d.set(xlabel="x", ylabel="dg/dx", title="Their derivatives (backward)", ylim=(-0.2, 1.3))
    for ax in (ax_g, ax_d):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
