"""The backend table: every way a neuron layer's T steps can run, in one place, across render and run.

A row names the backend, the device it runs on, what it needs (an availability check whose message says
how to fix it), its renderer (`snnc.compiler.renderers`: the templates and printers its kernels are
printed with, and the files `snnc build` ships of them), its kernel loader: `loader(renderer, plan, device,
dtype)` -> an object with `forward` and `backward` (see `ops`), the precision its kernels compute and save in,
whether CPU runs use the host input kernels, and how `torch.compile` meets it: as an opaque custom operator,
or (`traced`, kernels that are PyTorch operations) traced through, so that Inductor fuses a layer's steps into
its own kernels.

A new backend is a row here, its renderer (a template and the printer it prints with) and its loader
module. The CLI, `set_backend` (through `ops.install`), the runner's default, `snnc build`, `snnc verify`, the
tests and the benchmarks read this table; nothing else names a backend. Rows are in order of preference: the
default on a device is the first available row for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Callable

from ..compiler.renderers import CUDA, HOST, TORCH, Renderer
from ..compiler.source import SnncError

if TYPE_CHECKING:  # torch is imported where it is used: naming the backends (the CLI's help) needs none
    import torch


@dataclass(frozen=True)
class Backend:
    name: str
    device: str  # "cpu", "cuda" or "any"
    doc: str
    problem: Callable[[], str | None]  # None when usable here, else what is missing and how to get it
    renderer: Renderer  # how its kernels are printed from a plan
    loader: Callable  # (renderer, plan, device, dtype) -> kernels with forward/backward
    precision: str = "float32"  # what the kernels compute and save in: "float32", or "input" (the input's dtype)
    host_inputs: bool = False  # CPU runs use the host C++ input kernels (Poisson encoder, fused Poisson+linear)
    traced: bool = False  # torch.compile traces the kernels (PyTorch operations) instead of calling the operator

    def kernels(self, plan, device, dtype):
        """The kernels of a plan on this backend, for tensors of `dtype` on `device`."""
        return self.loader(self.renderer, plan, device, dtype)

    def state_dtype(self, dtype: "torch.dtype") -> "torch.dtype":
        """The dtype its kernels keep states and saved values in, for inputs of `dtype`."""
        import torch

        return dtype if self.precision == "input" else torch.float32

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


def _torch_kernels(renderer, plan, device, dtype):
    from .torch_kernels import torch_kernels

    return torch_kernels(renderer, plan)


def _host_kernels(renderer, plan, device, dtype):
    from .host import host_kernels

    return host_kernels(renderer, plan)


def _cuda_kernels(renderer, plan, device, dtype):
    from .cuda import cuda_kernels

    return cuda_kernels(renderer, plan, dtype, device)


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("cupy", "cuda", "fused CUDA kernels (NVRTC, launched through CuPy on PyTorch's stream)",
            _cupy_problem, CUDA, _cuda_kernels),
    Backend("cpp", "cpu", "fused host C++ kernels (OpenMP + SIMD), compiled once into a cached library",
            _cpp_problem, HOST, _host_kernels, host_inputs=True),
    Backend("torch", "any", "the derived forward and backward as PyTorch operations: needs nothing but torch",
            lambda: None, TORCH, _torch_kernels, precision="input", traced=True),
)}


def names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def renderers() -> tuple[Renderer, ...]:
    """Every row's renderer, once each, in the table's order (what `snnc build` renders kernels with)."""
    return tuple(dict.fromkeys(b.renderer for b in BACKENDS.values()))


def device_types() -> tuple[str, ...]:
    """The device types the rows pin (cpu, cuda), in the table's order."""
    return tuple(dict.fromkeys(b.device for b in BACKENDS.values() if b.device != "any"))


def on(device: "torch.device | str") -> list[str]:
    """The backends whose kernels run on tensors of `device`, available here or not."""
    return [n for n, b in BACKENDS.items() if b.runs_on(device)]


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
