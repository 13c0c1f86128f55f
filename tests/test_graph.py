"""Network graphs: residual (SEW) blocks, recurrent loops and delays against SpikingJelly 2.0.0, on the torch and
cpp backends (spikes exact, gradients within 1e-6); step modes; the shape of the generated forward."""
from __future__ import annotations

import pytest
import torch

import snnc
from snnc.runtime.backends import available

from conftest import MODELS

sj = pytest.importorskip("spikingjelly.activation_based")
from spikingjelly.activation_based import functional as sjf  # noqa: E402
from spikingjelly.activation_based import layer as sjl  # noqa: E402
from spikingjelly.activation_based import neuron as sjn  # noqa: E402

BACKENDS = [b for b in ("torch", "cpp") if b in available("cpu")]
NEURONS = (MODELS / "neurons.snn").as_posix()

SEW = f"""
import "{NEURONS}"
block SEW(channels, stride = 1, connect = add, neuron = IF) {{
    conv2d(channels, 3, stride = stride, padding = 1, bias = false)
    batchnorm2d
    neuron()
    conv2d(channels, 3, padding = 1, bias = false)
    batchnorm2d
    out = neuron()
    connect(in, out)
}}
block SEWDown(channels, stride = 2, connect = add, neuron = IF) {{
    conv2d(channels, 3, stride = stride, padding = 1, bias = false)
    batchnorm2d
    neuron()
    conv2d(channels, 3, padding = 1, bias = false)
    batchnorm2d
    out = neuron()
    conv2d(channels, 1, stride = stride, bias = false) from in
    batchnorm2d
    down = neuron()
    connect(down, out)
}}
network Block {{
    input = [4, 6, 6]
    T = 5
    encoder = direct
    layers {{
        b = {{block}}
        flatten
    }}
}}
"""


def _load(tmp_path, text, name="net.snn"):
    path = tmp_path / name
    path.write_text(text)
    return snnc.load(path)


def _close(a, b, tol=1e-6):
    """max |a - b| <= tol * max |b|: gradients agree to 1e-6 of their scale (the fused backward's exp and FMAs
    round differently from autograd's operation-by-operation)."""
    err = float((a - b).abs().max()) / max(float(b.abs().max()), 1e-30)
    assert err <= tol, f"gradient differs by {err:.2e} of its scale"


def _grads(module_out, inputs, params, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(module_out.shape, generator=g)
    return torch.autograd.grad((module_out * w).sum(), [inputs, *params])


def _sj_block(cnf, down):
    # SpikingJelly's model package imports torchvision (absent beside some torch builds): skip only these tests
    sew_resnet = pytest.importorskip("spikingjelly.activation_based.model.sew_resnet",
                                     reason="SpikingJelly's sew_resnet needs torchvision")
    torch.manual_seed(0)
    downsample = None
    if down:
        downsample = torch.nn.Sequential(sjl.Conv2d(4, 8, 1, stride=2, bias=False), sjl.BatchNorm2d(8))
    blk = sew_resnet.BasicBlock(4, 8 if down else 4, stride=2 if down else 1, downsample=downsample, cnf=cnf,
                                spiking_neuron=sjn.IFNode)
    sjf.set_step_mode(blk, "m")
    return blk


def _copy_block(blk, net, down):
    src = blk.state_dict()
    mapping = {"conv1": "0", "bn1": "1", "conv2": "3", "bn2": "4", "downsample.0": "6", "downsample.1": "7"}
    dst = {}
    for key, value in src.items():
        prefix = next(p for p in mapping if key.startswith(p + "."))
        dst[f"layers.b.{mapping[prefix]}{key[len(prefix):]}"] = value
    missing, unexpected = net.load_state_dict(dst, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") or "neuron" in k for k in missing), missing


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cnf", ["ADD", "AND", "IAND"])
@pytest.mark.parametrize("down", [False, True], ids=["identity", "downsample"])
def test_sew_block_matches_spikingjelly(tmp_path, cnf, down, backend):
    connect = cnf.lower()
    block = f"SEWDown(8, connect = {connect})" if down else f"SEW(4, connect = {connect})"
    lib = _load(tmp_path, SEW.replace("{block}", block))
    net = lib.network(backend=backend)
    blk = _sj_block(cnf, down)
    _copy_block(blk, net, down)
    x = (torch.rand(5, 3, 4, 6, 6, generator=torch.Generator().manual_seed(1)) * 3).requires_grad_(True)
    spikes = []
    blk.sn2.register_forward_hook(lambda m, i, o: spikes.append(o.detach()))
    ref = blk(x).flatten(2)
    out = net(x)
    assert torch.equal(out, ref)
    assert 0.05 < float(spikes[0].mean()) < 0.95  # the merge sees both spikes and silence
    mine = _grads(out, x, [net.layers["b"]["0"].weight, net.layers["b"]["3"].weight])
    theirs = _grads(ref, x, [blk.conv1.weight, blk.conv2.weight])
    for a, b in zip(mine, theirs):
        _close(a, b)


RECURRENT = f"""
import "{NEURONS}"
network Rec {{
    input = [6]
    T = 7
    encoder = direct
    layers {{
        {{body}}
    }}
}}
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_linear_recurrence_matches_linear_recurrent_container(tmp_path, backend):
    lib = _load(tmp_path, RECURRENT.replace("{body}", "c = concat(in, s)\n        linear(6)\n        s = LIF(tau = 2.0)"))
    net = lib.network(backend=backend)
    torch.manual_seed(0)
    ref = sjl.LinearRecurrentContainer(sjn.LIFNode(tau=2.0), in_features=6, out_features=6)
    with torch.no_grad():
        ref.rc.weight.mul_(4.0)
    sjf.set_step_mode(ref, "m")
    net.layers["1"].load_state_dict(ref.rc.state_dict())
    x = (torch.rand(7, 4, 6, generator=torch.Generator().manual_seed(2)) * 2).requires_grad_(True)
    y_ref = ref(x)
    y = net(x)
    assert torch.equal(y, y_ref) and 0 < float(y.detach().mean()) < 1
    for a, b in zip(_grads(y, x, [net.layers["1"].weight, net.layers["1"].bias]),
                    _grads(y_ref, x, [ref.rc.weight, ref.rc.bias])):
        _close(a, b)
    assert net.LOOPS == ("c", "1", "s")


@pytest.mark.parametrize("backend", BACKENDS)
def test_element_wise_recurrence_matches_element_wise_container(tmp_path, backend):
    lib = _load(tmp_path, RECURRENT.replace("{body}", "h = linear(6)\n        a = add(s, h)\n        s = IF()"))
    net = lib.network(backend=backend)
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 6)
    net.layers["h"].load_state_dict(lin.state_dict())
    ref = sjl.ElementWiseRecurrentContainer(sjn.IFNode(), element_wise_function=lambda y, x: y + x)
    sjf.set_step_mode(ref, "m")
    x = (torch.rand(7, 4, 6, generator=torch.Generator().manual_seed(3))).requires_grad_(True)
    y_ref = ref(sjl.SeqToANNContainer(lin)(x))
    y = net(x)
    assert torch.equal(y, y_ref) and 0 < float(y.detach().mean()) < 1
    for a, b in zip(_grads(y, x, [net.layers["h"].weight]), _grads(y_ref, x, [lin.weight])):
        _close(a, b)
    assert net.LOOPS == ("a", "s")


@pytest.mark.parametrize("backend", BACKENDS)
def test_delay_matches_spikingjelly(tmp_path, backend):
    lib = _load(tmp_path, RECURRENT.replace("{body}", "linear(6)\n        IF()\n        delay(3)"))
    net = lib.network(backend=backend)
    x = torch.rand(7, 4, 6) * 2
    spikes = net.layers["1"](net.layers["0"](x))
    ref = sjl.Delay(3, step_mode="m")(spikes)
    assert torch.equal(net(x), ref)


def test_per_channel_delay(tmp_path):
    lib = _load(tmp_path, RECURRENT.replace("{body}", "delay([0, 1, 2, 3, 7, 2])"))
    net = lib.network()
    x = torch.rand(7, 2, 6)
    y = net(x)
    for c, d in enumerate((0, 1, 2, 3, 7, 2)):
        expect = torch.cat((torch.zeros(d, 2), x[:7 - d, :, c])) if d else x[:, :, c]
        assert torch.equal(y[:, :, c], expect[:7])


GRAPH = f"""
import "{NEURONS}"
block Res(width) {{
    h = linear(width)
    s = LIF()
    add(in, s)
}}
network G {{
    input = [5]
    T = 6
    encoder = direct
    layers {{
        inp = linear(8)
        r = linear(8, bias = false) from s2
        a = add(inp, r)
        s = ALIF()
        d = delay(2) from s
        s2 = PLIF() from d
        e = Res(8) from s
        cat = concat(e, s2)
        linear(3)
        Readout()
    }}
}}
neuron ALIF {{
    param tau = 2.0
    param beta = 0.5
    state v = v_reset
    state w = 0.0
    charge {{
        v = v + (x - v - beta * w) / tau
        w = w * 0.9
    }}
    on_spike w += 1.0
}}
neuron Readout {{
    param tau = 2.0
    state v = 0.0
    charge v = v + (x - v) / tau
    output membrane
}}
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_modes_agree_on_a_graph_with_loops_and_delays(tmp_path, backend):
    lib = _load(tmp_path, GRAPH)
    torch.manual_seed(0)
    net_m = lib.network(step_mode="m", backend=backend)
    net_s = lib.network(step_mode="s", backend=backend)
    assert list(net_m.state_dict()) == list(net_s.state_dict())
    net_s.load_state_dict(net_m.state_dict())
    x = torch.rand(6, 3, 5) * 3
    y_m = net_m(x)
    net_s.reset()
    y_s = torch.stack([net_s(x[t]) for t in range(6)])
    assert y_m.shape == (6, 3, 3)
    torch.testing.assert_close(y_s, y_m, rtol=0, atol=1e-6)
    loss_m = (y_m ** 2).sum()
    loss_m.backward()
    assert all(p.grad is not None for p in net_m.parameters())


def test_loops_run_step_by_step_and_the_rest_over_all_steps(tmp_path):
    lib = _load(tmp_path, GRAPH)
    cls = lib.network_class()
    assert cls.LOOPS == ("r", "a", "s", "d", "s2")
    import inspect

    seq = inspect.getsource(cls.forward_seq)
    assert "for t in range(x.shape[0]):" in seq
    assert seq.index('_inp = L["inp"](x)') < seq.index("for t in")  # feed-forward input before the loop
    assert 'L["e"]["h"]' in seq and "prev_s2" in seq


def test_check_prints_the_graph(tmp_path, capsys):
    from snnc import cli

    path = tmp_path / "g.snn"
    path.write_text(GRAPH)
    assert cli.main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "s2[t-1]" in out and "loop over time: r, a, s, d, s2" in out
    assert "e.h" in out and "[16]" in out  # a block's node, and concat's channels
