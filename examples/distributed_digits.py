"""Data-parallel training over MPI on the bundled handwritten digits.

    pip install "neurocore[mpi]"
    mpiexec -n 2 python examples/distributed_digits.py

Every rank loads the same data and passes the same seed. Each step trains on a global batch of
batch_size x (number of ranks) rows, rank r on its share; the gradients are summed over the ranks inside
the C++ step, so every rank holds the same weights (those of one process with the global batch) and
prints the same accuracy. Only rank 0 shows the progress bar. Without mpiexec it runs as one rank.
"""

import neurocore as nc
from neurocore.datasets import load_digits, train_test_split

X, y = load_digits()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=0)

model = nc.Sequential(
    [nc.Dense(64, 128), nc.ReLU(), nc.BatchNorm(128), nc.Dense(128, 10)],
    seed=0,
)
history = model.fit(
    X_train,
    y_train,
    optimizer=nc.SGD(lr=0.05, momentum=0.9),
    epochs=15,
    batch_size=16,   # per rank
    seed=0,
    validation_data=(X_test, y_test),
    distributed="mpi",
    verbose=1,
)

metrics = model.evaluate(X_test, y_test)
print(f"rank {nc.distributed.rank()} of {nc.distributed.world_size()}: test accuracy {metrics['accuracy']:.4f}, "
      f"final training loss {history['loss'][-1]:.6f}")
