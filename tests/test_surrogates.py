"""Surrogate gradient table: formulas, defaults and errors, checked against SpikingJelly 2.0.0."""
from __future__ import annotations

import inspect
import math

import pytest
import torch

from snnc.runtime import support
from snnc.compiler import ir, printers, surrogates
from snnc.compiler.parse import parse_expr
from snnc.compiler.source import SnncError
from snnc.compiler.symbolic import free_names

from conftest import needs_sj, optional_import

sj = optional_import("spikingjelly.activation_based.surrogate")

# SpikingJelly classes deliberately left out (see the module docstring).
NOT_HEAVISIDE_CLOSED_FORM = {"SurrogateFunctionBase", "SquarewaveFourierSeries", "PoissonPass", "MultiLevelSpikeCount"}
CLASS_OF = {v: k for k, v in surrogates._CLASS_NAMES.items()}
NAMES = surrogates.names()


def evaluate(e: ir.Expr, x: torch.Tensor) -> torch.Tensor:
    text = printers.PythonPrinter(tensors={"x"})(e)
    env = {"torch": torch, "math": math, "rt": support, "x": x}
    out = eval(text, env)  # noqa: S307 - our own printed formula
    return torch.as_tensor(out, dtype=x.dtype).expand_as(x)


def grid(params: dict[str, float]) -> torch.Tensor:
    points = [0.0, 1.0, -1.0, 1e-3, -1e-3, 1e-7, -1e-7]
    for v in params.values():
        if v != 0:
            points += [v, -v, 1 / v, -1 / v, 0.5 / v, -0.5 / v]
    extra = torch.tensor(points, dtype=torch.float32)
    # the float32 neighbours of each breakpoint, on both sides
    extra = torch.cat([extra, torch.nextafter(extra, extra + 1), torch.nextafter(extra, extra - 1)])
    return torch.cat([torch.linspace(-3, 3, 601, dtype=torch.float32), extra])


def spikingjelly_grad(name: str, params: dict[str, float], x: torch.Tensor) -> torch.Tensor:
    cls = getattr(sj, CLASS_OF[name])
    kwargs = dict(params)
    if "spiking" in inspect.signature(cls.__init__).parameters:
        kwargs["spiking"] = True
    module = cls(**kwargs)
    x = x.clone().requires_grad_()
    y = module(x)
    assert torch.equal(y.detach(), (x >= 0).to(x.dtype)), "forward is not the Heaviside step"
    y.backward(torch.ones_like(y))
    return x.grad


def other_values(name: str) -> dict[str, float]:
    """Non-default arguments that keep each surrogate well defined."""
    return {p: (v * 1.7 if v != 0 else 0.05) for p, v in surrogates.BUILTIN[name].params}


def surrogate(name: str, **args: float) -> ir.Surrogate:
    return ir.Surrogate(name=name, args=tuple(args.items()))


# ---------------------------------------------------------------- the table itself
def test_required_names_present():
    required = {
        "sigmoid", "atan", "piecewise_quadratic", "piecewise_exp", "soft_sign", "erf", "super_spike",
        "piecewise_leaky_relu", "s2nn", "q_pseudo_spike", "leaky_k_relu", "fake_numerical_gradient",
        "log_tailed_relu", "nonzero_sign_log_abs", "rect",
    }
    assert required <= set(surrogates.BUILTIN)
    assert surrogates.BUILTIN["sigmoid"].params == (("alpha", 4.0),)
    assert surrogates.BUILTIN["atan"].params == (("alpha", 2.0),)
    assert surrogates.names() == sorted(surrogates.BUILTIN)


@pytest.mark.parametrize("name", NAMES)
def test_formula_is_well_formed(name):
    d = surrogates.BUILTIN[name]
    e = parse_expr(d.grad)
    assert free_names(e) <= {"x", "pi", *(p for p, _ in d.params)}
    assert d.doc and "\n" not in d.doc
    out = surrogates.grad_expr(surrogate(name))
    assert free_names(out) <= {"x"}


@pytest.mark.parametrize("name", NAMES)
def test_c_printer_has_no_python(name):
    for args in ({}, other_values(name)):
        text = printers.CPrinter()(surrogates.grad_expr(surrogate(name, **args)))
        for bad in ("torch", "**", "math.", "rt.", " if ", " and ", " or ", "True", "False"):
            assert bad not in text, (name, text)
        assert text.count("(") == text.count(")")
        assert printers.CudaPrinter()(surrogates.grad_expr(surrogate(name))) == printers.CPrinter()(
            surrogates.grad_expr(surrogate(name))
        )


# ---------------------------------------------------------------- against SpikingJelly
@needs_sj
def test_every_spikingjelly_binary_surrogate_is_covered():
    classes = {
        n for n, c in vars(sj).items()
        if inspect.isclass(c) and issubclass(c, sj.SurrogateFunctionBase)
    }
    missing = classes - NOT_HEAVISIDE_CLOSED_FORM - set(surrogates.ALIASES)
    assert not missing


@needs_sj
@pytest.mark.parametrize("name", NAMES)
def test_defaults_match_spikingjelly(name):
    cls = getattr(sj, CLASS_OF[name])
    sig = inspect.signature(cls.__init__)
    theirs = tuple(
        (p.name, float(p.default)) for p in sig.parameters.values() if p.name not in ("self", "spiking")
    )
    assert surrogates.BUILTIN[name].params == theirs


@needs_sj
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("which", ["default", "other"])
def test_gradient_matches_spikingjelly(name, which):
    args = {} if which == "default" else other_values(name)
    params = {**dict(surrogates.BUILTIN[name].params), **args}
    x = grid(params)
    ours = evaluate(surrogates.grad_expr(surrogate(name, **args)), x)
    theirs = spikingjelly_grad(name, params, x)
    assert ours.dtype == torch.float32
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- aliases and custom formulas
@pytest.mark.parametrize("alias", ["ATan", "atan", "PiecewiseLeakyReLU", "piecewiseleakyrelu", "S2NN", "LeakyKReLU"])
def test_aliases(alias):
    key = surrogates.ALIASES.get(alias, alias)
    assert key in surrogates.BUILTIN
    assert ir.same_expr(surrogates.grad_expr(surrogate(alias)), surrogates.grad_expr(surrogate(key)))


def test_arguments_are_substituted():
    x = torch.linspace(-2, 2, 41)
    got = evaluate(surrogates.grad_expr(surrogate("atan", alpha=3.0)), x)
    want = 1.5 / (1 + (math.pi * 1.5 * x) ** 2)
    torch.testing.assert_close(got, want)


def test_custom_formula_equals_builtin():
    s = ir.Surrogate(
        name="custom", args=(("alpha", 2.0),), grad=parse_expr("alpha / 2 / (1 + (pi / 2 * alpha * x)^2)")
    )
    assert ir.same_expr(surrogates.grad_expr(s), surrogates.grad_expr(surrogate("atan")))


def test_custom_formula_with_stray_name():
    s = ir.Surrogate(name="custom", args=(("alpha", 2.0),), grad=parse_expr("alpah * x"))
    with pytest.raises(SnncError) as err:
        surrogates.grad_expr(s)
    msg = str(err.value)
    assert "'alpah'" in msg and "did you mean 'alpha'" in msg


def test_custom_without_formula():
    with pytest.raises(SnncError, match="no gradient formula"):
        surrogates.grad_expr(ir.Surrogate(name="custom"))


# ---------------------------------------------------------------- errors
def test_unknown_surrogate_did_you_mean():
    with pytest.raises(SnncError) as err:
        surrogates.grad_expr(surrogate("atann"))
    msg = str(err.value)
    assert "unknown surrogate 'atann'" in msg and "did you mean 'atan'" in msg


def test_unknown_surrogate_lists_names():
    with pytest.raises(SnncError) as err:
        surrogates.grad_expr(surrogate("zzzzzz"))
    msg = str(err.value)
    assert "unknown surrogate 'zzzzzz'" in msg
    assert "piecewise_leaky_relu" in msg and "sigmoid" in msg


def test_unknown_argument_names_valid_ones():
    with pytest.raises(SnncError) as err:
        surrogates.grad_expr(surrogate("piecewise_leaky_relu", alpha=1.0))
    msg = str(err.value)
    assert "'alpha'" in msg and "w, c" in msg


def test_invalid_argument_value():
    with pytest.raises(SnncError, match="alpha > 0"):
        surrogates.grad_expr(surrogate("soft_sign", alpha=-1.0))
    with pytest.raises(SnncError, match="alpha != 1"):
        surrogates.grad_expr(surrogate("q_pseudo_spike", alpha=1.0))


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_every_surrogate_trains_as_a_layer_override(backend, tmp_path, monkeypatch):
    """Each built-in as a network's override of a neuron's surrogate: the networks module defines its own
    surrogate functions (a name the neurons module defined once went missing there), forward and backward."""
    import snnc
    from snnc.runtime.backends import available

    if backend not in available("cpu"):
        pytest.skip(f"the {backend} backend is not available here")
    monkeypatch.setenv("SNNC_CACHE_DIR", str(tmp_path / "cache"))
    layers = "\n".join(f"        linear(3)\n        LIF(surrogate = {name}())" for name in NAMES)
    path = tmp_path / "overrides.snn"
    path.write_text(f"import snnc.neurons\n\nnetwork Overrides {{\n    input = [3]\n    T = 2\n    layers {{\n"
                    f"{layers}\n    }}\n}}\n")
    net = snnc.load(path).network(backend=backend)
    x = torch.rand(2, 4, 3, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
