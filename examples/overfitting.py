"""Overfitting on a small training set, and three of the lecture's remedies: weight decay, dropout and
early stopping. 150 training digits, a wide MLP, the other 1,647 digits for validation.

    pip install ".[plot]" && python examples/overfitting.py [--out overfitting.png] [--quick]

Left: validation loss per epoch. Right: validation accuracy per epoch (default: overfitting.png next to
this script).
"""
import argparse
import pathlib

import numpy as np

import neurocore as nc
from neurocore.datasets import load_digits, train_test_split

HERE = pathlib.Path(__file__).resolve().parent
EPOCHS = 150


def wide(dropout=0.0):
    layers = [nc.Dense(64, 512), nc.ReLU()]
    layers += [nc.Dropout(dropout)] if dropout else []
    layers += [nc.Dense(512, 512), nc.ReLU()]
    layers += [nc.Dropout(dropout)] if dropout else []
    return layers + [nc.Dense(512, 10)]


RUNS = {
    "no regularisation": dict(layers=wide(), weight_decay=0.0, callbacks=[]),
    "weight decay 3e-3": dict(layers=wide(), weight_decay=3e-3, callbacks=[]),
    "dropout 0.5": dict(layers=wide(0.5), weight_decay=0.0, callbacks=[]),
    "early stopping (patience 10)": dict(layers=wide(), weight_decay=0.0,
                                         callbacks=[nc.EarlyStopping("val_loss", patience=10, restore_best_weights=True)]),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "overfitting.png")
    parser.add_argument("--quick", action="store_true", help="1 epoch (a smoke test)")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = load_digits()
    x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=1 - 150 / len(x), seed=0)
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, run in RUNS.items():
        model = nc.Sequential(run["layers"], seed=0)
        hist = model.fit(x_train, y_train, optimizer=nc.SGD(lr=0.01, momentum=0.9, weight_decay=run["weight_decay"]),
                         epochs=1 if args.quick else EPOCHS, batch_size=16, seed=0, validation_data=(x_val, y_val),
                         callbacks=run["callbacks"], verbose=0)
        final = model.evaluate(x_val, y_val)
        best = int(np.argmin(hist["val_loss"]))
        print(f"{name:>30}: {len(hist['loss'])} epochs, train loss {hist['loss'][-1]:.4f}, "
              f"best val loss {hist['val_loss'][best]:.3f} (epoch {best + 1}), final model: val loss "
              f"{final['loss']:.3f}, val accuracy {final['accuracy']:.3f}")
        epochs = np.arange(1, len(hist["val_loss"]) + 1)
        ax_l.plot(epochs, hist["val_loss"], label=name)
        ax_a.plot(epochs, hist["val_accuracy"], label=name)
    ax_l.set(xlabel="epoch", ylabel="validation loss", title="150 training samples: validation loss")
    ax_a.set(xlabel="epoch", ylabel="validation accuracy", title="Validation accuracy")
    for ax in (ax_l, ax_a):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
