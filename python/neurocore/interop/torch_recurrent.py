"""RNN, LSTM and GRU between neurocore and PyTorch (one layer, ``batch_first=True``, zero initial state).

Gate orders, equations and the two biases are already PyTorch's; only the weights are transposed (ours
(in, G*hidden) is torch's ``weight_ih_l0.T``). A torch recurrent module returns a tuple, so ``to_torch``
wraps it in :class:`Recurrent`, which returns every step's output or the last one as ours does;
``from_torch`` reads that wrapper, and a bare ``nn.RNN/LSTM/GRU`` as every step's output (its ``output``).
"""
from __future__ import annotations

from torch import nn

from .. import layers as nc_layers
from .torch_convert import from_torch_converter, numpy, to_torch_converter

__all__ = ["Recurrent"]


class Recurrent(nn.Module):
    """A torch RNN/LSTM/GRU (batch_first) returning every step's output (N, T, H) with
    ``return_sequences=True``, else the last step's (N, H), like neurocore's recurrent layers."""

    def __init__(self, rnn: nn.RNNBase, return_sequences: bool = False):
        super().__init__()
        self.rnn, self.return_sequences = rnn, bool(return_sequences)

    def forward(self, x):
        out = self.rnn(x)[0]
        return out if self.return_sequences else out[:, -1]

    def extra_repr(self) -> str:
        return f"return_sequences={self.return_sequences}"


_TORCH_CLASS = {nc_layers.RNN: nn.RNN, nc_layers.LSTM: nn.LSTM, nc_layers.GRU: nn.GRU}
_OURS = {nn.RNN: nc_layers.RNN, nn.LSTM: nc_layers.LSTM, nn.GRU: nc_layers.GRU}


@to_torch_converter(nc_layers.RNN)
@to_torch_converter(nc_layers.LSTM)
@to_torch_converter(nc_layers.GRU)
def _recurrent_to_torch(layer, ctx):
    options = {"nonlinearity": layer.nonlinearity} if isinstance(layer, nc_layers.RNN) else {}
    rnn = _TORCH_CLASS[type(layer)](layer.input_size, layer.hidden_size, bias=layer.use_bias, batch_first=True,
                                    dtype=ctx.dtype, **options)
    for ours, theirs in (("weight_ih", "weight_ih_l0"), ("weight_hh", "weight_hh_l0")):
        ctx.set(getattr(rnn, theirs), ctx.array(ours).T)
    if layer.use_bias:
        ctx.set(rnn.bias_ih_l0, "bias_ih")
        ctx.set(rnn.bias_hh_l0, "bias_hh")
    return Recurrent(rnn, layer.return_sequences)


@from_torch_converter(Recurrent)
def _wrapped_from_torch(m, ctx):
    if type(m.rnn) not in _OURS:
        raise ValueError(f"Recurrent wraps {type(m.rnn).__name__}; expected nn.RNN, nn.LSTM or nn.GRU")
    return _recurrent(m.rnn, ctx, m.return_sequences)


@from_torch_converter(nn.RNN, nn.LSTM, nn.GRU)
def _bare_from_torch(m, ctx):
    return _recurrent(m, ctx, True)


def _recurrent(m, ctx, return_sequences: bool):
    name = type(m).__name__
    problems = []
    if not m.batch_first:
        problems.append("batch_first=True (neurocore's sequences are (N, T, F))")
    if m.num_layers != 1:
        problems.append(f"num_layers=1 (stack {m.num_layers} layers with return_sequences=True instead)")
    if m.bidirectional:
        problems.append("bidirectional=False")
    if getattr(m, "proj_size", 0):
        problems.append("proj_size=0")
    if problems:
        raise ValueError(f"{name} is supported with " + ", ".join(problems))
    if ctx.shape is None:
        raise ValueError(f"{name} needs the sequence length: pass input_shape=(steps, {m.input_size})")
    if ctx.layout == "torch":
        raise ValueError(f"{name} takes (N, T, F) sequences, but here the features are on axis 1")
    options = {"nonlinearity": m.nonlinearity} if isinstance(m, nn.RNN) else {}
    layer = _OURS[type(m)](m.input_size, m.hidden_size, return_sequences=return_sequences, bias=m.bias, **options)
    arrays = {"weight_ih": numpy(m.weight_ih_l0).T, "weight_hh": numpy(m.weight_hh_l0).T}
    if m.bias:
        arrays.update(bias_ih=numpy(m.bias_ih_l0), bias_hh=numpy(m.bias_hh_l0))
    return layer, arrays
