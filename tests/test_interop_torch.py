"""nc.from_torch and Sequential.to_torch, checked by PyTorch itself (eval mode), and the digits chain
PyTorch-trained -> neurocore -> ONNX."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from interop_zoo import BATCHES, ZOO, assert_matches, inputs, layer_kinds, layer_stacks, randomize, zoo_model
from reliability import property_settings

import neurocore as nc

torch = pytest.importorskip("torch")
nn = torch.nn
from neurocore.interop import torch_convert  # noqa: E402  (needs torch)
from neurocore.interop.torch_convert import Permute  # noqa: E402
from neurocore.interop.torch_recurrent import Recurrent  # noqa: E402

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def run_torch(module, x):
    """module(x) as NumPy; a bare recurrent module's (output, state) gives its output."""
    with torch.no_grad():
        out = module(torch.from_numpy(np.ascontiguousarray(x)))
    return (out[0] if isinstance(out, tuple) else out).numpy()


def run_torch_ours(module, x):
    """module on our batch x: images go in as NCHW and come back channels-last."""
    y = run_torch(module, x.transpose(0, 3, 1, 2) if x.ndim == 4 else x)
    return y.transpose(0, 2, 3, 1) if y.ndim == 4 else y


def torch_shape(shape):
    """A sample shape as PyTorch takes it: images (C, H, W)."""
    return (shape[2], shape[0], shape[1]) if len(shape) == 3 else tuple(shape)


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].dtype == sb[key].dtype and np.array_equal(sa[key], sb[key]), key


def test_the_zoo_covers_every_convertible_kind():
    kinds = set().union(*(layer_kinds(build()) for build in ZOO.values()))
    assert kinds == {cls.__name__ for cls in torch_convert._TO_TORCH}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")   # torch pads a copy: slower, exact
@pytest.mark.parametrize("name", list(ZOO))
def test_to_torch_equals_predict_and_round_trips_bitwise(name, dtype):
    model = zoo_model(name, dtype)
    module = model.to_torch()
    assert isinstance(module, nn.Sequential) and not module.training
    assert all(p.dtype == TORCH_DTYPES[model.dtype] for p in module.parameters())
    for batch in BATCHES:
        x = inputs(model, batch)
        assert_matches(run_torch_ours(module, x), model.predict(x), dtype, f"{name} batch {batch}")
    back = nc.from_torch(module, input_shape=torch_shape(model.input_shape))
    assert back.dtype == model.dtype and back.get_config() == model.get_config()
    assert_same_weights(back, model)


def test_to_torch_copies_the_weights():
    model = zoo_model("mlp", "float32")
    module = model.to_torch()
    with torch.no_grad():
        module[0].weight.fill_(3.0)
    assert not np.any(model.layers[0].weight == 3.0)


TORCH_ZOO = {   # torch modules as people write them, with every supported kind (and nested Sequentials)
    "mlp": lambda: nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.Linear(16, 3)),
    "activations": lambda: nn.Sequential(nn.Linear(6, 11), nn.Identity(), nn.Tanh(), nn.Linear(11, 11),
                                         nn.LeakyReLU(0.2), nn.Linear(11, 13), nn.ELU(1.3), nn.Linear(13, 8),
                                         nn.GELU(), nn.Linear(8, 4), nn.Sigmoid(), nn.Linear(4, 4), nn.Softmax(dim=-1)),
    "batchnorm": lambda: nn.Sequential(nn.Linear(10, 12), nn.BatchNorm1d(12, eps=1e-3, momentum=0.2), nn.ReLU(),
                                       nn.Dropout(0.4), nn.Linear(12, 12, bias=False),
                                       nn.BatchNorm1d(12, affine=False), nn.Softmax(dim=1)),
    "nested": lambda: nn.Sequential(nn.Sequential(nn.Linear(5, 8), nn.GELU()),
                                    torch_convert.Residual(nn.Linear(8, 8), nn.ELU()), nn.Linear(8, 2)),
    "lstm": lambda: nn.Sequential(Recurrent(nn.LSTM(5, 8, batch_first=True)), nn.Linear(8, 3)),
    "rnn_gru": lambda: nn.Sequential(
        Recurrent(nn.RNN(4, 6, nonlinearity="relu", batch_first=True), return_sequences=True),
        nn.Linear(6, 5), nn.Tanh(), nn.GRU(5, 3, bias=False, batch_first=True)),
    "sequence_batchnorm": lambda: nn.Sequential(
        Recurrent(nn.GRU(3, 4, batch_first=True), return_sequences=True), torch_convert.Permute(0, 2, 1),
        nn.BatchNorm1d(4), torch_convert.Permute(0, 2, 1), nn.Linear(4, 2)),
    "cnn": lambda: nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(6, 8, (3, 2), stride=(1, 2)), nn.GELU(),
                                 nn.AvgPool2d(3, stride=1, padding=1), nn.Flatten(), nn.Linear(72, 5),
                                 nn.Softmax(dim=1)),
    "global_pool": lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding="same"), nn.ELU(), nn.AdaptiveAvgPool2d(1),
                                         nn.Flatten(), nn.Linear(4, 3)),
    "channel_softmax": lambda: nn.Sequential(nn.Conv2d(2, 3, 1), nn.Softmax(dim=1), nn.Conv2d(3, 2, 3, padding=1)),
    "flatten_batchnorm": lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.BatchNorm1d(12), nn.Tanh(),
                                               nn.Linear(12, 2)),
}


def torch_model(name, dtype):
    """TORCH_ZOO[name] in eval mode and ``dtype``, BatchNorm statistics and affine terms randomised."""
    torch.manual_seed(0)
    module = TORCH_ZOO[name]()
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_()
                m.running_var.uniform_(0.25, 4.0)
                if m.affine:
                    m.weight.normal_(1.0, 0.3)
                    m.bias.normal_(0.0, 0.5)
    return module.to(TORCH_DTYPES[np.dtype(dtype)]).eval()


TORCH_INPUT_SHAPES = {"lstm": (7, 5), "rnn_gru": (6, 4), "sequence_batchnorm": (5, 3), "cnn": (3, 10, 12), "global_pool": (2, 7, 7),
                      "channel_softmax": (2, 4, 5), "flatten_batchnorm": (1, 4, 5)}


@pytest.mark.parametrize("name", list(TORCH_ZOO))
def test_from_torch_equals_torch_eval(name, dtype):
    module = torch_model(name, dtype)
    model = nc.from_torch(module, input_shape=TORCH_INPUT_SHAPES.get(name))
    assert model.dtype == dtype
    for batch in BATCHES:
        x = inputs(model, batch)
        assert_matches(model.predict(x), run_torch_ours(module, x), dtype, f"{name} batch {batch}")
    again = model.to_torch()
    x = inputs(model, 33)
    assert_matches(run_torch_ours(again, x), run_torch_ours(module, x), dtype, "to_torch(from_torch(m)) against m")
    assert_same_weights(nc.from_torch(again, input_shape=TORCH_INPUT_SHAPES.get(name)), model)


def test_from_torch_copies_the_weights():
    module = torch_model("mlp", "float32")
    model = nc.from_torch(module, input_shape=(7,))
    model.layers[0].weight[...] = 5.0
    assert not torch.any(module[0].weight == 5.0)


@property_settings(20)
@given(stack=layer_stacks(), dtype=st.sampled_from(["float32", "float64"]), seed=st.integers(0, 2**32 - 1))
def test_any_stack_converts_exactly_both_ways(stack, dtype, seed):
    model = nc.Sequential(stack[0], dtype=dtype, seed=0)
    randomize(model, seed)
    module = model.to_torch()
    x = inputs(model, 5, seed)
    assert_matches(run_torch_ours(module, x), model.predict(x), dtype)
    assert_same_weights(nc.from_torch(module, input_shape=torch_shape(model.input_shape)), model)


# ------------------------------------------------------------------------------------------ refusals
class Custom(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize("module, error, match", [
    (lambda: nn.Linear(3, 2), TypeError, r"expects a torch.nn.Sequential, got Linear \(wrap it"),
    (lambda: nn.ModuleList([nn.Linear(3, 2)]), TypeError, "got ModuleList"),
    (lambda: [nn.Linear(3, 2)], TypeError, "got list"),
    (lambda: "model", TypeError, "got str"),
    (lambda: nn.Sequential(), ValueError, "is empty"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Conv1d(4, 4, 1)), ValueError,
     r"module 2 \(Conv1d\(4, 4.*\) is not supported; supported: .*Linear"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.ReLU(), Custom())), ValueError,
     r"module 1\.1 \(Custom\(\)\) is not supported"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.GELU(approximate="tanh")), ValueError,
     r"module 1 .*approximate='tanh'.*exact erf form"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.Softmax(dim=0)), ValueError, r"module 1 .*Softmax\(dim=0\)"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(1.5)), ValueError, r"module 1 .*alpha must be in \[0, 1\)"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False)), ValueError,
     "module 1 .*track_running_stats=False"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=None)), ValueError, "momentum=None"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.Dropout(1.0)), ValueError, r"module 1 .*p must be in \[0, 1\)"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 2)), ValueError,
     r"module 1 \(Linear.*\): Dense\(5, 2\) expects 5 inputs but the layer before it produces 4"),
    (lambda: nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2).double()), ValueError, "mixes dtypes"),
    (lambda: nn.Sequential(nn.Linear(3, 4).half()), ValueError, "torch.float16"),
    (lambda: nn.Sequential(nn.ReLU()), ValueError, "needs input_shape"),
    (lambda: nn.Sequential(nn.LSTM(3, 4, batch_first=True)), ValueError,
     r"module 0 .*LSTM needs the sequence length: pass input_shape=\(steps, 3\)"),
    (lambda: nn.Sequential(nn.LSTM(3, 4)), ValueError, r"module 0 .*LSTM is supported with batch_first=True"),
    (lambda: nn.Sequential(nn.GRU(3, 4, num_layers=2, batch_first=True)), ValueError, "num_layers=1"),
    (lambda: nn.Sequential(nn.RNN(3, 4, bidirectional=True, batch_first=True)), ValueError, "bidirectional=False"),
    (lambda: nn.Sequential(nn.LSTM(3, 4, proj_size=2, batch_first=True)), ValueError, "proj_size=0"),
])
def test_unsupported_modules_are_refused_by_name(module, error, match):
    with pytest.raises(error, match=match):
        nc.from_torch(module())


@pytest.mark.parametrize("modules, match", [
    ([nn.BatchNorm1d(3)], r"module 0 .*normalises axis 1, the steps"),
    ([nn.Tanh(), Permute(0, 2, 1)], r"ends with a sequence's features on axis 1"),
    ([Permute(0, 2, 1), nn.Linear(5, 2)], r"module 1 .*acts on the last axis of a tensor whose channels/features"),
    ([Permute(0, 2, 1), nn.GRU(3, 2, batch_first=True)], r"module 1 .*features are on axis 1"),
    ([Permute(0, 2, 1), nn.Softmax(dim=-1)], r"module 1 .*Softmax\(dim=-1\)"),
])
def test_unsupported_sequence_modules_are_refused_by_name(modules, match):
    with pytest.raises(ValueError, match=match):
        nc.from_torch(nn.Sequential(*modules), input_shape=(5, 3))


@pytest.mark.parametrize("modules, match", [
    ([nn.Conv2d(2, 2, 3, dilation=2)], "dilation=1"),
    ([nn.Conv2d(2, 2, 3, groups=2)], "groups=1"),
    ([nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect")], "padding_mode='zeros'"),
    ([nn.Conv2d(2, 2, 3), nn.MaxPool2d(2, ceil_mode=True)], "module 1 .*ceil_mode=False"),
    ([nn.Conv2d(2, 2, 3), nn.AvgPool2d(2, count_include_pad=False)], "count_include_pad=True"),
    ([nn.Conv2d(2, 2, 3), nn.AdaptiveAvgPool2d(2)], r"AdaptiveAvgPool2d\(1\)"),
    ([nn.Conv2d(2, 2, 3), nn.Linear(4, 2)], r"module 1 .*acts on the last axis of a tensor whose channels"),
    ([nn.Conv2d(2, 2, 3), nn.Flatten()], r"module 1 flattens an NCHW image"),
    ([nn.Conv2d(2, 2, 3), nn.Softmax(dim=-1)], r"Softmax\(dim=-1\)"),
    ([nn.Flatten(), nn.Linear(72, 2), nn.Conv2d(2, 2, 1)], r"module 2 .*Conv2d takes \(N, C, H, W\) images"),
])
def test_unsupported_image_modules_are_refused_by_name(modules, match):
    with pytest.raises(ValueError, match=match):
        nc.from_torch(nn.Sequential(*modules), input_shape=(2, 6, 6))
    with pytest.raises(ValueError, match=r"module 0 .*Conv2d needs the image size: pass input_shape=\(C, H, W\)"):
        nc.from_torch(nn.Sequential(nn.Conv2d(2, 2, 3)))


@pytest.mark.parametrize("shape, error, match", [
    ((4,), ValueError, r"module 0 .*Dense\(3, 2\) expects 3 inputs but the layer before it produces 4"),
    ((3, 1), ValueError, r"module 0 .*Dense\(3, 2\)"),
    ((), ValueError, "1 to 3 sizes"),
    ((1, 2, 3, 4), ValueError, "1 to 3 sizes"),
    ((0,), ValueError, ">= 1"),
    ((3.0,), TypeError, "tuple of ints"),
    (3, TypeError, "tuple of ints"),
    ((True,), TypeError, "tuple of ints"),
])
def test_bad_input_shape(shape, error, match):
    with pytest.raises(error, match=match):
        nc.from_torch(nn.Sequential(nn.Linear(3, 2)), input_shape=shape)


def test_a_layer_kind_without_a_converter_is_named(monkeypatch):
    model = zoo_model("residual_nested", "float32")
    monkeypatch.delitem(torch_convert._TO_TORCH, nc.ELU)
    with pytest.raises(ValueError, match=r"to_torch: layer layers\.1\.layers\.2\.layers\.2 ELU\(alpha=1\) \(ELU\) "
                                         "has no PyTorch converter"):
        model.to_torch()


# ------------------------------------------------------------------------------------------ the digits chain
DIGITS_MODELS = {   # name: (torch module, its input shape per sample)
    "mlp": (lambda: nn.Sequential(nn.Linear(64, 64), nn.BatchNorm1d(64), nn.GELU(), nn.Dropout(0.1),
                                  nn.Linear(64, 32), nn.ELU(), nn.Linear(32, 10)), (64,)),
    "cnn": (lambda: nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                                  nn.Flatten(), nn.Linear(128, 10)), (1, 8, 8)),
}


@pytest.mark.parametrize("kind", list(DIGITS_MODELS))
def test_torch_trained_digits_keep_their_accuracy_through_neurocore_and_onnx(kind, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from neurocore.datasets import load_digits, train_test_split

    X, y = load_digits()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, seed=0)
    build, shape = DIGITS_MODELS[kind]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # small batches: threads only add waiting on a shared machine
    try:
        torch.manual_seed(0)
        module = build()
        params = list(module.parameters())
        velocity = [torch.zeros_like(p) for p in params]
        xt, yt = torch.from_numpy(Xtr.reshape(-1, *shape)), torch.from_numpy(ytr)
        for _ in range(10):   # SGD with momentum, by hand: torch.optim takes seconds to import
            for idx in torch.randperm(len(xt)).split(64):
                module.zero_grad()
                nn.functional.cross_entropy(module(xt[idx]), yt[idx]).backward()
                with torch.no_grad():
                    for p, v in zip(params, velocity):
                        v.mul_(0.9).add_(p.grad)
                        p.sub_(0.05 * v)
    finally:
        torch.set_num_threads(threads)
    module.eval()
    torch_pred = run_torch(module, Xte.reshape(-1, *shape)).argmax(1)
    torch_acc = float(np.mean(torch_pred == yte))
    assert torch_acc > 0.9, torch_acc   # it did learn

    model = nc.from_torch(module, input_shape=shape)
    ours = Xte.reshape(-1, *model.input_shape)   # images channels-last: (N, 8, 8, 1)
    nc_pred = model.predict(ours).argmax(1)
    assert model.evaluate(ours, yte)["accuracy"] == torch_acc
    model.to_onnx(tmp_path / "digits.onnx")
    session = ort.InferenceSession(str(tmp_path / "digits.onnx"), providers=["CPUExecutionProvider"])
    onnx_pred = session.run(["output"], {"input": ours})[0].argmax(1)
    assert float(np.mean(onnx_pred == yte)) == torch_acc
    assert np.array_equal(nc_pred, torch_pred) and np.array_equal(onnx_pred, torch_pred)


def test_readme_interop_section_runs(tmp_path, monkeypatch):
    """The README's interop block (fenced ```py, so that the base README test, which has no extras, skips it)."""
    import pathlib
    import re

    pytest.importorskip("onnxruntime")
    pytest.importorskip("safetensors")
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## ONNX, PyTorch and your own weight formats"):]
    (code,) = re.findall(r"```py\n(.*?)```", section[:section.index("\n## ", 5)], re.S)
    from neurocore.datasets import load_digits

    X, _ = load_digits()
    model = nc.Sequential([nc.Dense(64, 128), nc.ReLU(), nc.Dense(128, 10)], seed=0)
    namespace = {"nc": nc, "model": model, "Xte": X[:50]}
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), namespace)
    assert_same_weights(namespace["back"], model)
    assert (tmp_path / "digits.onnx").exists() and (tmp_path / "digits.safetensors").exists()
