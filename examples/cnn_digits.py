"""A small CNN on the bundled 8x8 digits, as (N, 8, 8, 1) images: two 3x3 convolutions, max pooling, a
Dense classifier. Trains in a few seconds to >= 0.98 test accuracy, then draws the first layer's filters
and one test digit's feature maps.

    pip install ".[plot]" && python examples/cnn_digits.py [--out cnn_digits.png] [--quick]

--quick trains briefly (a smoke test of the script and its figure).
"""
import argparse
import os
import time

import neurocore as nc
from neurocore.datasets import load_digits, train_test_split


def build(seed=0):
    return nc.Sequential([
        nc.Conv2D(1, 16, 3, padding="same"), nc.ReLU(),
        nc.Conv2D(16, 32, 3, padding="same"), nc.ReLU(), nc.MaxPool2D(2),   # 8x8 -> 4x4
        nc.Flatten(), nc.Dropout(0.25), nc.Dense(4 * 4 * 32, 64), nc.ReLU(), nc.Dense(64, 10),
    ], input_shape=(8, 8, 1), seed=seed)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "cnn_digits.png"))
    parser.add_argument("--quick", action="store_true", help="two epochs (a smoke test, figure included)")
    args = parser.parse_args()

    X, y = load_digits()
    X = X.reshape(-1, 8, 8, 1)                       # rows of 64 pixels -> channels-last images
    x_train, x_test, y_train, y_test = train_test_split(X, y, test_size=0.25, seed=0)
    model = build()
    print(model)
    start = time.perf_counter()
    model.fit(x_train, y_train, optimizer=nc.Adam(lr=2e-3), epochs=2 if args.quick else 15, batch_size=32, seed=0,
              schedule=nc.schedules.CosineAnnealing(t_max=15), verbose=0)
    seconds = time.perf_counter() - start
    accuracy = model.evaluate(x_test, y_test)["accuracy"]
    print(f"test accuracy {accuracy:.4f} on {len(y_test)} digits after {seconds:.1f} s of training")

    try:
        import matplotlib
    except ImportError:
        print('matplotlib is not installed, no PNG written: pip install "neurocore[plot]"')
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    filters = model.layers[0].weight[:, :, 0, :]     # (3, 3, 16)
    digit = x_test[:1]
    probe = nc.Sequential(model.layers[:2], input_shape=(8, 8, 1))   # conv + ReLU, weights copied
    maps = probe.predict(digit)[0]                   # (8, 8, 16)
    fig, axes = plt.subplots(3, 16, figsize=(16, 3.4))
    for k in range(16):
        axes[0, k].imshow(filters[:, :, k], cmap="RdBu_r")
        axes[1, k].imshow(maps[:, :, k], cmap="viridis")
        axes[2, k].imshow(digit[0, :, :, 0], cmap="gray_r") if k == 0 else axes[2, k].set_visible(False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("filters")
    axes[1, 0].set_ylabel("feature\nmaps")
    axes[2, 0].set_ylabel(f"digit {y_test[0]}")
    fig.suptitle(f"first Conv2D layer: 16 filters (3x3) and their ReLU maps of one test digit; "
                 f"test accuracy {accuracy:.3f}")
    fig.savefig(args.out, dpi=110, bbox_inches="tight")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
