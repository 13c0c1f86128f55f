"""The neuron library at run time: step modes, SpikingJelly 2.0.0 parity, an independent reference, state misuse."""
from __future__ import annotations

import itertools

import pytest
import torch

import snnc
from snnc.runtime import support as rt

from conftest import MODELS, needs_sj, optional_import

sjn = optional_import("spikingjelly.activation_based.neuron")

LIB = snnc.load(MODELS / "neurons.snn")
NEURONS = sorted(LIB.neurons)
T, N, F = 12, 3, 5
# parameters that make each neuron do something interesting
EXTRA = {"Izhikevich": {"a": 0.3, "b": 0.2}, "AdaptiveLIF": {"a": 0.1}}


def _x(seed=0, scale=1.5, shape=(T, N, F), dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=dtype) * scale).requires_grad_(True)


def _run(cell, x):
    if cell.step_mode == "m":
        return cell(x)
    return torch.stack([cell(x[t]) for t in range(x.shape[0])])


@pytest.mark.parametrize("name, soft, detach", list(itertools.product(NEURONS, (False, True), (False, True))))
def test_single_and_multi_step_agree(name, soft, detach):
    kw = dict(EXTRA.get(name, {}), detach_reset=detach)
    if soft:
        kw["v_reset"] = None
    cells = {m: LIB.neurons[name](**kw, step_mode=m) for m in "sm"}
    cells["m"].load_state_dict(cells["s"].state_dict())
    assert set(cells["s"].state_dict()) == set(cells["m"].state_dict())
    out, grads = {}, {}
    for m, cell in cells.items():
        x = _x()
        s = _run(cell, x)
        states = cell._state
        loss = (s * torch.linspace(0.5, 1.5, F)).sum() + sum(st_.sum() for st_ in states) * 0.1
        loss.backward()
        out[m] = (s.detach(), [st_.detach() for st_ in states])
        grads[m] = [x.grad] + [p.grad for p in cell.parameters()]
    assert torch.equal(out["s"][0], out["m"][0])
    for a, b in zip(out["s"][1], out["m"][1]):
        assert torch.equal(a, b)
    for a, b in zip(grads["s"], grads["m"]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert out["s"][0].sum() > 0, "the test input should make the neuron fire"


# ------------------------------------------------------------------ SpikingJelly 2.0.0
SJ_CASES = [
    ("LIF", "LIFNode", {}),
    ("LIF", "LIFNode", {"decay_input": False}),
    ("LIF", "LIFNode", {"v_reset": None}),
    ("LIF", "LIFNode", {"tau": 3.0, "decay_input": False, "v_reset": None, "detach_reset": True}),
    ("IF", "IFNode", {}),
    ("IF", "IFNode", {"v_reset": None}),
    ("PLIF", "ParametricLIFNode", {}),
    ("PLIF", "ParametricLIFNode", {"init_tau": 3.0, "decay_input": False, "v_reset": None}),
    ("QIF", "QIFNode", {}),
    ("EIF", "EIFNode", {}),
    ("Izhikevich", "IzhikevichNode", {"a": 0.3, "b": 0.2}),
    ("Izhikevich", "IzhikevichNode", {"a": 0.3, "b": 0.2, "v_reset": None}),
    ("CUBALIF", "CUBALIFNode", {}),
]


def _close(a, b):
    scale = max(1.0, float(b.abs().max()))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6 * scale)


@needs_sj
@pytest.mark.parametrize("name, sj_name, kw", SJ_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(SJ_CASES)])
def test_matches_spikingjelly(name, sj_name, kw):
    sj_cls = getattr(sjn, sj_name)
    mine = LIB.neurons[name](**kw, step_mode="m")
    if sj_name == "CUBALIFNode":
        theirs = sj_cls(**kw)
        theirs.step_mode = "m"
    else:
        theirs = sj_cls(**kw, step_mode="m")
    if name == "PLIF":
        with torch.no_grad():
            mine.w.copy_(theirs.w)
    outs = []
    for cell in (mine, theirs):
        x = _x(seed=1)
        s = cell(x)
        v = cell.v
        loss = (s * torch.linspace(0.5, 1.5, F)).sum() + 0.1 * v.sum()
        loss.backward()
        outs.append((s.detach(), v.detach(), x.grad, [p.grad for p in cell.parameters()]))
    (s1, v1, g1, p1), (s2, v2, g2, p2) = outs
    assert s1.sum() > 0
    assert torch.equal(s1, s2)
    assert torch.equal(v1, v2)
    _close(g1, g2)
    for a, b in zip(p1, p2):
        _close(a, b)


# ------------------------------------------------------------------ independent reference (SpikingJelly's equations)
class _SigmoidSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(ctx.alpha * x)
        return g * ctx.alpha * s * (1 - s), None


def reference(charge, x_seq, v0, extra0=None, v_th=1.0, v_reset=0.0, detach=False, on_spike=None):
    """Charge -> fire -> reset over T steps, written from the docstring of models/neurons.snn."""
    v, w = v0, extra0
    spikes = []
    for t in range(x_seq.shape[0]):
        h, w_h = charge(v, w, x_seq[t])
        s = _SigmoidSpike.apply(h - v_th, 4.0)
        s_r = s.detach() if detach else s
        v = h - s_r * v_th if v_reset is None else s_r * v_reset + (1 - s_r) * h
        w = on_spike(w_h, s) if on_spike else w_h
        spikes.append(s)
    return torch.stack(spikes), v


def _ref_case(name, kw):
    tau = kw.get("tau", 2.0)
    dec = kw.get("decay_input", True)
    vr = kw.get("v_reset", -0.1 if name in ("QIF", "EIF") else 0.0)
    vr0 = 0.0 if vr is None else vr
    if name == "IF":
        return (lambda v, w, x: (v + x, None)), vr0, None, None
    if name == "LIF":
        def ch(v, w, x):
            return (v + (x - (v - vr0)) / tau if dec else v - (v - vr0) / tau + x), None
        return ch, vr0, None, None
    if name == "Izhikevich":
        a, b, v_rest, v_c, a0, tau_w = kw["a"], kw["b"], -0.1, 0.8, 1.0, 2.0

        def ch(v, w, x):
            v = v + (x + a0 * (v - v_rest) * (v - v_c) - w) / tau
            return v, w + (a * (v - v_rest) - w) / tau_w
        return ch, vr0, 0.0, (lambda w, s: w + b * s)
    raise KeyError(name)


REF_CASES = [("IF", {}), ("IF", {"v_reset": None}), ("LIF", {}), ("LIF", {"decay_input": False}),
             ("LIF", {"tau": 4.0, "v_reset": None, "detach_reset": True}), ("LIF", {"v_reset": -0.2}),
             ("Izhikevich", {"a": 0.3, "b": 0.2}), ("Izhikevich", {"a": 0.3, "b": 0.2, "v_reset": None}),
             ("PLIF", {}), ("PLIF", {"decay_input": False, "v_reset": None})]


@pytest.mark.parametrize("name, kw", REF_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(REF_CASES)])
def test_matches_handwritten_reference(name, kw):
    cell = LIB.neurons[name](**kw, step_mode="m")
    x = _x(seed=2)
    s = cell(x)
    loss = (s * torch.linspace(0.5, 1.5, F)).sum() + 0.1 * cell.v.sum()
    loss.backward()
    xr = x.detach().clone().requires_grad_(True)
    vr = kw.get("v_reset", 0.0)
    if name == "PLIF":
        w = cell.w.detach().clone().requires_grad_(True)
        dec = kw.get("decay_input", True)
        vr0 = 0.0 if vr is None else vr

        def ch(v, _, x_):
            k = torch.sigmoid(w)
            return (v + (x_ - (v - vr0)) * k if dec else v - (v - vr0) * k + x_), None
        v0, w0, on = vr0, None, None
    else:
        ch, v0, w0, on = _ref_case(name, kw)
    v0t = torch.full_like(xr[0], v0)
    w0t = None if w0 is None else torch.full_like(xr[0], w0)
    sr, vfin = reference(ch, xr, v0t, w0t, v_reset=vr, detach=kw.get("detach_reset", False), on_spike=on)
    ((sr * torch.linspace(0.5, 1.5, F)).sum() + 0.1 * vfin.sum()).backward()
    assert s.sum() > 0
    assert torch.equal(s.detach(), sr.detach())
    torch.testing.assert_close(cell.v.detach(), vfin.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-5, atol=1e-6)
    if name == "PLIF":
        torch.testing.assert_close(cell.w.grad, w.grad, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ state misuse is a clear error
def test_batch_size_change_without_reset():
    cell = LIB.neurons["LIF"]()
    cell(torch.rand(4, F))
    with pytest.raises(rt.StateError, match="reset"):
        cell(torch.rand(3, F))
    cell.reset()
    cell(torch.rand(3, F))


@pytest.mark.parametrize("mode", "sm")
def test_second_backward_without_reset(mode):
    cell = LIB.neurons["LIF"](step_mode=mode)
    x = _x()
    _run(cell, x).sum().backward()
    try:
        with pytest.raises(rt.StateError, match="reset_net"):
            _run(cell, _x(seed=3)).sum().backward()
    except RuntimeError as exc:  # pragma: no cover - the failure we guard against
        assert "second time" not in str(exc), "torch's error leaked instead of StateError"
        raise
    cell.reset()
    _run(cell, _x(seed=3)).sum().backward()


def test_detach_allows_truncated_bptt():
    """detach_net cuts the graph at the kept state: the next chunk trains (no StateError), from the state's
    values, and its gradients are those of a cell that starts from them as constants."""
    cell = LIB.neurons["LIF"](step_mode="m")
    cell(_x()).sum().backward()
    with pytest.raises(rt.StateError):
        cell(_x(seed=4))
    rt.detach_net(cell)
    kept = cell.v
    assert not kept.requires_grad and kept.abs().sum() > 0  # the values stay, the graph goes
    x = _x(seed=4)
    out = cell(x)
    out.sum().backward()
    fresh = LIB.neurons["LIF"](step_mode="m")
    fresh._state = (kept.clone(),)
    xr = _x(seed=4)
    ref = fresh(xr)
    ref.sum().backward()
    assert torch.equal(out, ref)
    torch.testing.assert_close(x.grad, xr.grad, rtol=0, atol=0)


def test_network_auto_resets_in_multi_step_mode():
    net = snnc.load(MODELS / "fc2_mnist.snn").network()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 2, 1, 28, 28, generator=g)
    y1 = net(x)
    net(torch.rand(4, 5, 1, 28, 28, generator=g)).sum().backward()  # another batch size, after a backward
    y2 = net(x)
    assert torch.equal(y1, y2)


def test_dropout_uses_one_mask_across_time():
    torch.manual_seed(0)
    d = rt.Dropout(0.5)
    d.step_mode = "m"
    d.train()
    y = d(torch.ones(6, 2, 50))
    assert all(torch.equal(y[0], y[t]) for t in range(6))
    assert 0 < int((y[0] == 0).sum()) < 100
    d.step_mode = "s"
    d.reset()
    first = d(torch.ones(2, 50))
    assert all(torch.equal(first, d(torch.ones(2, 50))) for _ in range(5))
    d.eval()
    assert torch.equal(d(torch.ones(2, 50)), torch.ones(2, 50))


def test_user_written_neuron_trains_without_derivatives(tmp_path):
    f = tmp_path / "mine.snn"
    f.write_text("# a new neuron: H = V + X^2 / 2\n"
                 "neuron HalfSquareIF {\n    param gain = 0.5\n    state v = v_reset\n    charge v = v + gain * x ^ 2\n}\n")
    lib = snnc.load(f)
    torch.manual_seed(0)
    net = torch.nn.Sequential(rt.Linear(8, 4), lib.neurons["HalfSquareIF"](step_mode="m"))
    before = net[0].weight.detach().clone()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    x = torch.rand(6, 3, 8)
    loss = ((net(x).mean(0) - torch.tensor([1.0, 0.0, 1.0, 0.0])) ** 2).mean()
    loss.backward()
    assert net[0].weight.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(before, net[0].weight)


def test_parameter_constraints_are_enforced():
    with pytest.raises(rt.ParameterError, match="tau > 1.0"):
        LIB.neurons["LIF"](tau=0.5)
    with pytest.raises(rt.ParameterError):
        LIB.neurons["LIF"](tau="fast")
