"""The render side of the backends: how each one's kernels are printed from a step plan.

A renderer names its templates (one per artifact), makes their variables and per-kernel printers from the
plan, lists the I/O dtypes it renders for and the artifacts `snnc build` ships (with their file suffixes).
A backend row (`snnc.runtime.backends`) names its renderer beside its device, availability check and kernel
loader, so a backend is one row across render and run; the compiler itself keeps no list of backends, it
renders for the renderers it is given (`render_files`).

Cheap to import (the CLI reads the backend table for its help): the printers and the template environment
load when a renderer first renders.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .source import SnncError

if TYPE_CHECKING:
    from .kernels import KernelSpec
    from .neuron import Plan

__all__ = ["Renderer", "CKernels", "TorchKernels", "CudaLaunch", "CUDA_LAUNCH", "HOST_BLOCK", "HOST", "CUDA", "TORCH", "render_files",
           "source_hash"]


@dataclass(frozen=True)
class Renderer:
    """How one backend's kernels are printed. `render(plan, dtype)` -> {artifact: text}."""

    name: str
    templates: tuple[tuple[str, str], ...]  # (artifact, template file)
    ships: tuple[tuple[str, str], ...] = ()  # (artifact, file suffix) that `snnc build` writes
    dtypes: tuple[str, ...] = ("float32",)  # the I/O dtypes it renders kernels for; a build ships the first's

    def context(self, p: "Plan", dtype: str) -> tuple[dict, dict]:
        """The templates' variables, and the filters (printers) that depend on this plan."""
        raise NotImplementedError

    def render(self, p: "Plan", dtype: str | None = None) -> dict[str, str]:
        from .templating import environment

        dtype = dtype or self.dtypes[0]
        if dtype not in self.dtypes:
            raise SnncError(f"{self.name} kernels are generated for {' or '.join(self.dtypes)}, not {dtype}")
        variables, filters = self.context(p, dtype)
        env = environment(filters)
        return {artifact: env.get_template(t).render(**variables) for artifact, t in self.templates}

    def files(self, p: "Plan", stem: str) -> dict[str, str]:
        """What `snnc build` ships of a plan (the first dtype's kernels): {<stem><suffix>: text}."""
        if not self.ships:
            return {}
        texts = self.render(p)
        return {f"{stem}{suffix}": texts[artifact] for artifact, suffix in self.ships}


@dataclass(frozen=True)
class CudaLaunch:
    """What the CUDA kernels are built for; the runtime launches them accordingly (snnc/runtime/cuda.py)."""

    lanes: int = 4  # neurons per thread: one 16-byte fp32 (8-byte fp16) access per array and step
    chunk: int = 4  # time steps whose loads a thread issues before their math
    threads: int = 256  # the largest block (launch bounds)


@dataclass(frozen=True)
class CKernels(Renderer):
    """Fused C-family kernels over one `KernelSpec` (host C++, CUDA): one per-element step body
    (`templates/_step.j2`), printed by `kernels.KernelPrinter`; the fields say how their signatures differ."""

    io: str = "float"  # the element type of x, spikes and their gradients in the signatures
    threads_argument: bool = False  # an `_nthreads` argument (OpenMP)
    partial_sums: bool = False  # learnable gradients as one double partial sum per launched thread
    constants: tuple[tuple[str, object], ...] = ()  # further template variables

    def spec(self, p: "Plan") -> "KernelSpec":
        from .kernels import spec

        return spec(p, self)

    def context(self, p, dtype):
        from .kernels import filters

        k = self.spec(p)
        return {"k": k, "dtype": dtype, **dict(self.constants)}, filters(k)


@dataclass(frozen=True)
class TorchKernels(Renderer):
    """The plan's forward and derived backward as a Python module of PyTorch operations: one source for every
    dtype (it computes in the input's)."""

    def context(self, p, dtype):
        from .neuron import MEMBRANE

        tensors = {"x", *p.states, *p.learnables, "_spike", "_spike_r", "_sp", "_sg", "_g_spike",
                   *(f"_h_{s}" for s in p.states), *(f"_hp_{s}" for s in p.states), *(f"_g_{s}" for s in p.states),
                   *(t for t, _ in p.backward), *(t for t, _ in p.charge)}
        return dict(
            origin=f"neuron {p.neuron.name}", name=p.neuron.name, config=p.config.key(), scalars=p.scalars,
            learnables=p.learnables, states=p.states, saved=p.saved, charge=p.charge, reset=p.reset,
            membrane=MEMBRANE, out=MEMBRANE if p.config.output == "v" else "_spike", output=p.config.output,
            prev=p.prev, state_index={s: i for i, s in enumerate(p.states)}, needs_x=p.needs_x,
            surrogate=p.surrogate_grad, backward=p.backward, threshold=p.threshold,
            threshold_prev=p.threshold_prev, tensors=sorted(tensors)), {}


CUDA_LAUNCH = CudaLaunch()
HOST_BLOCK = 16384  # at most this many neurons per OpenMP work item: 64 KiB per state array, stays in L2

HOST = CKernels("host", (("source", "host.cpp.j2"),), ships=(("source", ".cpp"),), io="float",
                threads_argument=True, constants=(("block", HOST_BLOCK),))
CUDA = CKernels("cuda", (("forward", "forward.cu.j2"), ("backward", "backward.cu.j2")),
                ships=(("forward", ".fwd.cu"), ("backward", ".bwd.cu")), dtypes=("float32", "float16"),
                io="scalar_t", partial_sums=True, constants=(("c", CUDA_LAUNCH),))
TORCH = TorchKernels("torch", (("source", "torch_kernel.py.j2"),), dtypes=("any",))


def render_files(p: "Plan", renderers, stem: str | None = None) -> dict[str, str]:
    """The shipped kernel files of a plan for each renderer, named <stem><suffix> (default stem: the neuron
    and a hash of the configuration, <Neuron>-<hash8>)."""
    stem = stem or f"{p.neuron.name}-{source_hash(p.config.key())[:8]}"
    return {name: text for r in renderers for name, text in r.files(p, stem).items()}


def source_hash(*texts: str) -> str:
    import hashlib

    return hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
