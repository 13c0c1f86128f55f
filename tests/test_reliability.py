"""Issue 11's table, case by case: every bad input ends in a located snnc error (or works), never in an
internal error; what checks builds, loads and runs; the cache serves neither stale nor planted code.

Covered elsewhere: mutated and generated models at scale (test_fuzz, test_fuzz_models), a kill at each write
of a run (test_resume_kill), thresholds as states or learnable (test_thresholds), the error messages of
ordinary mistakes (tests/errors/*.snn via test_check).
"""
from __future__ import annotations

import math
import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import snnc
from snnc import cli
from snnc.compiler.driver import check_file, compile_file
from snnc.compiler.source import SnncError
from snnc.runtime import cache
from snnc.runtime.support import ShapeError

from conftest import HAS_CXX, ROOT, needs_cxx, write_mnist


def error(text: str, name: str = "m.snn") -> str:
    """The rendered error `snnc check` gives for `text` (which must fail with an SnncError, located)."""
    with pytest.raises(SnncError) as info:
        compile_file(name, text)
    for d in info.value.diagnostics:
        assert d.span is not None and d.span.line >= 1 and d.span.col >= 1, info.value.render()
    return info.value.render()


def network(layers: str, settings: str = "", head: str = "import snnc.neurons\n") -> str:
    body = textwrap.indent(textwrap.dedent(layers).strip(), " " * 8)
    return (f"{head}network M {{\n    input = [1, 8, 8]\n    T = 2\n{settings}    layers {{\n{body}\n    }}\n}}\n")


NEURON = "neuron N {{\n{}\n    state v = 0.0\n    charge v = v + x\n}}\n"


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("SNNC_CACHE_DIR", str(folder))
    return folder


def load(tmp_path: Path, text: str, name: str = "m.snn"):
    path = tmp_path / name
    path.write_text(text)
    return snnc.load(path)


# ------------------------------------------------------------------ deep input: a located error, no RecursionError
DEEP = 5000


@pytest.mark.parametrize("charge", [
    "+".join(["x"] * DEEP),
    "-" * DEEP + "x",
    "exp(" * DEEP + "x" + ")" * DEEP,
    "where(" + "not " * DEEP + "b, x, v)",
    "x" + " ^ x" * DEEP,
    "(" * 50 + "x * " * DEEP + "x" + ")" * 50,
], ids=["sum", "minus", "calls", "not", "power", "product"])
def test_deep_expressions_are_a_located_error(charge):
    text = f"neuron N {{\n    param b = true\n    state v = 0.0\n    charge v = {charge}\n}}\n"
    message = error(text)
    assert message.startswith("m.snn:4:") and "error: expression nested more than 100 levels deep" in message
    assert "= hint: snnc allows 100 levels of operators and calls" in message


def test_deep_lists_and_parentheses():
    message = error(network("flatten\nlinear(2)", "    input = " + "[" * DEEP + "1" + "]" * DEEP + "\n"))
    assert message.startswith("m.snn:5:120: error: expression nested more than 100 levels deep")  # where it passes
    # parentheses alone add no level: the expression is just x
    check_file("m.snn", NEURON.format("    param p = " + "(" * DEEP + "1.0" + ")" * DEEP))


def test_deep_nesting_through_the_cli_exits_1(tmp_path, capsys):
    path = tmp_path / "deep.snn"
    path.write_text("neuron N {\n    state v = 0.0\n    charge v = " + "-" * DEEP + "x\n}\n")
    assert cli.main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "nested more than 100 levels deep" in err and "internal error" not in err and "Traceback" not in err


def test_blocks_nested_and_imports_chained_past_the_limit(tmp_path):
    blocks = "block B0(w) {\n    linear(w)\n}\n" + "".join(f"block B{i}(w) {{\n    B{i - 1}(w)\n}}\n"
                                                           for i in range(1, 300))
    message = error(blocks + network("B299(3)", head=""))
    assert "error: blocks nested more than 100 deep: B299 -> B298 -> B297 -> ... -> B199" in message
    for i in range(300):
        (tmp_path / f"f{i}.snn").write_text(f'import "f{i + 1}.snn"\n' if i < 299 else NEURON.format(""))
    with pytest.raises(SnncError) as info:
        check_file(tmp_path / "f0.snn")
    assert info.value.render().startswith(f"{tmp_path / 'f100.snn'}:1:1: error: imports nested more than 100 files deep")


# ------------------------------------------------------------------ constants: located errors at check
@pytest.mark.parametrize("decl,expected", [
    ("    param tau = 1e308 * 10.0",
     "m.snn:2:17: error: the default of 'tau' of neuron 'N' is not finite: 1e+308 * 10.0"),
    ("    param tau = 1.0 / (2.0 - 2.0)",
     "m.snn:2:17: error: the default of 'tau' of neuron 'N' divides by zero: 1.0 / (2.0 - 2.0)"),
    ("    param tau = log(-1.0)",
     "m.snn:2:17: error: the default of 'tau' of neuron 'N' is outside its function's domain"),
    ("    param tau = exp(1000.0)",
     "m.snn:2:17: error: the default of 'tau' of neuron 'N' overflows a 64-bit float: exp(1000.0)"),
    ("    param tau = (-8.0) ^ 0.5",
     "m.snn:2:17: error: the default of 'tau' of neuron 'N' raises a negative number to a fractional power"),
    ("    param tau = 0.0\n    require 1.0 / tau > 0.0",
     "m.snn:3:13: error: the requirement '1.0 / tau > 0.0' of neuron 'N' divides by zero: 1.0 / tau"),
    ("    param tau = 0.0\n    require sqrt(tau - 1.0) > 0.0",
     "m.snn:3:13: error: the requirement 'sqrt(tau - 1.0) > 0.0' of neuron 'N' is outside its function's domain"),
    ("    param tau = 2.0\n    learnable w = log(tau - 2.0)",
     "m.snn:3:19: error: the initial value of learnable 'w' of neuron 'N' is outside its function's domain"),
    ("    param tau = 2.0\n    state u = 1.0 / (tau - 2.0)",
     "m.snn:3:15: error: the initial value of state 'u' of neuron 'N' divides by zero: 1.0 / (tau - 2.0)"),
    ("    param tau = 1e999", "m.snn:2:17: error: number 1e999 is too large"),
    ("    param tau = 1e-400", "m.snn:2:17: error: number 1e-400 is too small: it would be 0"),
])
def test_constants_that_fail_are_located(decl, expected):
    assert error(NEURON.format(decl)).startswith(expected)


@pytest.mark.parametrize("layer,expected", [
    ("flatten\nlinear(-2)", "m.snn:7:9: error: linear out_features must be at least 1, not -2"),
    ("conv2d(2, 3, stride = 0)\nflatten\nlinear(2)", "m.snn:6:9: error: conv2d stride must be at least 1, not 0"),
    ("conv2d(2, 3, padding = -1)\nflatten\nlinear(2)",
     "m.snn:6:9: error: conv2d padding must not be negative, not -1"),
    ("conv2d(2, 0)\nflatten\nlinear(2)", "m.snn:6:9: error: conv2d kernel size must be at least 1, not 0"),
    ("maxpool2d(1e-400)\nflatten\nlinear(2)", "m.snn:6:19: error: number 1e-400 is too small: it would be 0"),
    ("maxpool2d(0)\nflatten\nlinear(2)", "m.snn:6:9: error: maxpool2d kernel size must be at least 1, not 0"),
    ("avgpool2d(2, stride = 0)\nflatten\nlinear(2)",
     "m.snn:6:9: error: avgpool2d stride must be at least 1, not 0"),  # was silently the kernel size
    ("maxpool2d(1.5)\nflatten\nlinear(2)", "m.snn:6:9: error: invalid value 1.5 for maxpool2d argument 'kernel_size'"),
    ("flatten\ndropout(1.0)\nlinear(2)", "m.snn:7:9: error: dropout probability must be in [0, 1), not 1.0"),
    ("flatten\ndelay(-1)\nlinear(2)", "m.snn:7:9: error: delays must be non-negative whole steps, not -1"),
    ("flatten\nlinear(1e30)",
     "m.snn:7:9: error: linear argument 'out_features' is 1e+30, beyond snnc's limit of 2147483647 (2^31 - 1)"),
    ("flatten\nlinear(1e9)",
     "m.snn:7:9: error: this layer has 65000000000 parameters, beyond snnc's limit of 2147483647 (2^31 - 1)"),
    ("conv2d(1, 1, padding = 1e8)\nflatten\nlinear(2)",
     "m.snn:6:9: error: this layer has an output of 40000003200000064 values per sample"),
    ("flatten\nlinear(2)\nLIF(tau = 0.5)",
     "m.snn:8:9: error: this LIF layer breaks its requirement 'tau > 1.0' (tau = 0.5)"),
    ("flatten\nlinear(2)\nPLIF(init_tau = 1.0)",
     "m.snn:8:9: error: this PLIF layer breaks its requirement 'init_tau > 1.0' (init_tau = 1.0)"),
])
def test_layer_arguments_that_cannot_be_built_are_located(layer, expected):
    assert error(network(layer)).startswith(expected)


def test_an_override_is_checked_against_everything_the_neuron_computes_from_it():
    text = ("neuron N {\n    param tau = 3.0\n    state v = 0.0\n    state u = 1.0 / (tau - 2.0)\n"
            "    charge v = v + x / tau\n}\n") + network("flatten\nlinear(2)\nN(tau = 2.0)", head="")
    assert error(text).startswith(
        "m.snn:13:9: error: with this layer's arguments, the initial value of state 'u' of N divides by zero: "
        "1.0 / (tau - 2.0)")


# ------------------------------------------------------------------ surrogates, settings, the train block
@pytest.mark.parametrize("surrogate,expected", [
    ("surrogate atan(alpha = foo)", "m.snn:5:20: error: surrogate argument 'alpha' must be a number"),
    ("surrogate atan(alpha = none)", "m.snn:5:28: error: syntax error: unexpected token 'none'"),
    ("surrogate atan(alpha = 1.0 + 1.0)", "m.snn:5:28: error: expected a number, a name, a list or a call here"),
    ("surrogate atan(beta = 1.0)", "m.snn:5:5: error: surrogate 'atan' has no argument 'beta'"),
    ("surrogate rect(alpha = 0.0)", "m.snn:5:5: error: surrogate 'rect' needs alpha != 0 (got alpha = 0)"),
    ("surrogate grad = x * k", "m.snn:5:22: error: custom surrogate uses undeclared name 'k'"),
])
def test_surrogate_arguments_in_a_neuron_are_located(surrogate, expected):
    text = f"neuron N {{\n    state v = 0.0\n    charge v = v + x\n    param tau = 2.0\n    {surrogate}\n}}\n"
    assert error(text).startswith(expected)


@pytest.mark.parametrize("override,expected", [
    ("surrogate = atan(alpha = foo)", "m.snn:8:38: error: surrogate argument 'alpha' must be a number"),
    ("surrogate = atan(alpha = none)", "m.snn:8:38: error: surrogate argument 'alpha' must be a number"),
    ("surrogate = atan(2.0)", "m.snn:8:25: error: surrogate arguments are named: atan(alpha = ...)"),
    ("surrogate = 3.0", "m.snn:8:25: error: surrogate must be given as a call"),
    ("surrogate = nosuch(alpha = 1.0)", "m.snn:8:25: error: unknown surrogate 'nosuch'"),
    ("backend = cpp", "m.snn:8:13: error: 'backend' is chosen for the whole network, not per layer"),
    ("tau = foo(1)", "m.snn:8:13: error: 'tau' of LIF must be a float, not 'a list or call'"),
    ("tau = none", "m.snn:8:13: error: 'tau' of LIF must be a float, not None"),
    ("v = 1.0", "m.snn:8:13: error: neuron 'LIF' has no parameter 'v'"),
])
def test_neuron_layer_arguments_are_located(override, expected):
    assert error(network(f"flatten\nlinear(2)\nLIF({override})")).startswith(expected)


@pytest.mark.parametrize("setting,expected", [
    ("    backend = foo(1)\n", "m.snn:5:5: error: unknown network setting 'backend'"),
    ("    encoder = foo(1)\n", "m.snn:5:5: error: invalid value 'a call' for network argument 'encoder'"),
    ("    readout = [1, 2]\n", "m.snn:5:5: error: invalid value (1, 2) for network argument 'readout'"),
    ("    dt = foo(1)\n", "m.snn:5:5: error: the time step dt must be a positive number, not foo(1.0)"),
    ("    dt = 0\n", "m.snn:5:5: error: the time step dt must be a positive number, not 0.0"),
])
def test_network_settings_are_located(setting, expected):
    assert error(network("flatten\nlinear(2)\nLIF", setting)).startswith(expected)


@pytest.mark.parametrize("old,new,expected", [
    ("input = [1, 8, 8]", "input = [foo(1)]",
     "m.snn:3:5: error: invalid value 'a call' for network argument 'input_shape'"),
    ("input = [1, 8, 8]", "input = [1, 0, 8]", "m.snn:2:1: error: input must be a list of positive sizes, not [1, 0, 8]"),
    ("input = [1, 8, 8]", "input = [1e10]",
     "m.snn:3:5: error: network argument 'input_shape' is 10000000000, beyond snnc's limit"),
    ("T = 2", "T = 0", "m.snn:2:1: error: T must be at least 1, not 0"),
    ("T = 2", "T = 2.5", "m.snn:4:5: error: invalid value 2.5 for network argument 'T'"),
])
def test_input_and_T_are_located(old, new, expected):
    assert error(network("flatten\nlinear(2)").replace(old, new)).startswith(expected)


@pytest.mark.parametrize("train,expected", [
    ("lr = foo(1)", "m.snn:5:13: error: invalid value 'a call' for training argument 'lr'"),
    ("lr = -1", "m.snn:5:13: error: training setting 'lr' is -1.0; it must be a positive number"),
    ("epochs = 0", "m.snn:5:13: error: training setting 'epochs' is 0; it must be a positive whole number of epochs"),
    ("batch_size = -5", "m.snn:5:13: error: training setting 'batch_size' is -5"),
    ("val_split = 1", "m.snn:5:13: error: training setting 'val_split' is 1.0; it must be a fraction in [0, 1)"),
    ("momentum = -0.5", "m.snn:5:13: error: training setting 'momentum' is -0.5; it must be a number >= 0"),
    ("weight_decay = -1", "m.snn:5:13: error: training setting 'weight_decay' is -1.0"),
    ("seed = -1", "m.snn:5:13: error: training setting 'seed' is -1"),
    ("seed = 1e30", "m.snn:5:13: error: training argument 'seed' is 1e+30, beyond snnc's limit"),
    ("dataset = cifar", "m.snn:5:13: error: unknown dataset 'cifar'"),
    ("epoch = 3", "m.snn:5:13: error: unknown training setting 'epoch'"),
    ("lr = 1e-3  lr = 1e-2", "m.snn:5:24: error: training setting 'lr' is given twice"),
])
def test_the_train_block_is_checked_and_located(train, expected):
    assert error(network("flatten\nlinear(2)", f"    train {{ {train} }}\n")).startswith(expected)


@pytest.mark.parametrize("charge,expected", [
    ("where(not v, x, v)", "m.snn:4:22: error: 'not' needs a condition, not a number"),
    ("where(not tau, x, v)", "m.snn:4:22: error: 'not' needs a condition, not a number"),
    ("v + (not (v > 0.0))", "m.snn:4:16: error: arithmetic '+' on a condition"),
    ("where(v and x, x, v)", "m.snn:4:22: error: 'and' needs conditions on both sides"),
])
def test_logic_on_numbers_is_an_error(charge, expected):
    text = f"neuron N {{\n    param tau = 2.0\n    state v = 0.0\n    charge v = {charge}\n}}\n"
    assert error(text).startswith(expected)


# ------------------------------------------------------------------ names
def test_over_long_names_are_located():
    long = "a" * 65
    assert error(f"neuron {long.upper()} {{\n    state v = 0.0\n    charge v = v + x\n}}\n").startswith(
        f"m.snn:1:1: error: neuron name '{long.upper()}' is reserved: it is longer than 64 characters")
    assert error(NEURON.format(f"    param {long} = 1.0")).startswith(
        f"m.snn:2:5: error: '{long}' cannot be used as a name: it is longer than 64 characters")
    assert error(network(f"flatten\n{long} = linear(2)")).startswith(
        "m.snn:7:77: error: node name 'aaaaaaaaaaaaaaaaaaaa...' is longer than 64 characters")
    check_file("m.snn", NEURON.format("    param " + "a" * 64 + " = 1.0"))  # 64 is fine


def test_over_long_and_unreadable_imports_are_located(tmp_path):
    assert error('import "' + "a" * 300 + '.snn"\n').startswith(
        "m.snn:1:1: error: cannot import '" + "a" * 80 + "...': the path is too long")
    assert error('import "' + "/".join(["a" * 200] * 30) + '.snn"\n').startswith("m.snn:1:1: error: cannot import")
    (tmp_path / "binary.snn").write_bytes(b"\xff\xfe\x00")
    assert error(f'import "{tmp_path / "binary.snn"}"\n').startswith(
        f"m.snn:1:1: error: cannot import '{tmp_path / 'binary.snn'}': {tmp_path / 'binary.snn'} is not UTF-8 text")


COLLIDING = """
neuron Clash {
    param ht_w = 0.5
    param hpt_w = 0.25
    param h_w = 0.125
    param sp = 0.1
    state v = v_reset
    state w_ = 0.0
    state w = 0.0
    charge {
        w_ = w_ * ht_w + x * hpt_w
        w = w * h_w + sp
        v = v + (x - v) / 2.0 + w_ - w
    }
    on_spike w_ += 0.1
}
network Net {
    input = [5]
    T = 6
    layers {
        linear(4)
        Clash
    }
}
"""


@needs_cxx
def test_names_like_kernel_locals_build_and_run_on_cpp(tmp_path, private_cache):
    """A state w_ and parameters ht_w, hpt_w, h_w: once the names a kernel declares for a state w."""
    lib = load(tmp_path, COLLIDING)
    torch.manual_seed(0)
    net = lib.network()
    x = torch.rand(6, 3, 5) * 3
    outputs = {}
    for backend in ("torch", "cpp"):
        snnc.functional.set_backend(net, backend)
        xb = x.clone().requires_grad_(True)
        y = net(xb)
        y.sum().backward()
        outputs[backend] = (y.detach(), xb.grad)
    assert torch.equal(outputs["torch"][0], outputs["cpp"][0])
    assert torch.allclose(outputs["torch"][1], outputs["cpp"][1], atol=1e-5)


# ------------------------------------------------------------------ numbers at run time
def test_zero_steps_and_0d_inputs(tmp_path, private_cache):
    lib = load(tmp_path, network("flatten\nlinear(2)\nLIF"))
    cell = lib.neurons["LIF"](step_mode="m")
    empty = cell(torch.zeros(0, 3, 4))
    assert empty.shape == (0, 3, 4) and cell.v is None  # no steps: no output, no state
    with pytest.raises(ShapeError, match="LIF: a multi-step input has time first, \\[T, N, ...\\]; this one is 0-d"):
        cell(torch.tensor(1.0))
    net = lib.network()
    with pytest.raises(ShapeError, match=r"M: a multi-step input has T >= 1 steps first, \[T, N, ...\]; "
                                         r"this one has shape \[0, 3, 1, 8, 8\]"):
        net(torch.zeros(0, 3, 1, 8, 8))
    with pytest.raises(ShapeError, match="this one has shape \\[\\]"):
        net(torch.tensor(0.5))


EXTREMES = """
neuron Extreme {
    param big = 1e300
    learnable w = 0.5
    state v = 0.0
    state u = 1e300
    state c = 0.0
    state k = 0.0
    charge {
        u = clamp(u, -1.0, big)
        c = 0.25
        k = w * 2.0
        v = v + x + max(c, -1e300) + heaviside(x - 0.5) + where(x > 0.5, 1e300, 0.0) * 0.0 + k
    }
}
network Net {
    input = [3]
    T = 4
    layers {
        linear(3)
        Extreme
    }
}
"""


@pytest.mark.parametrize("backend", ["module", "torch", *(["cpp"] if HAS_CXX else [])])
def test_constants_beyond_float32_and_states_without_inputs_run(tmp_path, private_cache, backend):
    """Numbers beyond float32's range meet float32 tensors (clamp bounds, where branches, initial values) as
    infinities, as in the kernels; a state set to a constant, or from a 0-d learnable only, keeps the input's
    shape; heaviside has a backward on the torch backend."""
    lib = load(tmp_path, EXTREMES)
    net = lib.network(step_mode="s" if backend == "module" else "m")
    if backend != "module":
        snnc.functional.set_backend(net, backend)
    x = torch.rand(4, 2, 3, requires_grad=True)
    y = torch.stack([net(x[t]) for t in range(4)]) if backend == "module" else net(x)
    assert y.shape == (4, 2, 3)
    y.sum().backward()
    cell = net.layers["1"]
    assert cell.v.shape == (2, 3) and all(s.shape == (2, 3) for s in cell._state)
    assert torch.isinf(cell._state[1]).all()  # u: 1e300 as float32


def test_a_nan_state_stops_training_naming_the_layer(tmp_path, private_cache, mnist_like):
    from snnc.train.experiment import from_library
    from snnc.train.runner import TrainOptions, train

    text = """
import snnc.neurons
neuron Runaway {
    state v = 0.0
    state g = 1.0
    charge {
        g = g * 1e30
        v = v + x
    }
}
network Net {
    input = [1, 28, 28]
    T = 3
    encoder = direct
    layers {
        flatten
        linear(10)
        Runaway
    }
}
"""
    exp = from_library(load(tmp_path, text))
    options = TrainOptions(epochs=1, batch_size=16, subset=64, test_subset=32, data_dir=mnist_like, quiet=True,
                           plots=False, device="cpu", backend="torch", out_dir=str(tmp_path / "run"))
    with pytest.raises(SnncError, match=r"neuron state became NaN or infinite in layers\.2 \(Runaway\) at epoch 1, "
                                        r"batch 1; training stopped \(no checkpoint was written\)"):
        train(exp, options)


# ------------------------------------------------------------------ checkpoints and data
def test_checkpoints_that_do_not_fit_name_the_key_or_shape(tmp_path, private_cache, mnist_like):
    from snnc.train import checkpoint as ckpt
    from snnc.train.experiment import from_library
    from snnc.train.runner import TrainOptions, evaluate, train

    lib = load(tmp_path, network("flatten\nlinear(10)\nLIF").replace("[1, 8, 8]", "[1, 28, 28]"))
    exp = from_library(lib)
    run = tmp_path / "run"
    options = TrainOptions(epochs=1, batch_size=16, subset=32, test_subset=16, data_dir=mnist_like, quiet=True,
                           plots=False, device="cpu", out_dir=str(run))
    train(exp, options)
    state = ckpt.load(run / "last.pt", exp.model_hash)
    missing = {**state, "model": {k: v for k, v in state["model"].items() if k != "layers.1.bias"}}
    ckpt.save(missing, tmp_path / "missing.pt")
    with pytest.raises(SnncError, match=r"missing\.pt does not fit the model: it has no 'layers\.1\.bias'"):
        evaluate(exp, tmp_path / "missing.pt", TrainOptions(data_dir=mnist_like, device="cpu"))
    reshaped = {**state, "model": {**state["model"], "layers.1.weight": torch.zeros(10, 783)}}
    ckpt.save(reshaped, tmp_path / "reshaped.pt")
    with pytest.raises(SnncError, match=r"it has 'layers\.1\.weight' of shape \[10, 783\] where the model's is "
                                        r"\[10, 784\]"):
        evaluate(exp, tmp_path / "reshaped.pt", TrainOptions(data_dir=mnist_like, device="cpu"))
    with pytest.raises(SnncError, match=r"does not fit the model"):
        train(exp, TrainOptions(**{**options.__dict__, "epochs": 2, "resume": str(tmp_path / "reshaped.pt"),
                                   "out_dir": str(tmp_path / "resumed")}))


def test_a_folder_of_another_dataset_is_refused(mnist_like, monkeypatch):
    from snnc.train import data
    from snnc.train.data import idx

    labels = Path(mnist_like) / "train-labels-idx1-ubyte"
    import hashlib

    monkeypatch.setitem(idx.KNOWN_LABELS, hashlib.sha256(labels.read_bytes()).hexdigest(), "mnist")
    data._images.cache_clear()
    with pytest.raises(SnncError, match="holds the MNIST files, not Fashion-MNIST") as info:
        data.load("fashion_mnist", mnist_like)
    assert "--dataset mnist" in info.value.render()
    data._images.cache_clear()


@pytest.fixture(scope="module")
def mnist_like(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist_like")
    write_mnist(folder, 96, 32)
    return str(folder)


# ------------------------------------------------------------------ snnc simulate
@pytest.mark.parametrize("args,expected", [
    (["--param", "tau=abc"], "error: --param tau=abc: 'abc' is not a number"),
    (["--param", "tau"], "error: --param 'tau' is not NAME=VALUE"),
    (["--param", "=2.0"], "error: --param '=2.0' is not NAME=VALUE"),
    (["--param", "nosuch=1.0"], "error: cannot create LIF:"),
    (["--param", "tau=inf"], "error: LIF: parameter 'tau' must be finite, not inf"),
    (["--param", "tau=0.5"], "error: LIF: requirement 'tau > 1.0' does not hold"),
    (["-T", "0"], "error: snnc simulate: -T takes a whole number of at least 1, not 0"),
    (["-T", "-3"], "error: snnc simulate: -T takes a whole number of at least 1, not -3"),
    (["--plot", "v.txt"], "error: --plot v.txt: plots are written as .png, .pdf or .svg"),
    (["--neuron", "NoSuch"], "error: no neuron 'NoSuch' in models/neurons.snn"),
])
def test_simulate_mistakes_exit_1_with_a_message(args, expected, in_repo_root, capsys, private_cache):
    argv = ["simulate", "models/neurons.snn", "--neuron", "LIF", "-T", "5", *args]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert expected in err, err
    assert "Traceback" not in err and "internal error" not in err


def test_simulate_creates_the_plot_folder(tmp_path, in_repo_root, capsys, private_cache):
    target = tmp_path / "missing" / "dir" / "v.png"
    assert cli.main(["simulate", "models/neurons.snn", "--neuron", "LIF", "-T", "5", "--plot", str(target)]) == 0
    assert target.is_file() and f"wrote {target}" in capsys.readouterr().out


# ------------------------------------------------------------------ the cache
def test_an_upgrade_changes_every_key_and_never_serves_the_old_code(tmp_path, private_cache, monkeypatch):
    """A changed generator source (here: a copy of snnc's compiler with one line added) gives a new
    generator hash, so a new package key: the old entry, even tampered with, is not imported."""
    import shutil

    from snnc.compiler import resources

    model = network("flatten\nlinear(2)\nLIF")
    lib = load(tmp_path, model)
    old = lib.path
    (old / "__init__.py").write_text((old / "__init__.py").read_text() + "\nPLANTED = True\n")

    copy = tmp_path / "snnc_copy"
    shutil.copytree(ROOT / "snnc" / "compiler", copy / "compiler")
    (copy / "runtime").mkdir()
    shutil.copy(ROOT / "snnc" / "runtime" / "support.py", copy / "runtime")
    templates = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", templates)
    real = resources.resource_dir
    monkeypatch.setattr(resources, "resource_dir", lambda name: templates if name == "templates" else real(name))
    monkeypatch.setattr(cache, "_PACKAGE", copy)
    cache.generator_hash.cache_clear()
    try:
        same = cache.generator_hash()
        with open(copy / "compiler" / "codegen.py", "a") as f:
            f.write("\n# a fix in the next version\n")
        cache.generator_hash.cache_clear()
        upgraded = cache.generator_hash()
        assert upgraded != same
        new = load(tmp_path, model)
        assert new.path != old and new.path.parent == old.parent
        assert not hasattr(new.package, "PLANTED") and (old / "__init__.py").read_text().endswith("PLANTED = True\n")
        (templates / "networks.py.j2").write_text((templates / "networks.py.j2").read_text() + "\n")
        cache.generator_hash.cache_clear()
        assert cache.generator_hash() not in (same, upgraded)  # a template is a generator source too
    finally:
        cache.generator_hash.cache_clear()


def test_keys_hash_each_part_with_its_length():
    assert cache.digest("ab", "c") != cache.digest("a", "bc")
    assert cache.digest("a\0b") != cache.digest("a", "b")
    assert cache.digest("a", "") != cache.digest("a")
    assert cache.digest("x") == cache.digest(b"x")


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_cache_folder_others_can_write_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("SNNC_CACHE_DIR", str(shared))
    with pytest.raises(SnncError) as info:
        cache.cache_dir()
    assert info.value.render() == (
        f"error: refusing to use the cache folder {shared}: other users can write to it, and snnc runs the code "
        f"it finds there\n= hint: chmod go-w {shared} (if it is yours), or set SNNC_CACHE_DIR to a private folder")
    shared.chmod(0o775)  # group-writable: refused too
    with pytest.raises(SnncError, match="other users can write to it"):
        snnc.load(ROOT / "models" / "lif_fc_mnist.snn")
    shared.chmod(0o755)
    assert cache.cache_dir() == shared


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_cache_folder_of_another_user_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("SNNC_CACHE_DIR", str(folder))
    monkeypatch.setattr(os, "getuid", lambda: folder.stat().st_uid + 1)
    with pytest.raises(SnncError, match="refusing to use the cache folder .*: it belongs to another user"):
        cache.cache_dir()


def test_the_cli_reports_a_refused_cache(tmp_path, monkeypatch, capsys):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("SNNC_CACHE_DIR", str(shared))
    argv = ["simulate", str(ROOT / "models" / "neurons.snn"), "--neuron", "LIF", "-T", "3"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "refusing to use the cache folder" in err and "Traceback" not in err


def test_stale_temporaries_are_removed_and_entries_never_replaced(tmp_path):
    folder = tmp_path / "packages"
    folder.mkdir()
    old_dir, old_file, fresh = folder / ".pkg-abc", folder / ".lib.so-xyz.tmp", folder / ".pkg-new"
    old_dir.mkdir()
    (old_dir / "__init__.py").write_text("x = 1\n")
    old_file.write_text("partial")
    fresh.mkdir()
    hours_ago = time.time() - cache.STALE_SECONDS - 60
    for p in (old_dir, old_file):
        os.utime(p, (hours_ago, hours_ago))
    cache.write_dir({"__init__.py": "VALUE = 1\n"}, folder / "pkg")
    assert not old_dir.exists() and not old_file.exists()
    assert fresh.exists()  # a writer may still be filling it
    cache.write_dir({"__init__.py": "VALUE = 2\n"}, folder / "pkg")  # an entry is never replaced
    assert (folder / "pkg" / "__init__.py").read_text() == "VALUE = 1\n"
    assert sorted(p.name for p in folder.iterdir()) == [".pkg-new", "pkg"]


RACE = """
import sys, time
import torch
import snnc
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.005)
lib = snnc.load(sys.argv[1])
net = lib.network()
snnc.functional.set_backend(net, sys.argv[3])
y = net(torch.rand(2, 3, 5))
print("ok", tuple(y.shape), lib.path.name)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", *(["cpp"] if HAS_CXX else [])])
def test_processes_racing_into_an_empty_cache_all_succeed(tmp_path, backend):
    """Three processes load (generate, write, import; for cpp also compile) the same new model into one empty
    cache, released at the same instant: each succeeds, with the one package they all wrote."""
    model = tmp_path / "race.snn"
    model.write_text("neuron Racer {\n    param tau = 3.0\n    state v = 0.0\n    charge v = v + (x - v) / tau\n}\n"
                     "network Net {\n    input = [5]\n    T = 2\n    layers {\n        linear(4)\n        Racer\n"
                     "    }\n}\n")
    env = {**os.environ, "SNNC_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    start = time.time() + 6.0  # after every process has imported torch
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(model), str(start), backend], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert out.startswith("ok (2, 3, 4)")
    assert len({out.split()[-1] for out, _ in results}) == 1
    packages = list((tmp_path / "cache" / "packages").iterdir())
    assert [p.name for p in packages] == [results[0][0].split()[-1]]  # no temporaries left behind
