"""Online learning (runtime/online.py): SLTT equals SpikingJelly 2.0.0's SLTTLIFNode trained by its
ottt_online_training, and cuts the temporal chain of every library neuron."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import snnc
from snnc.runtime import online, support

NET = """
import snnc.neurons
network Online {{
    input = [6]
    T = 5
    encoder = direct
    layers {{
        linear(12)
        {neuron}
        linear(4)
        {neuron}
    }}
}}
"""
LIF = "LIF(tau = 2.0, surrogate = sigmoid(alpha = 4.0), detach_reset = true)"


def _net(tmp_path, neuron=LIF):
    path = tmp_path / "online.snn"
    path.write_text(NET.format(neuron=neuron))
    return snnc.load(path).network_class()()


def _data(T=5, N=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(T, N, 6, generator=g) * 2, torch.rand(T, N, 4, generator=g)


def test_sltt_gradients_equal_spikingjelly_sltt_lif_node(tmp_path):
    sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
    from spikingjelly.activation_based import functional, surrogate
    from spikingjelly.activation_based.learning.online_learning import ottt_online_training

    torch.manual_seed(0)
    net = _net(tmp_path)
    ref = torch.nn.Sequential(
        torch.nn.Linear(6, 12), sj_neuron.SLTTLIFNode(tau=2.0, surrogate_function=surrogate.Sigmoid(alpha=4.0)),
        torch.nn.Linear(12, 4), sj_neuron.SLTTLIFNode(tau=2.0, surrogate_function=surrogate.Sigmoid(alpha=4.0)))
    ref[0].load_state_dict(net.layers["0"].state_dict())
    ref[2].load_state_dict(net.layers["2"].state_dict())
    x, target = _data()
    online.apply(net, "sltt")
    out, loss = online.train_step(net, x, lambda o, t: F.mse_loss(o, target[t]))
    functional.reset_net(ref)
    sj_loss, sj_out = ottt_online_training(ref, torch.optim.SGD(ref.parameters(), lr=0.0), x.transpose(0, 1),
                                           target.transpose(0, 1), F.mse_loss, online=False)
    assert torch.equal(out, sj_out.transpose(0, 1))
    assert abs(float(loss) - float(sj_loss)) < 1e-6
    for mine, theirs in ((net.layers["0"], ref[0]), (net.layers["2"], ref[2])):
        for p, q in zip(mine.parameters(), theirs.parameters()):
            assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=0), (p.grad - q.grad).abs().max()
    assert net.step_mode == "m"  # the network's modes are as they were


NEURONS = ["IF(surrogate = atan(alpha = 2.0))", "QIF", "EIF", "Izhikevich", "CUBALIF", "AdaptiveLIF", "PLIF",
           "SquareIF"]


@pytest.mark.parametrize("neuron", NEURONS)
def test_sltt_is_backprop_with_the_state_cut_between_steps_for_every_library_neuron(tmp_path, neuron):
    """Per-step backward with the state cut = one backward of the summed losses with the state detached at
    every step (no gradient through time), for any neuron; and it differs from BPTT."""
    x, target = _data()
    torch.manual_seed(0)
    net = _net(tmp_path, neuron)
    online.apply(net, "sltt")
    online.train_step(net, x, lambda o, t: F.mse_loss(o, target[t]))
    sltt = [p.grad.clone() for p in net.parameters()]

    net.zero_grad()
    support.set_step_mode(net, "s")
    support.reset_net(net)
    total = 0.0
    for t in range(x.shape[0]):
        total = total + F.mse_loss(net(x[t]), target[t])
        online._cut(net)
    total.backward()
    for a, p in zip(sltt, net.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-6, rtol=1e-5)


def test_sltt_keeps_one_step_of_graph(tmp_path):
    """What backward keeps at any time is one step's: the same for T = 4 and T = 32."""
    from snnc.runtime import memory

    kept = {}
    for T in (4, 32):
        net = _net(tmp_path)
        x, target = _data(T=T)
        sizes = []

        def loss_at(o, t):
            return F.mse_loss(o, target[t])

        def backward(loss):
            loss.backward()

        original = net.forward

        def forward(xt):
            with memory.Kept() as k:
                out = original(xt.clone())  # the input sequence lives anyway: count this step only
            sizes.append(k.bytes)
            return out

        net.forward = forward
        online.train_step(net, x, loss_at, backward)
        kept[T] = max(sizes)
    assert kept[4] == kept[32]
