"""Transfer learning with little labelled data: features learned on digits 0-4 help classify digits 5-9 from
10 labelled images per class.

    pip install ".[plot]" && python examples/transfer.py [--out transfer.png] [--seeds 10] [--quick]

Each seed: split the digits in half (train / test); pretrain 64 -> 128 -> 64 -> 5 on the training images of
0-4; copy its feature layers (64 -> 128 -> 64) into a new model with a fresh 5-way head, freeze them
(trainable = False) and train only the head on 50 images of 5-9 (10 per class, drawn with the seed).
Against the same architecture trained from scratch on the same 50 images, and against fine-tuning (the
pretrained layers copied but left trainable). All are scored on every test image of 5-9. Writes the accuracy
distributions (default: transfer.png next to this script).
"""
import argparse
import pathlib

import numpy as np

import neurocore as nc
from neurocore.datasets import load_digits, train_test_split

HERE = pathlib.Path(__file__).resolve().parent
PER_CLASS = 10


def features():
    return [nc.Dense(64, 128), nc.ReLU(), nc.Dense(128, 64), nc.ReLU()]


def train(model, x, y, epochs, seed):
    """Train on the 50 labelled images; the test accuracy is measured by the caller."""
    model.fit(x, y, optimizer=nc.Adam(lr=1e-2), epochs=epochs, batch_size=10, seed=seed, verbose=0)
    return model


def few_labels(y, per_class, rng):
    """Indices of per_class examples of every class in y."""
    return np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)])


def one_seed(x, y, seed, pretrain_epochs, epochs):
    """(frozen transfer, from scratch, fine-tuned) accuracies on the test images of 5-9 for one seed."""
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, seed=seed)
    source = y_train < 5
    pretrained = nc.Sequential([*features(), nc.Dense(64, 5)], seed=seed)
    pretrained.fit(x_train[source], y_train[source], optimizer=nc.Adam(lr=1e-3), epochs=pretrain_epochs,
                   batch_size=32, seed=seed, verbose=0)

    target_train, target_test = y_train >= 5, y_test >= 5
    pick = few_labels(y_train[target_train], PER_CLASS, np.random.default_rng(seed))
    x_few, y_few = x_train[target_train][pick], y_train[target_train][pick] - 5
    x_eval, y_eval = x_test[target_test], y_test[target_test] - 5

    transfer = nc.Sequential([*pretrained.layers[:4], nc.Dense(64, 5)], seed=seed)  # feature weights copied
    for layer in transfer.layers[:4]:
        layer.trainable = False
    scratch = nc.Sequential([*features(), nc.Dense(64, 5)], seed=seed)
    finetuned = nc.Sequential([*pretrained.layers[:4], nc.Dense(64, 5)], seed=seed)
    return tuple(train(model, x_few, y_few, epochs, seed).evaluate(x_eval, y_eval)["accuracy"]
                 for model in (transfer, scratch, finetuned))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "transfer.png")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="2 seeds, a few epochs (a smoke test)")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds, pretrain_epochs, epochs = (2, 2, 5) if args.quick else (args.seeds, 30, 100)
    x, y = load_digits()
    results = np.array([one_seed(x, y, seed, pretrain_epochs, epochs) for seed in range(seeds)])
    for seed, (acc_t, acc_s, acc_f) in enumerate(results):
        print(f"seed {seed}: transfer (frozen) {acc_t:.3f}, from scratch {acc_s:.3f}, fine-tuned {acc_f:.3f}")
    names = ["pretrained on 0-4, frozen,\nhead trained on 50 images", "from scratch\non the same 50 images",
             "pretrained on 0-4,\nall layers fine-tuned"]
    for name, accs in zip(names, results.T):
        print(f"{name.replace(chr(10), ' ')}: mean {accs.mean():.3f}, std {accs.std(ddof=1) if len(accs) > 1 else 0:.3f}, "
              f"min {accs.min():.3f}, max {accs.max():.3f} over {len(accs)} seeds")
    wins = int(np.sum(results[:, 0] > results[:, 1]))
    print(f"frozen transfer beats scratch on {wins} of {len(results)} seeds")

    fig, ax = plt.subplots(figsize=(9, 4.8))
    ax.boxplot(list(results.T), showmeans=True)
    ax.set_xticks([1, 2, 3], names)
    for i, accs in enumerate(results.T, start=1):
        jitter = np.random.default_rng(i).uniform(-0.08, 0.08, len(accs))
        ax.scatter(i + jitter, accs, s=18, zorder=3)
    ax.set(ylabel="test accuracy on digits 5-9",
           title=f"Transfer learning, {PER_CLASS} labelled images per class, {len(results)} seeds")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
