"""The lecture's convolutional layer: "f(x) = W^T x, but W should have special form, usually for images".
A 3x3 convolution is a Dense layer whose matrix is sparse and shares its 9 weights; that structure lets a
small CNN learn the digits from fewer examples than an MLP.

    pip install ".[plot]" && python examples/convolution.py [--out convolution.png] [--seeds 5] [--quick]

1. The special form: the matrix W of Conv2D(1, 1, 3, padding="same") on 8x8 images, read off by passing the
   64 unit images through it (y = x W for a layer without bias): 64 x 64, at most 9 non-zeros per column, and
   every column holds the same 9 numbers.
2. The payoff: with 100 / 300 training digits, a CNN (Conv2D(1, 16, 3, 'same') + ReLU + MaxPool2D(2) +
   Dense(256, 10)) against an MLP (Dense(64, 64) + ReLU + Dense(64, 10)) over several seeds, both tested on
   the other digits. Images are channels-last, (N, 8, 8, 1).

Writes the picture (default: convolution.png next to this script).
"""
import argparse
import pathlib

import numpy as np

import neurocore as nc
from neurocore.datasets import load_digits, train_test_split

HERE = pathlib.Path(__file__).resolve().parent


def conv_as_matrix(kernel):
    """The (64, 64) matrix W with conv(x) = x W for 8x8 one-channel images (x flattened row-major)."""
    conv = nc.Sequential([nc.Conv2D(1, 1, 3, padding="same", bias=False, init=kernel[:, :, None, None]),
                          nc.Flatten()], input_shape=(8, 8, 1), dtype="float64")
    return conv.predict(np.eye(64).reshape(64, 8, 8, 1))


def cnn(seed):
    return nc.Sequential([nc.Conv2D(1, 16, 3, padding="same"), nc.ReLU(), nc.MaxPool2D(2), nc.Flatten(),
                          nc.Dense(4 * 4 * 16, 10)], input_shape=(8, 8, 1), seed=seed)


def mlp(seed):
    return nc.Sequential([nc.Dense(64, 64), nc.ReLU(), nc.Dense(64, 10)], seed=seed)


def accuracy(build, images, x_train, y_train, x_test, y_test, epochs, seed):
    """Test accuracy after training with Adam; images=True feeds (N, 8, 8, 1), else (N, 64)."""
    shape = (-1, 8, 8, 1) if images else (-1, 64)
    model = build(seed)
    model.fit(x_train.reshape(shape), y_train, optimizer=nc.Adam(lr=3e-3), epochs=epochs, batch_size=16, seed=seed,
              verbose=0)
    return model.evaluate(x_test.reshape(shape), y_test)["accuracy"], model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "convolution.png")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 seed, a few epochs (a smoke test)")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds, epochs = (1, 3) if args.quick else (args.seeds, 60)
    kernel = np.arange(1, 10, dtype=np.float64).reshape(3, 3)
    w = conv_as_matrix(kernel)
    nonzero = np.count_nonzero(w, axis=0)
    print(f"Conv2D(1, 1, 3, padding='same') as a matrix: {w.shape}, {np.count_nonzero(w)} non-zeros of {w.size} "
          f"({np.count_nonzero(w) / w.size:.1%}); per column {nonzero.min()}-{nonzero.max()}; "
          f"distinct non-zero values {len(np.unique(w[w != 0]))} (the 9 shared weights)")

    x, y = load_digits()
    results = {}
    for n_train in (100, 300):
        for name, build, images in (("CNN", cnn, True), ("MLP", mlp, False)):
            accs = []
            for seed in range(seeds):
                x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=len(x) - n_train, seed=seed)
                acc, model = accuracy(build, images, x_train, y_train, x_test, y_test, epochs, seed)
                accs.append(acc)
            results[(name, n_train)] = np.array(accs)
            if name == "CNN":
                filters = model.layers[0].weight[:, :, 0, :]
            print(f"{name} ({model.n_parameters:,} parameters), {n_train} training digits: test accuracy mean "
                  f"{np.mean(accs):.3f} (min {np.min(accs):.3f}, max {np.max(accs):.3f}) over {seeds} seed(s)")

    fig = plt.figure(figsize=(14, 4.6), layout="constrained")
    grid = fig.add_gridspec(1, 3, width_ratios=[1.1, 1, 1])
    ax = fig.add_subplot(grid[0])
    ax.imshow(w, cmap="viridis")
    ax.set(title="Conv2D(1, 1, 3) on 8x8 images as W (64 x 64):\nsparse, the same 9 weights in every column",
           xlabel="output pixel", ylabel="input pixel")
    ax = fig.add_subplot(grid[1])
    tiles = np.full((4 * 4, 4 * 4), np.nan)   # the 16 filters in a 4 x 4 mosaic, one blank pixel between them
    for k in range(16):
        r, c = divmod(k, 4)
        tiles[4 * r:4 * r + 3, 4 * c:4 * c + 3] = filters[:, :, k] / np.abs(filters[:, :, k]).max()
    ax.imshow(tiles[:-1, :-1], cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("the CNN's 16 learned 3x3 filters\n(300 digits, each scaled to its largest weight)")
    ax = fig.add_subplot(grid[2])
    labels = [f"{name}\n{n} digits" for name, n in results]
    ax.boxplot([results[key] for key in results], showmeans=True)
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.set(ylabel="test accuracy", title=f"CNN vs MLP, {seeds} seed(s)")
    ax.grid(True, axis="y", alpha=0.3)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
