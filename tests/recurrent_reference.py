"""Float64 NumPy reference of the recurrent layers (RNN, LSTM, GRU): forward and backpropagation through
time, written to be checked against the equations, not to be fast.

Conventions are PyTorch's (``torch.nn.RNN/LSTM/GRU``, one layer, ``batch_first=True``, zero initial state),
with our (in, out) weight layout: ``weight_ih`` is (F, G*H) = torch's ``weight_ih_l0.T`` and ``weight_hh``
is (H, G*H) = ``weight_hh_l0.T``; ``bias_ih`` and ``bias_hh`` are (G*H,). G = 1 (RNN), 4 (LSTM, gates
i, f, g, o), 3 (GRU, gates r, z, n).

    RNN   h_t = act(x_t W_ih + b_ih + h_{t-1} W_hh + b_hh)                       act = tanh or relu
    LSTM  i, f, g, o = sigma, sigma, tanh, sigma of (x_t W_ih + b_ih + h_{t-1} W_hh + b_hh)
          c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
    GRU   r, z = sigma(x_t W_ih + b_ih + h_{t-1} W_hh + b_hh)  (their first two blocks)
          n = tanh(x_t W_in + b_in + r * (h_{t-1} W_hn + b_hn)),   h_t = (1 - z) * n + z * h_{t-1}
"""
from __future__ import annotations

import numpy as np

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))   # no overflow for large |x|


def init_params(kind, n_in, hidden, rng, bias=True):
    """PyTorch's default initialisation, uniform in +-1/sqrt(H), as float64 arrays in our layout."""
    g = GATES[kind]
    bound = 1.0 / np.sqrt(hidden)
    p = {"weight_ih": rng.uniform(-bound, bound, (n_in, g * hidden)),
         "weight_hh": rng.uniform(-bound, bound, (hidden, g * hidden))}
    if bias:
        p["bias_ih"] = rng.uniform(-bound, bound, g * hidden)
        p["bias_hh"] = rng.uniform(-bound, bound, g * hidden)
    return p


def _biases(p, hidden, g):
    zero = np.zeros(g * hidden)
    return p.get("bias_ih", zero), p.get("bias_hh", zero)


def forward(kind, p, x, nonlinearity="tanh"):
    """x (N, T, F) -> (hs (N, T, H), cache for backward)."""
    x = np.asarray(x, dtype=np.float64)
    n, steps, _ = x.shape
    hidden = p["weight_hh"].shape[0]
    g = GATES[kind]
    b_ih, b_hh = _biases(p, hidden, g)
    h = np.zeros((n, hidden))
    c = np.zeros((n, hidden))
    hs = np.zeros((n, steps, hidden))
    steps_cache = []
    for t in range(steps):
        xi = x[:, t] @ p["weight_ih"] + b_ih    # (N, G*H): the input's part of every gate
        hh = h @ p["weight_hh"] + b_hh          # (N, G*H): the recurrent part
        if kind == "rnn":
            pre = xi + hh
            h_new = np.tanh(pre) if nonlinearity == "tanh" else np.maximum(pre, 0.0)
            steps_cache.append({"h_prev": h, "h": h_new})
        elif kind == "lstm":
            a = xi + hh
            i, f = sigmoid(a[:, :hidden]), sigmoid(a[:, hidden:2 * hidden])
            gg, o = np.tanh(a[:, 2 * hidden:3 * hidden]), sigmoid(a[:, 3 * hidden:])
            c_new = f * c + i * gg
            tc = np.tanh(c_new)
            h_new = o * tc
            steps_cache.append({"h_prev": h, "c_prev": c, "i": i, "f": f, "g": gg, "o": o, "tc": tc})
            c = c_new
        else:  # gru
            r = sigmoid(xi[:, :hidden] + hh[:, :hidden])
            z = sigmoid(xi[:, hidden:2 * hidden] + hh[:, hidden:2 * hidden])
            hn = hh[:, 2 * hidden:]             # W_hn h + b_hn, which the reset gate scales
            nn = np.tanh(xi[:, 2 * hidden:] + r * hn)
            h_new = (1.0 - z) * nn + z * h
            steps_cache.append({"h_prev": h, "r": r, "z": z, "n": nn, "hn": hn})
        h = h_new
        hs[:, t] = h
    return hs, {"kind": kind, "x": x, "p": p, "steps": steps_cache, "nonlinearity": nonlinearity}


def backward(cache, dhs):
    """dhs (N, T, H) = dL/d(every step's output) -> (dx (N, T, F), gradients keyed like the parameters).

    Walks time in reverse: each step's gate gradients give its share of dW_ih (through x_t), dW_hh
    (through h_{t-1}) and the biases, and pass dL/dh_{t-1} (and dL/dc_{t-1}) to the step before.
    """
    kind, x, p = cache["kind"], cache["x"], cache["p"]
    n, steps, _ = x.shape
    hidden = p["weight_hh"].shape[0]
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dx = np.zeros_like(x)
    dh = np.zeros((n, hidden))     # dL/dh_t from the steps after t
    dc = np.zeros((n, hidden))     # LSTM: dL/dc_t from the step after t
    for t in reversed(range(steps)):
        s = cache["steps"][t]
        dh = dh + dhs[:, t]
        if kind == "rnn":
            act_grad = 1.0 - s["h"] ** 2 if cache["nonlinearity"] == "tanh" else (s["h"] > 0).astype(float)
            da_x = da_h = dh * act_grad
        elif kind == "lstm":
            do = dh * s["tc"]
            dc = dc + dh * s["o"] * (1.0 - s["tc"] ** 2)
            di, df, dg = dc * s["g"], dc * s["c_prev"], dc * s["i"]
            da_x = da_h = np.concatenate([di * s["i"] * (1 - s["i"]), df * s["f"] * (1 - s["f"]),
                                          dg * (1 - s["g"] ** 2), do * s["o"] * (1 - s["o"])], axis=1)
            dc = dc * s["f"]
        else:  # gru
            dn = dh * (1.0 - s["z"])
            dz = dh * (s["h_prev"] - s["n"])
            dn_pre = dn * (1.0 - s["n"] ** 2)
            dr = dn_pre * s["hn"]
            dr_pre, dz_pre = dr * s["r"] * (1 - s["r"]), dz * s["z"] * (1 - s["z"])
            da_x = np.concatenate([dr_pre, dz_pre, dn_pre], axis=1)             # d(x W_ih + b_ih)
            da_h = np.concatenate([dr_pre, dz_pre, dn_pre * s["r"]], axis=1)    # d(h W_hh + b_hh)
        grads["weight_ih"] += x[:, t].T @ da_x
        grads["weight_hh"] += s["h_prev"].T @ da_h
        if "bias_ih" in grads:
            grads["bias_ih"] += da_x.sum(axis=0)
            grads["bias_hh"] += da_h.sum(axis=0)
        dx[:, t] = da_x @ p["weight_ih"].T
        dh_prev = da_h @ p["weight_hh"].T
        if kind == "gru":
            dh_prev = dh_prev + dh * s["z"]
        dh = dh_prev
    return dx, grads


def output(hs, return_sequences):
    """The layer's output from every step's hidden state: all of them, or the last one."""
    return hs if return_sequences else hs[:, -1]


def output_grad(dy, hs_shape, return_sequences):
    """dL/d(every step's hidden state) from dL/d(the layer's output)."""
    if return_sequences:
        return np.asarray(dy, dtype=np.float64)
    d = np.zeros(hs_shape)
    d[:, -1] = dy
    return d
