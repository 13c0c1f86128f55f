"""Learnable delays (the dcls layer, runtime/delays.py): outputs and gradients equal the dcls package's Dcls1d
as the SNN-delays code (Hammouamri et al.) uses it, within 1e-6; at sigma -> 0 with integer positions identical
to a fixed per-channel delay(d) followed by linear; single steps equal the sequence; snnc check's delay line;
the schedule; a built package runs with torch alone."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import snnc
from snnc import cli
from snnc.runtime.delays import Dcls, sigma_at
from snnc.train import delays as train_delays

NET = """
import snnc.neurons
network D {{
    input = [{n_in}]
    T = {T}
    encoder = direct
    readout = mean
    layers {{
        {layers}
    }}
    train {{ epochs = 8  delay_sigma = [3.0, 0.5]  delay_epochs = 4 }}
}}
"""


def _net(tmp_path, layers, n_in=6, T=14, name="d.snn"):
    path = tmp_path / name
    path.write_text(NET.format(n_in=n_in, T=T, layers=layers))
    return snnc.load(path).networks["D"]()


@pytest.mark.parametrize("version,kernel,offset", [("gauss", "gaussian", 0.27), ("max", "triangle", 1.0)])
def test_equals_dcls_package(version, kernel, offset):
    """Same weights, positions and sigma -> the same outputs and gradients (input, weights, positions) as
    Dcls1d over [N, C, T] padded (K - 1, (K - 1) // 2), as SNN-delays runs it (its first T steps: snnc keeps T)."""
    dcls = pytest.importorskip("DCLS.construct.modules")
    torch.manual_seed(0)
    T, N, n_in, n_out, K = 40, 4, 11, 7, 13
    ref = dcls.Dcls1d(n_in, n_out, kernel_count=1, groups=1, dilated_kernel_size=K, bias=False,
                      version=version).double()
    with torch.no_grad():
        torch.nn.init.uniform_(ref.P, -(K // 2), K // 2)
        ref.SIG.fill_(1.7)
    ours = Dcls(n_in, n_out, max_delay=K - 1, kernel=kernel).double()
    with torch.no_grad():  # DCLS's position P is centred: a delay of K // 2 - P steps
        ours.weight.copy_(ref.weight[:, :, 0])
        ours.position.copy_(K // 2 - ref.P[0, :, :, 0])
        ours.set_sigma(1.7 + offset)  # DCLS's width is |SIG| + 0.27 (gauss), |SIG| + 1 (max)
    ours.step_mode = "m"
    x = torch.rand(T, N, n_in, dtype=torch.double, requires_grad=True)
    xr = x.detach().clone().requires_grad_(True)
    padded = torch.nn.functional.pad(xr.permute(1, 2, 0), (K - 1, (K - 1) // 2))
    y_ref = ref(padded).permute(2, 0, 1)[:T]
    y = ours(x)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    (y_ref * g).sum().backward()
    assert (y - y_ref).abs().max() < 1e-6
    assert (x.grad - xr.grad).abs().max() < 1e-6
    assert (ours.weight.grad - ref.weight.grad[:, :, 0]).abs().max() < 1e-6
    assert (ours.position.grad + ref.P.grad[0, :, :, 0]).abs().max() < 1e-6  # d = K // 2 - P
    assert ours.position.grad.abs().max() > 1e-3  # the positions do learn


@pytest.mark.parametrize("sigma", [0.0, 1e-3])
def test_sharp_kernel_is_a_fixed_delay(tmp_path, sigma):
    """Integer positions, one per input channel, sigma -> 0: the same as delay([d...]) then linear."""
    steps = [0, 3, 1, 5, 2, 4]
    learned = _net(tmp_path, "dcls(5, max_delay = 5)\n        LIF(tau = 2.0)", name="a.snn")
    fixed = _net(tmp_path, f"delay([{', '.join(map(str, steps))}])\n        linear(5, bias = false)\n"
                           "        LIF(tau = 2.0)", name="b.snn")
    with torch.no_grad():
        fixed.layers["1"].weight.copy_(learned.layers["0"].weight)
        learned.layers["0"].position.copy_(torch.tensor(steps, dtype=torch.float).expand(5, -1))
        learned.layers["0"].set_sigma(sigma)
    x = (torch.rand(14, 3, 6) < 0.4).float()
    learned.train(), fixed.train()
    y, y_fixed = learned(x), fixed(x)
    assert (y - y_fixed).abs().max() < 1e-6
    learned.eval()  # eval: the rounded delays, whatever sigma
    learned.layers["0"].set_sigma(2.0)
    assert torch.equal(learned(x), fixed(x))


@pytest.mark.parametrize("training", [True, False])
def test_single_steps_equal_the_sequence(tmp_path, training):
    net = _net(tmp_path, "dcls(8, max_delay = 4, kernel = triangle, bias = true)\n        LIF(tau = 2.0)\n"
                         "        dcls(3, max_delay = 6)\n        LI(tau = 2.0)")
    net.train(training)
    x = torch.rand(14, 2, 6)
    y = net(x)
    snnc.functional.set_step_mode(net, "s")
    snnc.functional.reset_net(net)
    steps = torch.stack([net(x[t]) for t in range(14)])
    assert (steps - y).abs().max() < 1e-6


def test_gradients_reach_positions_and_weights(tmp_path):
    net = _net(tmp_path, "dcls(8, max_delay = 4)\n        LIF(tau = 2.0)\n        linear(3)\n        LI(tau = 2.0)")
    net.train()
    net(torch.rand(14, 2, 6)).sum().backward()
    layer = net.layers["0"]
    assert layer.weight.grad.abs().sum() > 0 and layer.position.grad.abs().sum() > 0


def test_schedule_and_projection(tmp_path):
    net = _net(tmp_path, "dcls(4, max_delay = 10)\n        LI(tau = 2.0)")
    s = {"epochs": 8, "lr": 1e-3, "delay_sigma": (3.0, 0.5), "delay_epochs": 4, "delay_lr": None}
    widths = []
    for epoch in range(6):
        train_delays.schedule(net, s, epoch)
        widths.append(float(net.layers["0"].sigma))
    assert widths[0] == 3.0 and widths[4:] == [0.5, 0.5] and all(a > b for a, b in zip(widths[:4], widths[1:5]))
    assert sigma_at(2, 3.0, 0.5, 4) == pytest.approx(3.0 * (0.5 / 3.0) ** 0.5)
    groups = train_delays.param_groups(net, s)
    assert groups[1]["lr"] == pytest.approx(0.1) and groups[1]["params"][0] is net.layers["0"].position
    with torch.no_grad():
        net.layers["0"].position[0, 0] = 13.0
        net.layers["0"].position[0, 1] = -2.0
    train_delays.project(net)
    assert net.layers["0"].position[0, :2].tolist() == [10.0, 0.0]


def test_check_shows_the_delay_layers(tmp_path, capsys):
    path = tmp_path / "c.snn"
    path.write_text(NET.format(n_in=20, T=30, layers="dcls(16, max_delay = 25)\n        LIF(tau = 2.0)\n"
                                                       "        delay(3)\n        linear(4)"))
    assert cli.main(["check", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())  # lines wrap at 100 columns
    assert ("delay 0: max delay 25 steps (receptive field 26 of T = 30), 320 weights + 320 positions (gaussian "
            "kernel, rounded for inference); extra memory: 500 values per sample (25 past steps x 20 inputs), "
            "8,320 kernel taps") in out
    assert "delay 2: max delay 3 steps (fixed), 0 parameters; extra memory: 48 values per sample" in out
    assert "640" in out  # weights and positions are parameters


@pytest.mark.parametrize("text,message", [
    ("dcls(4, max_delay = -1)", "dcls max_delay must be a whole number of steps >= 0, not -1"),
    ("dcls(4, kernel = box)", "invalid value 'box' for dcls argument 'kernel'"),
    ("dcls(0)", "dcls out_features must be at least 1, not 0"),
])
def test_bad_arguments_are_located_errors(tmp_path, capsys, text, message):
    path = tmp_path / "bad.snn"
    path.write_text(NET.format(n_in=6, T=10, layers=text))
    assert cli.main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert message in err and "bad.snn:" in err and "Traceback" not in err


def test_bad_schedule_is_a_located_error(tmp_path, capsys):
    path = tmp_path / "bad.snn"
    path.write_text(NET.format(n_in=6, T=10, layers="dcls(4)").replace("[3.0, 0.5]", "[3.0]"))
    assert cli.main(["check", str(path)]) == 1
    assert "training setting 'delay_sigma'" in capsys.readouterr().err


def test_built_package_runs_with_torch_alone(tmp_path):
    path = tmp_path / "built_delays.snn"
    path.write_text(NET.format(n_in=6, T=10, layers="dcls(4, max_delay = 3)\n        LI(tau = 2.0)"))
    out = tmp_path / "out"
    assert cli.main(["build", str(path), "-o", str(out)]) == 0
    code = (f"import sys\nsys.path.insert(0, {str(out)!r})\nimport torch, built_delays\n"
            "net = built_delays.D()\ny = net(torch.rand(10, 2, 6))\ny.sum().backward()\n"
            "assert not any(m == 'snnc' or m.startswith('snnc.') for m in sys.modules)\nprint(tuple(y.shape))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "(10, 2, 4)"


def test_nir_exports_rounded_delays_and_imports_back(tmp_path):
    """A trained dcls layer exports as nir.Delay nodes (its rounded delays, in dt) and Linear nodes (their
    synapses); importing gives back fixed delays and linear layers whose outputs equal the layer's in eval."""
    nir = pytest.importorskip("nir")
    from snnc.interchange import nir_export, nir_import

    path = tmp_path / "n.snn"
    path.write_text(NET.format(n_in=6, T=14, layers="dcls(5, max_delay = 4, bias = true)\n        LIF(tau = 2.0)\n"
                                                     "        linear(3)\n        LI(tau = 2.0)"))
    net = snnc.load(path).network("D", backend="torch")
    with torch.no_grad():  # 'trained': positions off the integers
        net.layers["0"].position.copy_(torch.rand(5, 6) * 4)
    graph = nir_export.export_network(path, "D", state_dict=net.state_dict(), dt=1e-4)
    sub = graph.nodes["0"]
    assert isinstance(sub, nir.NIRGraph)
    delays = net.layers["0"].delays()
    for d in set(delays.flatten().tolist()) - {0}:
        assert np.allclose(sub.nodes[f"d{d}"].delay, d * 1e-4)
    total = sum(np.asarray(n.weight) for k, n in sub.nodes.items() if k.startswith("w"))
    assert np.allclose(total, net.layers["0"].weight.detach().numpy())
    file = tmp_path / "n.nir"
    nir_export.write(file, graph)
    _, weights = nir_import.import_file(file, tmp_path / "back.snn")
    back = snnc.load(tmp_path / "back.snn").network("D", backend="torch")
    state = torch.load(weights, weights_only=True)
    back.load_state_dict(state.get("model", state))
    net.eval(), back.eval()
    x = (torch.rand(14, 3, 6) < 0.4).float()
    with torch.no_grad():
        assert (net(x) - back(x)).abs().max() < 1e-5
