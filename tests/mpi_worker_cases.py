"""The data, models and cases shared by tests/mpi_worker.py (a rank) and tests/test_distributed.py."""
import numpy as np

import neurocore as nc


def data(n=203, features=12, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)), rng.integers(0, classes, n)


def model(dtype, batchnorm, seed=1):
    layers = [nc.Dense(12, 16), nc.ReLU()]
    if batchnorm:
        layers.append(nc.BatchNorm(16))
    layers.append(nc.Dense(16, 4))
    return nc.Sequential(layers, dtype=dtype, seed=seed)


def optimizer(kind):
    return nc.SGD(lr=0.05, momentum=0.9) if kind == "sgd" else nc.Adam(lr=0.01)


def flat(m):
    return np.concatenate([p.ravel() for p in m.parameters()] +
                          [layer.running_mean for layer in m.parameter_layers() if isinstance(layer, nc.BatchNorm)] +
                          [layer.running_var for layer in m.parameter_layers() if isinstance(layer, nc.BatchNorm)])


# The equivalence cases (shared with the test, which runs the one-process references).
CASES = [(dtype, opt, bn) for dtype in ("float64", "float32") for opt, bn in (("sgd", False), ("adam", False), ("sgd", True))]
SHARD_ROWS = (61, 90)   # rank 0's and rank 1's shard sizes: the smaller decides the step count
