"""One batch through a network: encode the images, run the network, read out over time, the loss.

Shared by training, evaluation and the run's output plot. Where the encoder is Poisson, the run's backend
uses the host input kernels, and the network starts with flatten -> linear (read by nothing else), encoding
and that layer run as one kernel (`fused_input`): the same spikes, never stored.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..compiler.graph import input_head
from ..compiler.source import SnncError
from ..runtime import backends, support
from .encode import encode
from .experiment import Experiment

TRAIN_STREAM, TEST_STREAM, VAL_STREAM = 0, 1, 2  # Poisson spikes of each split are drawn apart


def host_inputs(model: torch.nn.Module, device: torch.device) -> bool:
    """Whether the run's neurons are on a backend that uses the host C++ input kernels (encoder, fused head)."""
    names = {m.resolved_backend(device) for m in model.modules() if isinstance(m, support.NeuronBase)}
    return bool(names) and all(backends.get(n).host_inputs for n in names)


def run_net(exp: Experiment, model: torch.nn.Module, x: torch.Tensor, s: dict, index: torch.Tensor, epoch: int,
            stream: int, buffers: dict, fuse: bool) -> torch.Tensor:
    """The network's output [T, N, classes] for a batch of images, encoded as the model says."""
    host = x.device.type == "cpu" and host_inputs(model, x.device)
    head = _fusable_head(exp, model, s) if fuse and host else None
    if head is None:
        return model(encode_batch(exp, x, s, index, epoch, stream, buffers, host))
    from .fused_input import fused_head

    with fused_head(model, head, s["T"], s["seed"], index, epoch, stream):
        return model(x)


def _fusable_head(exp: Experiment, model: torch.nn.Module, s: dict):
    if exp.encoder != "poisson" or s["amp"] or getattr(model, "step_mode", "m") != "m":
        return None
    return input_head(exp.graph)


def encode_batch(exp: Experiment, x: torch.Tensor, s: dict, index: torch.Tensor, epoch: int, stream: int,
                 buffers: dict, host: bool = True) -> torch.Tensor:
    out = None
    if exp.encoder == "poisson" and x.device.type == "cpu" and host:
        shape = (s["T"], *x.shape)
        out = buffers.get(shape)
        if out is None:
            out = buffers[shape] = torch.empty(shape, dtype=torch.float32)
    return encode(exp.encoder, x, s["T"], seed=s["seed"], index=index, epoch=epoch, stream=stream,
                  dtype=torch.float32, out=out, host=host)


def readout(exp: Experiment, model: torch.nn.Module, y_seq: torch.Tensor, lengths: torch.Tensor | None = None):
    """Class scores [N, classes] from the output over time [T, N, classes] (the network's readout rule), over
    each sample's valid steps where `lengths` says how many there are (padded sequences)."""
    net = getattr(model, "module", model)
    if isinstance(net, support.Network):
        return net.readout(y_seq.float(), lengths)
    return support.READOUTS[exp.readout](y_seq.float(), lengths)


def loss_of(scores: torch.Tensor, y: torch.Tensor, kind: str, num_classes: int) -> torch.Tensor:
    if scores.dim() != 2 or scores.shape[1] != num_classes:
        raise SnncError(f"the network's output has shape [T, {', '.join(map(str, scores.shape))}], "
                        f"expected [T, N, {num_classes}]", hint="the last layer must have one neuron per class")
    if kind == "ce":
        return F.cross_entropy(scores, y)
    return F.mse_loss(scores, F.one_hot(y, num_classes).to(scores.dtype))


def autocast(device: torch.device, amp: bool):
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device.type, dtype=dtype, enabled=bool(amp))
