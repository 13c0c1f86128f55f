"""Learnable synaptic delays: DCLS (Hammouamri, Khalfaoui-Hassani and Masquelier, ICLR 2024). Imports only torch.

`snnc build` copies this file beside the runtime (`support.py`), which re-exports `Dcls`, so built packages run
with PyTorch alone.

`Dcls(in_features, out_features, max_delay)` is a linear layer whose every synapse (o, i) has a weight w[o, i]
and a delay p[o, i] in steps, a continuous position in [0, max_delay]. Over the sequence [T, N, in]:

    out[t, n, o] = bias[o] + sum_i sum_k w[o, i] g_k(p[o, i], sigma) x[t - k, n, i],   k = 0 .. max_delay

with x = 0 before t = 0 (causal). The tap weights g over k are DCLS's kernels, normalised as DCLS does
(g / (sum_k g + 1e-7)):
    gaussian  exp(-(k - p)^2 / (2 sigma^2))
    triangle  max(0, sigma - |k - p|)
`sigma` is the width itself (DCLS's `|SIG| + 0.27` for gauss, `|SIG| + 1` for max); a training run anneals it
(`set_sigma`, per epoch). In eval mode, or at sigma = 0, g is one at round(p): each synapse an integer delay,
what inference uses and NIR exports. Gradients reach w and p (p through the soft kernel only).

The convolution is batched over taps, in the [T, N, ...] layout: one matrix product per tap on a shifted view of
the input (no copies of it per tap, no [N, C, T] transposes), its backward the same products transposed; the
autograd graph keeps the input and the [out, in, taps] kernel only. Taps that no synapse uses (a rounded kernel's
empty delays) are skipped, so an integer-delay layer costs T x synapses x (delays in use).
"""
from __future__ import annotations

import math

import torch
from torch import nn

KERNELS = ("gaussian", "triangle")
INITS = ("uniform", "zero", "half")


def tap_kernel(weight, position, sigma: float, max_delay: int, kernel: str = "gaussian", hard: bool = False):
    """[out, in, max_delay + 1]: each synapse's weight spread over its taps (tap k = a delay of k steps)."""
    taps = torch.arange(max_delay + 1, device=weight.device, dtype=weight.dtype)
    if hard or sigma <= 0:
        k = position.detach().round().clamp(0, max_delay).long()
        hard = weight.unsqueeze(-1) * nn.functional.one_hot(k, max_delay + 1).to(weight.dtype)
        return hard + 0.0 * position.unsqueeze(-1)  # rounding's derivative in the positions: zero, not absent
    x = taps - position.unsqueeze(-1)
    if kernel == "gaussian":
        g = (-0.5 * (x / sigma) ** 2).exp()
    elif kernel == "triangle":
        g = (sigma - x.abs()).relu()
    else:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
    g = g / (g.sum(-1, keepdim=True) + 1e-7)
    return weight.unsqueeze(-1) * g


class _TapConv(torch.autograd.Function):
    """y[t] = sum_k x[t - k] @ K[:, :, k]^T over [T, N, in] -> [T, N, out], taps `used` only."""

    @staticmethod
    def forward(ctx, x, kernel, used):
        T, N, F = x.shape
        taps = kernel.permute(2, 1, 0).contiguous()  # [taps, in, out]: each tap's matrix contiguous
        ctx.save_for_backward(x, taps)
        ctx.used = used
        flat = x.reshape(T * N, F)
        y = x.new_zeros(T * N, kernel.shape[0])
        for k in used:
            if k < T:
                y[k * N:].addmm_(flat[:(T - k) * N], taps[k])
        return y.view(T, N, -1)

    @staticmethod
    def backward(ctx, gy):
        x, taps = ctx.saved_tensors
        T, N, F = x.shape
        flat, g = x.reshape(T * N, F), gy.reshape(T * N, -1).contiguous()
        gx = torch.zeros_like(flat) if ctx.needs_input_grad[0] else None
        gk = torch.zeros_like(taps) if ctx.needs_input_grad[1] else None
        for k in ctx.used:
            if k >= T:
                continue
            if gx is not None:
                gx[:(T - k) * N].addmm_(g[k * N:], taps[k].t())
            if gk is not None:
                torch.mm(flat[:(T - k) * N].t(), g[k * N:], out=gk[k])
        return (gx.view(T, N, F) if gx is not None else None), \
            (gk.permute(2, 1, 0) if gk is not None else None), None


def tap_conv(x, kernel, used=None):
    """The causal convolution of `x` [T, N, in] with `kernel` [out, in, taps] (tap k: k steps late)."""
    if used is None:
        used = range(kernel.shape[-1])
    return _TapConv.apply(x.contiguous(), kernel, tuple(used))


class Dcls(nn.Module):
    """A linear layer with a learnable delay per synapse (see the module's docstring)."""

    snnc_stateful = True
    step_mode = "s"

    def __init__(self, in_features, out_features, max_delay=25, kernel="gaussian", init="uniform", bias=False,
                 sigma=None):
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, not {init!r}")
        if max_delay < 0:
            raise ValueError(f"max_delay must be a whole number of steps >= 0, not {max_delay!r}")
        self.in_features, self.out_features, self.max_delay = in_features, out_features, int(max_delay)
        self.kernel, self.init = kernel, init
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.position = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        # the kernel width: a buffer, so a checkpoint evaluates at the width it was saved with
        self.register_buffer("sigma", torch.tensor(float(self.max_delay / 2 if sigma is None else sigma)))
        self._width = float(self.sigma)  # the buffer's value as a Python number (no device sync per call)
        self.register_load_state_dict_post_hook(lambda m, keys: setattr(m, "_width", float(m.sigma)))
        self.reset_parameters()
        self.reset()

    def reset_parameters(self):
        bound = math.sqrt(6.0 / self.in_features)  # kaiming uniform for ReLU, as the DCLS SHD code starts
        nn.init.uniform_(self.weight, -bound, bound)
        with torch.no_grad():
            if self.init == "uniform":
                nn.init.uniform_(self.position, 0.0, float(self.max_delay))
            else:
                self.position.fill_(0.0 if self.init == "zero" else self.max_delay / 2)
            if self.bias is not None:
                b = 1 / math.sqrt(self.in_features)
                nn.init.uniform_(self.bias, -b, b)

    def reset(self):
        self._past = []  # the last max_delay inputs (single steps), oldest first

    # ---------------------------------------------------------------- training hooks (the runner calls them)
    def set_sigma(self, sigma: float):
        self.sigma.fill_(float(sigma))
        self._width = float(sigma)

    def project(self):
        """Positions back into [0, max_delay] after an optimiser step (DCLS's clamp_parameters)."""
        with torch.no_grad():
            self.position.clamp_(0.0, float(self.max_delay))

    def delays(self) -> torch.Tensor:
        """The integer delays [out, in] that inference uses (and NIR exports)."""
        return self.position.detach().round().clamp(0, self.max_delay).long()

    # ---------------------------------------------------------------- forward
    @property
    def hard(self) -> bool:
        return not self.training or self._width <= 0

    def taps(self):
        return tap_kernel(self.weight, self.position, self._width, self.max_delay, self.kernel, self.hard)

    def _used(self):
        if not self.hard or torch.compiler.is_compiling():  # which taps are in use is data: all under compile
            return range(self.max_delay + 1)
        return torch.unique(self.delays()).tolist()

    def seq(self, x):
        y = tap_conv(x, self.taps(), self._used())
        return y if self.bias is None else y + self.bias

    def step(self, x):
        kernel = self.taps()
        history = self._past + [x]  # history[-1 - k]: the input k steps ago
        y = sum(history[-1 - k] @ kernel[:, :, k].t() for k in range(min(len(history), self.max_delay + 1)))
        self._past = history[-self.max_delay:] if self.max_delay else []
        return y if self.bias is None else y + self.bias

    def forward(self, x):
        return self.seq(x) if self.step_mode == "m" else self.step(x)

    def extra_repr(self):
        return (f"{self.in_features}, {self.out_features}, max_delay={self.max_delay}, kernel={self.kernel!r}, "
                f"sigma={self._width:g}, bias={self.bias is not None}")


def delay_layers(net: nn.Module) -> list[Dcls]:
    return [m for m in net.modules() if isinstance(m, Dcls)]


def sigma_at(epoch: int, start: float, end: float, epochs: int) -> float:
    """The annealed width at the start of `epoch`: exponential from `start` to `end` over `epochs` (DCLS's
    schedule), then `end`."""
    if epochs <= 0 or epoch >= epochs or start <= 0 or end <= 0:
        return end
    return start * (end / start) ** (epoch / epochs)
