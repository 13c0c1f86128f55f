"""Online gradient modes: training whose memory does not grow with T.

    bptt  backpropagation through time: the whole sequence forward, one backward (autograd's way)
    sltt  spatial learning through time (Meng et al., ICCV 2023): at each step the network runs one step
          and backpropagates that step's loss at once; the neurons' state carried to the next step is
          detached, so no gradient flows through time, and the weight gradients accumulate over the T
          steps. Only one step's graph is alive at a time: memory independent of T.

SLTT holds for every neuron the language can write, not only LIF: the generated `single_step` is the
neuron's charge, fire and reset, and cutting the state between steps is all SLTT changes (its spatial
gradient per step is the step's own derivative). Stateful layers are cut alike (a delay's past inputs, the
network's feedback memory). The loss is the papers' per-step one: (1/T) sum_t loss(output[t]). Batch norm,
running one step at a time, normalises over each step's batch (SpikingJelly's single-step convention).
OTTT (presynaptic traces as the weight gradient's input) is not implemented.
"""
from __future__ import annotations

from typing import Callable

import torch

from . import support

MODES = ("bptt", "sltt")


def apply(net: torch.nn.Module, mode: str) -> None:
    """Train `net` (a generated network) in gradient mode `mode`."""
    if mode not in MODES:
        raise ValueError(f"gradient mode must be one of {', '.join(MODES)}, not {mode!r}")
    net.gradient = mode


def mode_of(net: torch.nn.Module) -> str:
    return getattr(net, "gradient", "bptt")


def _cut(net: torch.nn.Module) -> None:
    """No gradient into the next step: neuron states, feedback memory and delays' past inputs detached."""
    support.detach_net(net)
    for m in net.modules():
        if isinstance(m, support.Delay):
            m._past = [p.detach() for p in m._past]


def train_step(net: support.Network, x_seq: torch.Tensor, loss_at: Callable[[torch.Tensor, int], torch.Tensor],
               backward: Callable[[torch.Tensor], None] = lambda loss: loss.backward()):
    """One SLTT pass over x_seq [T, N, ...]: per step, the step's output, its loss `loss_at(out_t, t)` and its
    backward (`backward`, e.g. through a gradient scaler). Returns (the outputs [T, N, ...] detached, the summed
    loss, detached). Gradients accumulate in the parameters' .grad over the steps."""
    modes = {m: m.step_mode for m in net.modules() if hasattr(m, "step_mode")}
    support.set_step_mode(net, "s")
    try:
        support.reset_net(net)
        outs, total = [], 0.0
        for t in range(x_seq.shape[0]):
            out = net(x_seq[t])
            loss = loss_at(out, t)
            backward(loss)
            _cut(net)
            outs.append(out.detach())
            total = total + loss.detach()
    finally:
        for m, mode in modes.items():
            m.step_mode = mode
    return torch.stack(outs), total
