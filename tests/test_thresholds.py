"""A threshold that is a state (an adaptive threshold: Bellec et al.'s ALIF) or learnable, on every backend,
against independent hand-written PyTorch references (spikes exact, gradients within 1e-6 of their scale)."""
from __future__ import annotations

import math

import pytest
import torch

import snnc
from snnc.runtime.backends import available

BACKENDS = ["module", *[b for b in ("torch", "cpp") if b in available("cpu")]]

NEURONS = """
neuron ALIF {
    param tau = 5.0
    param tau_a = 20.0
    param beta = 0.2
    state v = v_reset
    state a = 0.0
    state v_threshold = 0.5
    charge {
        v = v + (x - v) / tau
        a = a - a / tau_a
        v_threshold = 0.5 + beta * a
    }
    on_spike a += 1.0
}
neuron LearnedThreshold {
    param tau = 2.0
    learnable v_threshold = 0.8
    state v = v_reset
    charge v = v + (x - v) / tau
    surrogate atan(alpha = 2.0)
}
"""


class _Spike(torch.autograd.Function):
    """Heaviside forward; backward by a hand-written surrogate derivative `grad(z)`."""

    @staticmethod
    def forward(ctx, z, grad):
        ctx.save_for_backward(z)
        ctx.grad = grad
        return (z >= 0).float()

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return g * ctx.grad(z), None


def _sigmoid_grad(z):  # SpikingJelly's Sigmoid(alpha=4)
    s = torch.sigmoid(4.0 * z)
    return 4.0 * s * (1 - s)


def _atan_grad(z):  # SpikingJelly's ATan(alpha=2)
    return 1.0 / (1 + (math.pi / 2 * 2.0 * z) ** 2)


def alif_reference(x, tau=5.0, tau_a=20.0, beta=0.2):
    """Bellec et al.'s adaptive threshold, written out: b = 0.5 + beta * a, a jumps by 1 on a spike."""
    v = torch.zeros_like(x[0])
    a = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        v = v + (x[t] - v) / tau
        a = a - a / tau_a
        b = 0.5 + beta * a
        s = _Spike.apply(v - b, _sigmoid_grad)
        v = s * 0.0 + (1.0 - s) * v
        a = a + s * 1.0
        out.append(s)
    return torch.stack(out)


def learned_reference(x, theta, tau=2.0):
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        v = v + (x[t] - v) / tau
        s = _Spike.apply(v - theta, _atan_grad)
        v = s * 0.0 + (1.0 - s) * v
        out.append(s)
    return torch.stack(out)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    path = tmp_path_factory.mktemp("thr") / "thresholds.snn"
    path.write_text(NEURONS)
    return snnc.load(path)


def _run(cell, x, backend):
    if backend == "module":
        return torch.stack([cell(x[t]) for t in range(x.shape[0])])
    return cell(x)


def _close(a, b, tol=1e-6):
    err = float((a - b).abs().max()) / max(float(b.abs().max()), 1e-30)
    assert err <= tol, f"differs by {err:.2e} of its scale"


@pytest.mark.parametrize("backend", BACKENDS)
def test_adaptive_threshold_state(lib, backend):
    x = (torch.rand(40, 3, 37, generator=torch.Generator().manual_seed(0)) * 1.6).requires_grad_(True)
    ref = alif_reference(x)
    cell = lib.neurons["ALIF"](step_mode="s" if backend == "module" else "m",
                               backend=None if backend == "module" else backend)
    out = _run(cell, x, backend)
    assert torch.equal(out, ref) and 0.05 < float(ref.detach().mean()) < 0.5
    w = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    (g_ref,) = torch.autograd.grad((ref * w).sum(), x)
    (g,) = torch.autograd.grad((out * w).sum(), x)
    _close(g, g_ref)
    plain = lib.neurons["ALIF"](step_mode="m", backend="torch")
    with torch.no_grad():
        plain(x.detach())
    assert float(plain._state[2].max()) > 0.5  # the threshold adapted: it rose above its resting 0.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_learnable_threshold(lib, backend):
    x = (torch.rand(30, 4, 21, generator=torch.Generator().manual_seed(2)) * 2.0).requires_grad_(True)
    theta = torch.tensor(0.8, requires_grad=True)
    ref = learned_reference(x, theta)
    cell = lib.neurons["LearnedThreshold"](step_mode="s" if backend == "module" else "m",
                                           backend=None if backend == "module" else backend)
    out = _run(cell, x, backend)
    assert torch.equal(out, ref)
    w = torch.randn(ref.shape, generator=torch.Generator().manual_seed(3))
    g_ref = torch.autograd.grad((ref * w).sum(), (x, theta))
    g = torch.autograd.grad((out * w).sum(), (x, cell.v_threshold))
    for a, b in zip(g, g_ref):
        _close(a, b)
    assert float(g[1].abs()) > 0


def test_reset_and_detach_cannot_be_states(tmp_path):
    from snnc.compiler.driver import check_file
    from snnc.compiler.source import SnncError

    path = tmp_path / "bad.snn"
    path.write_text("neuron N {\n    state v = 0.0\n    state v_reset = 0.0\n    charge v = v + x\n}\n")
    with pytest.raises(SnncError, match="'v_reset' is a built-in parameter and cannot be a state"):
        check_file(path)
