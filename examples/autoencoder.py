"""Representation learning: a dense autoencoder squeezes the 8x8 digits through a 2-D code, unsupervised, and
the codes separate the digits far better than 2 random projections of the pixels do.

    pip install ".[plot]" && python examples/autoencoder.py [--out autoencoder.png] [--quick]

64 -> 32 -> 2 -> 32 -> 64, trained to reproduce its input (MSELoss); the denoising variant sees inputs with
Gaussian noise added (fit(..., augment=GaussianNoise(std)), drawn in C++) and must output the clean image.
The encoder is taken out as its own Sequential from the first layers (their weights are copied), its 2-D
codes are plotted coloured by digit, and a logistic regression (Dense(2, 10) with cross-entropy) trained on
the codes of the training images is scored on the test images, against one on 2 random projections. The
same again with a convolutional encoder (Conv2D(1, 8, 3, 'same') + ReLU + MaxPool2D(2) + Dense(128, 2) on
(N, 8, 8, 1) images) in front of the same dense decoder.

Writes the picture (default: autoencoder.png next to this script).
"""
import argparse
import pathlib

import numpy as np

import neurocore as nc
from neurocore.datasets import load_digits, train_test_split

HERE = pathlib.Path(__file__).resolve().parent
NOISE_STD = 0.3


def decoder():
    return [nc.Dense(2, 32), nc.Tanh(), nc.Dense(32, 64), nc.Sigmoid()]


def autoencoder(seed):
    """64 -> 32 -> 2 -> 32 -> 64; the encoder is the first 3 layers."""
    return nc.Sequential([nc.Dense(64, 32), nc.Tanh(), nc.Dense(32, 2), *decoder()], seed=seed), 3


def conv_autoencoder(seed):
    """(8, 8, 1) -> conv 3x3 x 8 -> max-pool 2 -> 128 -> 2 -> 32 -> 64; the encoder is the first 5 layers."""
    encoder = [nc.Conv2D(1, 8, 3, padding="same"), nc.ReLU(), nc.MaxPool2D(2), nc.Flatten(), nc.Dense(128, 2)]
    return nc.Sequential([*encoder, *decoder()], input_shape=(8, 8, 1), seed=seed), len(encoder)


def train_autoencoder(build, x, epochs, noise, seed=0):
    """The autoencoder fitted to reproduce the flat images x (from x plus N(0, noise^2) when noise > 0), and
    its encoder as a model of its own (Sequential copies the weights of the layers it takes)."""
    model, n_encoder = build(seed)
    model.fit(x.reshape(-1, *model.input_shape), x, loss=nc.MSELoss(), optimizer=nc.Adam(lr=3e-3), epochs=epochs, batch_size=32, seed=seed,
              augment=nc.GaussianNoise(noise) if noise else None, verbose=0)
    return model, nc.Sequential(model.layers[:n_encoder], input_shape=model.input_shape, seed=0)


def probe_accuracy(codes_train, y_train, codes_test, y_test, epochs):
    """Test accuracy of a logistic regression (softmax over 10 classes) on standardised 2-D codes."""
    mean, std = codes_train.mean(axis=0), codes_train.std(axis=0) + 1e-12
    probe = nc.Sequential([nc.Dense(2, 10)], seed=0)
    probe.fit((codes_train - mean) / std, y_train, optimizer=nc.SGD(lr=0.1, momentum=0.9), epochs=epochs,
              batch_size=64, seed=0, verbose=0)
    return probe.evaluate((codes_test - mean) / std, y_test)["accuracy"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "autoencoder.png")
    parser.add_argument("--quick", action="store_true", help="a few epochs (a smoke test)")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs, probe_epochs = (3, 3) if args.quick else (200, 50)
    x, y = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, seed=0)
    rng = np.random.default_rng(0)
    projection = rng.standard_normal((64, 2))
    codes = {"2 random projections": (x_train @ projection, x_test @ projection)}
    models = {}
    noisy_test = np.clip(x_test + rng.normal(0, NOISE_STD, x_test.shape), 0, 1).astype(np.float32)
    denoising = f"denoising autoencoder (noise std {NOISE_STD:g})"
    for name, build, noise in (("autoencoder", autoencoder, 0.0), (denoising, autoencoder, NOISE_STD),
                               ("convolutional autoencoder", conv_autoencoder, 0.0)):
        model, encoder = train_autoencoder(build, x_train, epochs, noise)
        models[name] = model
        as_input = lambda images, model=model: images.reshape(-1, *model.input_shape)  # noqa: E731
        codes[name] = (encoder.predict(as_input(x_train)), encoder.predict(as_input(x_test)))
        mse = model.evaluate(as_input(x_test), x_test, loss="mse")["loss"]
        mse_noisy = model.evaluate(as_input(noisy_test), x_test, loss="mse")["loss"]
        print(f"{name}: test reconstruction MSE {mse:.4f}; from noisy inputs (std {NOISE_STD:g}) to the clean "
              f"images {mse_noisy:.4f}")
    accuracy = {}
    for name, (c_train, c_test) in codes.items():
        accuracy[name] = probe_accuracy(c_train, y_train, c_test, y_test, probe_epochs)
        print(f"logistic regression on {name} codes: test accuracy {accuracy[name]:.3f} ({len(y_test)} images)")

    fig = plt.figure(figsize=(18, 7.5), layout="constrained")
    grid = fig.add_gridspec(2, 4, height_ratios=[3, 1.2])
    for col, (name, (_, c_test)) in enumerate(codes.items()):
        ax = fig.add_subplot(grid[0, col])
        points = ax.scatter(c_test[:, 0], c_test[:, 1], c=y_test, cmap="tab10", s=8, vmin=-0.5, vmax=9.5)
        ax.set(title=f"{name}\nlogistic regression on these codes: {accuracy[name]:.1%}", xlabel="code 1",
               ylabel="code 2")
    fig.colorbar(points, ax=fig.axes[:4], ticks=range(10), label="digit (test images)", shrink=0.8)
    # Bottom row: test digits, a noisy copy, and the denoising autoencoder's output for the noisy copy.
    samples, noisy = x_test[:8], noisy_test[:8]
    rows = [("test image", samples), ("with noise", noisy), ("denoised", models[denoising].predict(noisy)),
            ("autoencoder", models["autoencoder"].predict(samples)),
            ("convolutional", models["convolutional autoencoder"].predict(samples.reshape(-1, 8, 8, 1)))]
    strip = np.vstack([np.hstack([np.pad(img.reshape(8, 8), 1) for img in imgs]) for _, imgs in rows])
    ax = fig.add_subplot(grid[1, :])
    ax.imshow(strip, cmap="gray_r", vmin=0, vmax=1)
    ax.set_yticks([10 * i + 4.5 for i in range(len(rows))], [label for label, _ in rows])
    ax.set_xticks([])
    ax.set_title("Reconstructions through the 2-D bottleneck")
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
