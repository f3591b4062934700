"""The recurrent NumPy reference checked against itself (central differences) and against PyTorch's
torch.nn.RNN/LSTM/GRU (skipped without torch): the oracle of test_recurrent.py must be right first."""
from __future__ import annotations

import numpy as np
import pytest
import recurrent_reference as ref

import reference

CASES = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", "tanh"), ("gru", "tanh")]


@pytest.mark.parametrize("kind,nonlinearity", CASES)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_reference_backward_matches_central_differences(kind, nonlinearity, return_sequences):
    rng = np.random.default_rng(7)
    n, steps, n_in, hidden = 3, 5, 4, 3
    p = ref.init_params(kind, n_in, hidden, rng)
    x = rng.standard_normal((n, steps, n_in))
    hs, _ = ref.forward(kind, p, x, nonlinearity)
    w = rng.standard_normal(ref.output(hs, return_sequences).shape)

    def loss():
        return float(np.sum(w * ref.output(ref.forward(kind, p, x, nonlinearity)[0], return_sequences)))

    _, cache = ref.forward(kind, p, x, nonlinearity)
    dx, grads = ref.backward(cache, ref.output_grad(w, hs.shape, return_sequences))
    for name, arr in [("x", x), *p.items()]:
        reference.assert_grad(dx if name == "x" else grads[name], reference.numeric_grad(loss, arr), f"{kind} d{name}")


@pytest.mark.parametrize("kind,nonlinearity", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_reference_matches_torch(kind, nonlinearity, bias):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    n, steps, n_in, hidden = 5, 7, 6, 4
    p = ref.init_params(kind, n_in, hidden, rng, bias=bias)
    x = rng.standard_normal((n, steps, n_in))
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    extra = {"nonlinearity": nonlinearity} if kind == "rnn" else {}
    layer = cls(n_in, hidden, batch_first=True, bias=bias, **extra).double()
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.from_numpy(p["weight_ih"].T))
        layer.weight_hh_l0.copy_(torch.from_numpy(p["weight_hh"].T))
        if bias:
            layer.bias_ih_l0.copy_(torch.from_numpy(p["bias_ih"]))
            layer.bias_hh_l0.copy_(torch.from_numpy(p["bias_hh"]))
    xt = torch.from_numpy(x).requires_grad_(True)
    out, _ = layer(xt)
    w = rng.standard_normal((n, steps, hidden))
    (out * torch.from_numpy(w)).sum().backward()

    hs, cache = ref.forward(kind, p, x, nonlinearity)
    dx, grads = ref.backward(cache, w)
    np.testing.assert_allclose(hs, out.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["weight_ih"], layer.weight_ih_l0.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["weight_hh"], layer.weight_hh_l0.grad.numpy().T, rtol=1e-10, atol=1e-12)
    if bias:
        np.testing.assert_allclose(grads["bias_ih"], layer.bias_ih_l0.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(grads["bias_hh"], layer.bias_hh_l0.grad.numpy(), rtol=1e-10, atol=1e-12)
