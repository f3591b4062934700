"""Per-framework MLP trainers and predictors used by benchmarks/run.py.

Every framework gets the same network (Dense layers with ReLU between them, logits
out), the same synthetic float32 data, cross-entropy loss and SGD with momentum 0.9,
weight decay 1e-4 (torch.optim.SGD semantics).  Each ``make_trainer`` returns an
object whose ``epoch()`` trains one shuffled epoch and returns the mean batch loss.
Imports happen inside the functions so that a missing framework only skips itself.
"""

from __future__ import annotations

import numpy as np

LR = 0.01
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-4

FRAMEWORKS = ("neurocore", "torch", "jax", "numpy")


def available(name: str) -> str | None:
    """None when the framework can be imported, else the reason it cannot."""
    try:
        if name == "neurocore":
            import neurocore
            neurocore.Sequential  # noqa: B018
        elif name == "torch":
            import torch  # noqa: F401
        elif name == "jax":
            import jax  # noqa: F401
        elif name == "numpy":
            import numpy  # noqa: F401
        elif name == "sklearn":
            import sklearn  # noqa: F401
        else:
            return f"unknown framework {name}"
    except Exception as exc:  # ImportError, or a broken build
        return f"{type(exc).__name__}: {exc}"
    return None


def findable(name: str) -> bool:
    """Cheap check for the parent process: is the module installed?  (Does not import
    it, so the parent stays small and its peak RSS is not inherited by children.)"""
    import importlib.util
    return importlib.util.find_spec(name) is not None


def set_threads(name: str, n: int) -> None:
    if name == "neurocore":
        import neurocore as nc
        nc.set_num_threads(n)
    elif name == "torch":
        import torch
        torch.set_num_threads(n)
    elif name == "numpy":
        try:
            import threadpoolctl
            threadpoolctl.threadpool_limits(n)
        except ImportError:
            pass
    # jax: controlled by the pinned affinity (and XLA_FLAGS for one thread)


def init_params(sizes, seed=0):
    """He-uniform weights (in, out) and zero biases, float32."""
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        lim = np.sqrt(6.0 / fan_in)
        W = rng.uniform(-lim, lim, size=(fan_in, fan_out)).astype(np.float32)
        b = np.zeros(fan_out, np.float32)
        params.append((W, b))
    return params


# --------------------------------------------------------------------------- neurocore

class NeurocoreTrainer:
    def __init__(self, sizes, X, y, batch):
        import neurocore as nc
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nc.Dense(a, b))
            if i < len(sizes) - 2:
                layers.append(nc.ReLU())
        self.model = nc.Sequential(layers, dtype="float32", seed=0)
        self.opt = nc.SGD(lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        self.X, self.y, self.batch = X, y, batch
        self.calls = 0

    def epoch(self):
        self.calls += 1
        hist = self.model.fit(self.X, self.y, loss="cross_entropy", optimizer=self.opt,
                              epochs=1, batch_size=self.batch, shuffle=True,
                              seed=self.calls, verbose=0)
        return float(hist["loss"][0])


# --------------------------------------------------------------------------- torch

class TorchTrainer:
    def __init__(self, sizes, X, y, batch):
        import torch
        from torch import nn
        torch.manual_seed(0)
        mods = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            mods.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                mods.append(nn.ReLU())
        self.torch = torch
        self.model = nn.Sequential(*mods)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=MOMENTUM,
                                   weight_decay=WEIGHT_DECAY)
        self.X = torch.from_numpy(X)
        self.y = torch.from_numpy(y.astype(np.int64))
        self.batch = batch
        self.steps = X.shape[0] // batch
        self.gen = torch.Generator().manual_seed(0)

    def epoch(self):
        torch = self.torch
        F = torch.nn.functional
        perm = torch.randperm(self.X.shape[0], generator=self.gen)
        losses = []
        b = self.batch
        for i in range(self.steps):
            idx = perm[i * b:(i + 1) * b]
            xb, yb = self.X[idx], self.y[idx]
            self.opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.model(xb), yb)
            loss.backward()
            self.opt.step()
            losses.append(loss.detach())
        return float(torch.stack(losses).mean())


# --------------------------------------------------------------------------- jax

class JaxTrainer:
    """jit-compiled epoch: shuffle, then lax.scan over the batches."""

    def __init__(self, sizes, X, y, batch):
        import jax
        import jax.numpy as jnp
        self.jax = jax
        n = X.shape[0]
        steps = n // batch
        params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in init_params(sizes)]
        mom = jax.tree_util.tree_map(jnp.zeros_like, params)
        self.X = jnp.asarray(X)
        self.y = jnp.asarray(y.astype(np.int32))

        def loss_fn(p, xb, yb):
            h = xb
            for W, b in p[:-1]:
                h = jax.nn.relu(h @ W + b)
            W, b = p[-1]
            logits = h @ W + b
            lse = jax.nn.logsumexp(logits, axis=1)
            picked = jnp.take_along_axis(logits, yb[:, None], axis=1)[:, 0]
            return jnp.mean(lse - picked)

        grad_fn = jax.value_and_grad(loss_fn)

        def step(carry, idx):
            p, m, Xa, ya = carry
            loss, g = grad_fn(p, Xa[idx], ya[idx])
            g = jax.tree_util.tree_map(lambda gi, pi: gi + WEIGHT_DECAY * pi, g, p)
            m = jax.tree_util.tree_map(lambda mi, gi: MOMENTUM * mi + gi, m, g)
            p = jax.tree_util.tree_map(lambda pi, mi: pi - LR * mi, p, m)
            return (p, m, Xa, ya), loss

        def epoch_fn(p, m, Xa, ya, key):
            perm = jax.random.permutation(key, n)[:steps * batch].reshape(steps, batch)
            (p, m, _, _), losses = jax.lax.scan(step, (p, m, Xa, ya), perm)
            return p, m, jnp.mean(losses)

        self.epoch_fn = jax.jit(epoch_fn, donate_argnums=(0, 1))
        self.params, self.mom = params, mom
        self.key = jax.random.PRNGKey(0)

    def epoch(self):
        self.key, sub = self.jax.random.split(self.key)
        self.params, self.mom, loss = self.epoch_fn(self.params, self.mom, self.X, self.y, sub)
        return float(loss)  # blocks until the epoch is done


# --------------------------------------------------------------------------- numpy

class NumpyTrainer:
    """Hand-written forward / backward / SGD in NumPy (float32 throughout)."""

    def __init__(self, sizes, X, y, batch):
        self.params = [(W.copy(), b.copy()) for W, b in init_params(sizes)]
        self.vel = [(np.zeros_like(W), np.zeros_like(b)) for W, b in self.params]
        self.X, self.y, self.batch = X, y.astype(np.int64), batch
        self.steps = X.shape[0] // batch
        self.rng = np.random.default_rng(0)

    def train_step(self, xb, yb):
        acts = [xb]
        h = xb
        last = len(self.params) - 1
        for i, (W, b) in enumerate(self.params):
            h = h @ W
            h += b
            if i < last:
                np.maximum(h, 0, out=h)
            acts.append(h)
        logits = acts[-1]
        B = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        rows = np.arange(B)
        loss = float(np.mean(np.log(s[:, 0]) - shifted[rows, yb]))
        g = e / s
        g[rows, yb] -= 1.0
        g *= np.float32(1.0 / B)
        for i in range(last, -1, -1):
            W, b = self.params[i]
            vW, vb = self.vel[i]
            gW = acts[i].T @ g
            gb = g.sum(axis=0)
            if i > 0:
                g = g @ W.T
                g *= acts[i] > 0  # ReLU derivative from the layer's output
            gW += np.float32(WEIGHT_DECAY) * W
            gb += np.float32(WEIGHT_DECAY) * b
            vW *= np.float32(MOMENTUM)
            vW += gW
            vb *= np.float32(MOMENTUM)
            vb += gb
            W -= np.float32(LR) * vW
            b -= np.float32(LR) * vb
        return loss

    def epoch(self):
        perm = self.rng.permutation(self.X.shape[0])
        b = self.batch
        total = 0.0
        for i in range(self.steps):
            idx = perm[i * b:(i + 1) * b]
            total += self.train_step(self.X[idx], self.y[idx])
        return total / self.steps


TRAINERS = {"neurocore": NeurocoreTrainer, "torch": TorchTrainer, "jax": JaxTrainer,
            "numpy": NumpyTrainer}


# --------------------------------------------------------------------------- inference

def make_predictors(fw, sizes, X_fit=None, y_fit=None):
    """name -> callable(x) -> ndarray for one framework, same architecture, untrained
    weights (sklearn's MLPClassifier is fitted for one iteration on (X_fit, y_fit),
    which it needs before predict_proba).  Every callable takes and returns NumPy."""
    params = init_params(sizes)
    out = {}
    if fw == "neurocore":
        import neurocore as nc
        layers = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nc.Dense(a, b))
            if i < len(sizes) - 2:
                layers.append(nc.ReLU())
        m = nc.Sequential(layers, dtype="float32", seed=0)
        out["neurocore predict"] = lambda x: m.predict(x)
        out["neurocore forward"] = lambda x: m.forward(x)
    elif fw == "torch":
        import torch
        from torch import nn
        mods = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            mods.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                mods.append(nn.ReLU())
        tm = nn.Sequential(*mods).eval()

        def torch_pred(x):
            with torch.no_grad():
                return tm(torch.from_numpy(x)).numpy()
        out["torch no_grad"] = torch_pred
    elif fw == "jax":
        import jax
        import jax.numpy as jnp
        jp = [(jnp.asarray(W), jnp.asarray(b)) for W, b in params]

        @jax.jit
        def fwd(p, x):
            h = x
            for W, b in p[:-1]:
                h = jax.nn.relu(h @ W + b)
            W, b = p[-1]
            return h @ W + b
        out["jax jit"] = lambda x: np.asarray(fwd(jp, x))
    elif fw == "numpy":
        def np_pred(x):
            h = x
            last = len(params) - 1
            for i, (W, b) in enumerate(params):
                h = h @ W
                h += b
                if i < last:
                    np.maximum(h, 0, out=h)
            return h
        out["numpy"] = np_pred
    elif fw == "sklearn":
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
        clf = MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu",
                            solver="sgd", max_iter=1, batch_size=64, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X_fit, y_fit)
        out["sklearn predict_proba"] = clf.predict_proba
    else:
        raise ValueError(f"unknown framework {fw!r}")
    return out
