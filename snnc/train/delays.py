"""What a training run does for learnable delays (dcls layers, runtime/delays.py): the positions' own learning
rate, their projection back into range after each step, and the kernel width annealed per epoch.

DCLS's schedule (Hammouamri et al., the SNN-delays code): sigma falls exponentially from max_delay / 2 to 0.5
steps over the first quarter of the epochs and stays there; the positions learn at 100 x the weights' rate;
evaluation uses the rounded delays (the layer's eval mode), what NIR exports.
"""
from __future__ import annotations

import torch

from ..runtime.delays import delay_layers, sigma_at

END_SIGMA = 0.5  # DCLS anneals its SIG to 0.23, a width of 0.23 + 0.27 = 0.5 steps


def param_groups(net: torch.nn.Module, s: dict) -> list[dict]:
    """The optimiser's parameter groups: delay positions at `delay_lr` (default 100 x lr, no weight decay),
    the rest at `lr`. One group when the network has no dcls layer."""
    positions = [m.position for m in delay_layers(net) if m.position.requires_grad]
    ids = {id(p) for p in positions}
    rest = [p for p in net.parameters() if p.requires_grad and id(p) not in ids]
    if not positions:
        return [{"params": rest}]
    lr = s.get("delay_lr") or 100 * s["lr"]
    return [{"params": rest}, {"params": positions, "lr": lr, "weight_decay": 0.0}]


def schedule(net: torch.nn.Module, s: dict, epoch: int) -> None:
    """Each dcls layer's kernel width for `epoch` (0-based), from the train block's schedule."""
    epochs = s.get("delay_epochs")
    epochs = max(1, s["epochs"] // 4) if epochs is None else epochs
    for m in delay_layers(net):
        start, end = tuple(s.get("delay_sigma") or ()) or (m.max_delay / 2, END_SIGMA)
        m.set_sigma(sigma_at(epoch, start, end, epochs))


def project(net: torch.nn.Module) -> None:
    """After an optimiser step: every position back into [0, max_delay]."""
    for m in delay_layers(net):
        m.project()
