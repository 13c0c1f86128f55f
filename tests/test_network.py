"""Generated networks: readout, step modes, backends, folding of stateless layers."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import snnc

ROOT = Path(__file__).resolve().parents[1]

NET = """
import "{neurons}"
network Tiny {{
    input = [2, 6, 6]
    T = 5
    encoder = direct
    readout = {readout}
    layers {{
        conv2d(3, kernel_size = 3, padding = 1)
        batchnorm2d
        LIF(tau = 2.0)
        avgpool2d(2)
        flatten
        dropout(0.5)
        linear(4)
        IF(v_threshold = 0.5, v_reset = none)
    }}
}}
"""


def _lib(tmp_path, readout="rate"):
    path = tmp_path / f"tiny_{readout}.snn"
    path.write_text(NET.format(neurons=(ROOT / "models" / "neurons.snn").as_posix(), readout=readout))
    return snnc.load(path)


def test_single_and_multi_step_agree_with_identical_state_dicts(tmp_path):
    torch.manual_seed(0)
    lib = _lib(tmp_path)
    net_m = lib.network(step_mode="m").eval()
    net_s = lib.network(step_mode="s").eval()
    net_s.load_state_dict(net_m.state_dict())
    assert list(net_m.state_dict()) == list(net_s.state_dict())
    x = torch.rand(5, 3, 2, 6, 6) * 2
    y_m = net_m(x)
    snnc.functional.reset_net(net_s)
    y_s = torch.stack([net_s(x[t]) for t in range(5)])
    assert y_m.shape == (5, 3, 4)
    assert torch.equal(y_m, y_s)


def test_membrane_readout_emits_the_last_layers_potential(tmp_path):
    torch.manual_seed(0)
    net = _lib(tmp_path, "membrane").network().eval()
    x = torch.rand(5, 3, 2, 6, 6) * 2
    out = net(x)
    last = net.readout_layer()
    assert last.output == "v"
    assert torch.equal(out[-1], last.v)
    assert not torch.all((out == 0) | (out == 1))  # voltages, not spikes


def test_fused_backend_gives_the_same_network_output(tmp_path):
    torch.manual_seed(0)
    net = _lib(tmp_path).network().eval()
    x = torch.rand(5, 3, 2, 6, 6) * 2
    ref = net(x)
    snnc.functional.set_backend(net, "cpp")
    assert torch.equal(net(x), ref)


def test_dropout_mask_is_shared_across_time_in_training(tmp_path):
    torch.manual_seed(0)
    net = _lib(tmp_path).network().train()
    drop = next(m for m in net.modules() if type(m).__name__ == "Dropout")
    seen = []
    drop.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    net(torch.rand(5, 3, 2, 6, 6))
    x, y = seen[0]
    dropped, kept = (y == 0) & (x != 0), y != 0
    assert dropped.any() and kept.any()
    assert not (dropped.any(0) & kept.any(0)).any()  # a unit is dropped at every step or at none


FEEDBACK = """
import snnc.neurons

network Feedback {
    input = [1]
    T = 9
    encoder = direct
    layers {
        a = add(in, late)
        s = IF()
        late = {late} from s
        concat(s, late)
    }
}
"""


@pytest.mark.parametrize("late, period", [("delay(1)", 1), ("delay(2)", 2), ("delay(3)", 3), ("IF(v_threshold = 0.5)", 1)])
def test_feedback_through_delay_d_arrives_d_steps_later(tmp_path, late, period):
    """A node read before it is defined is read one step late; a delay(d) on the way is that late step itself:
    what `s` fires at t comes back at t + d (not t + d + 1). A pulse at t = 0 keeps circling with period d (a
    neuron on the way instead: one step)."""
    path = tmp_path / "feedback.snn"
    path.write_text(FEEDBACK.replace("{late}", late))
    net = snnc.load(path).network(backend="torch")
    x = torch.zeros(9, 1, 1)
    x[0] = 1.0
    with torch.no_grad():
        s = net(x)[:, 0, 0]
    assert s.nonzero().flatten().tolist() == list(range(0, 9, period))
