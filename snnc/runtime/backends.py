"""The backend table: every way a neuron layer's T steps can run, in one place.

A row names the backend, the device it runs on, what it needs (an availability check whose message says
how to fix it), its kernel loader: `kernels(plan, device, dtype)` -> an object with `forward` and
`backward` (see `ops`), and how `torch.compile` meets it: as an opaque custom operator, or (`traced`, kernels
that are PyTorch operations) traced through, so that Inductor fuses a layer's steps into its own kernels.

The CLI, `set_backend`, the runner's default, `snnc verify` and the benchmarks read this table; nothing else
names a backend. Rows are in order of preference: the default on a device is the first available row for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Callable

from ..compiler.source import SnncError

if TYPE_CHECKING:  # torch is imported where it is used: naming the backends (the CLI's help) needs none
    import torch


@dataclass(frozen=True)
class Backend:
    name: str
    device: str  # "cpu", "cuda" or "any"
    doc: str
    problem: Callable[[], str | None]  # None when usable here, else what is missing and how to get it
    kernels: Callable  # (plan, device, dtype) -> kernels with forward/backward
    host_inputs: bool = False  # CPU runs use the host C++ input kernels (Poisson encoder, fused Poisson+linear)
    traced: bool = False  # torch.compile traces the kernels (PyTorch operations) instead of calling the operator

    def runs_on(self, device: "torch.device | str") -> bool:
        import torch

        return self.device == "any" or torch.device(device).type == self.device


@lru_cache(maxsize=None)
def _cpp_problem() -> str | None:
    from .cc import find_compiler

    try:
        find_compiler()
    except SnncError as exc:
        return f"{exc.diagnostics[0].message} ({exc.diagnostics[0].hint})"
    return None


def _cupy_problem() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device here (torch.cuda.is_available() is False); use 'cpp' or 'torch' on the CPU"
    try:
        import cupy  # noqa: F401
        from cupy_backends.cuda.libs import nvrtc  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - CuPy fails in many ways without a matching CUDA
        return f"CuPy with NVRTC is not importable ({exc}); pip install cupy-cuda13x (or the wheel for your CUDA)"
    return None


def _torch_kernels(plan, device, dtype):
    from .torch_kernels import torch_kernels

    return torch_kernels(plan)


def _host_kernels(plan, device, dtype):
    from .host import host_kernels

    return host_kernels(plan)


def _cuda_kernels(plan, device, dtype):
    import torch

    from .cuda import cuda_kernels

    return cuda_kernels(plan, "float16" if dtype == torch.float16 else "float32", device)


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("cupy", "cuda", "fused CUDA kernels (NVRTC, launched through CuPy on PyTorch's stream)",
            _cupy_problem, _cuda_kernels),
    Backend("cpp", "cpu", "fused host C++ kernels (OpenMP + SIMD), compiled once into a cached library",
            _cpp_problem, _host_kernels, host_inputs=True),
    Backend("torch", "any", "the derived forward and backward as PyTorch operations: needs nothing but torch",
            lambda: None, _torch_kernels, traced=True),
)}


def names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def get(name: str) -> Backend:
    if name not in BACKENDS:
        from ..compiler.source import did_you_mean

        raise SnncError(f"unknown backend '{name}'", hint=did_you_mean(name, BACKENDS) or
                        f"backends: {', '.join(BACKENDS)}")
    return BACKENDS[name]


def problem(name: str, device: "torch.device | str | None" = None) -> str | None:
    """Why `name` cannot run here (on `device`), or None."""
    import torch

    backend = get(name)
    if device is not None and not backend.runs_on(device):
        return f"the '{name}' backend runs on {backend.device.upper()} tensors, not on {torch.device(device)}"
    return backend.problem()


def require(name: str, device: "torch.device | str | None" = None) -> Backend:
    why = problem(name, device)
    if why is not None:
        raise SnncError(f"backend '{name}' cannot run here: {why}",
                        hint=f"choose another backend ({', '.join(available(device))} can run here)")
    return BACKENDS[name]


def available(device: "torch.device | str | None" = None) -> list[str]:
    return [n for n in BACKENDS if problem(n, device) is None]


def default(device: "torch.device | str") -> str:
    """The fastest backend for tensors on `device`: the first available row that runs there."""
    return next(n for n in BACKENDS if problem(n, device) is None)


def device_for(name: str) -> str | None:
    """The device a backend pins a run to ('cpu' for cpp), or None when it runs anywhere."""
    d = get(name).device
    return None if d == "any" else d


def run_device(name: str, backend: str | None, local_rank: int = 0) -> "torch.device":
    """The run's device: as asked, else the one the backend runs on (cpp: the CPU), else a GPU if there is one.
    A backend that cannot run on the device (or here at all) stops the run before any work."""
    import torch

    if name == "auto":
        pinned = device_for(backend) if backend else None
        name = pinned or ("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda":
        name = f"cuda:{local_rank}"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SnncError(f"unknown device '{name}'", hint="use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SnncError(f"device {name} requested but CUDA is not available", hint="use --device cpu")
    if backend:
        require(backend, device)
    return device
