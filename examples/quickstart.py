"""Quickstart: train a small MLP on the bundled handwritten digits and test it.

Run with ``python examples/quickstart.py`` after ``pip install .`` (``--quick``: 2 epochs, a smoke test).
"""
import argparse

import neurocore as nc
from neurocore.datasets import load_digits, train_test_split

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="2 epochs (a smoke test)")
args = parser.parse_args()

# 1,797 8x8 images as rows of 64 pixels in [0, 1], labels 0..9.
X, y = load_digits()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=0)

model = nc.Sequential(
    [nc.Dense(64, 128), nc.ReLU(), nc.Dense(128, 64), nc.ReLU(), nc.Dense(64, 10)],
    seed=0,
)
model.fit(
    X_train,
    y_train,
    loss="cross_entropy",
    optimizer=nc.SGD(lr=0.05, momentum=0.9),
    epochs=2 if args.quick else 20,
    batch_size=32,
    seed=0,
    verbose=1,
)

metrics = model.evaluate(X_test, y_test, loss="cross_entropy")
print(f"test accuracy: {metrics['accuracy']:.4f} on {len(y_test)} images")
