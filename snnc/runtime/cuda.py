"""CUDA backend: the generated kernels compiled with NVRTC at first use and launched through CuPy.

* Compilation: NVRTC (CuPy's bindings) to a cubin for the device's architecture
  (PTX for the newest architecture NVRTC knows, when it does not know the
  device's), cached on disk under snnc's cache directory by the hash of source,
  options and architecture. The forward is compiled with `--fmad=false` so it
  rounds like eager PyTorch; the backward may contract.
* Launch: zero-copy (tensor data pointers), on PyTorch's current stream and
  device, one launch for all T steps forward and one for the whole BPTT.
* Dtypes: float32, and float16 I/O (`__half` loads and stores, fp32 state and
  math). Other floating dtypes run in float32.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..compiler import kernels
from ..compiler.derive import Plan
from ..compiler.source import SnncError
from .cc import cache_dir
from .fused import cached, forward_tensors, unpack_saved

__all__ = ["CudaKernels", "cuda_kernels", "multi_step", "nvrtc_compile", "compile_to_file", "cuda_include_dirs",
           "nvrtc_version", "FORWARD_OPTIONS", "BACKWARD_OPTIONS", "THREADS"]

THREADS = 256
FORWARD_OPTIONS = ("--fmad=false", "--std=c++17")
BACKWARD_OPTIONS = ("--std=c++17",)


# ------------------------------------------------------------------ NVRTC
def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc
    except Exception as exc:
        raise SnncError(f"the 'cupy' backend needs CuPy with NVRTC, which is not importable here ({exc})",
                        hint="pip install cupy-cuda13x (or the wheel matching your CUDA), or use backend='cpp'")
    return nvrtc


def nvrtc_version() -> tuple[int, int]:
    return tuple(_nvrtc().getVersion())


@lru_cache(maxsize=None)
def cuda_include_dirs() -> tuple[str, ...]:
    """Directories holding cuda_fp16.h: CUDA_PATH/CUDA_HOME, the nvidia pip packages, CuPy's, nvcc's."""
    candidates: list[Path] = []
    for var in ("CUDA_PATH", "CUDA_HOME"):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]) / "include")
    try:
        import nvidia  # namespace package of the pip CUDA wheels

        for root in getattr(nvidia, "__path__", []):
            root = Path(root)
            candidates += [root / "cuda_runtime" / "include", root / "cuda_nvrtc" / "include",
                           *sorted(root.glob("cu*/include"))]
    except ImportError:
        pass
    try:
        import cupy

        base = Path(cupy.__file__).parent / "_core" / "include"
        candidates += sorted(base.glob("cupy/_cuda/cuda-*"), reverse=True)
    except Exception:
        pass
    nvcc = shutil.which("nvcc")
    if nvcc:
        candidates.append(Path(nvcc).resolve().parent.parent / "include")
    candidates.append(Path("/usr/local/cuda/include"))
    out = []
    for c in candidates:
        if (c / "cuda_fp16.h").is_file() and str(c) not in out:
            out.append(str(c))
    return tuple(out[:1])


def nvrtc_compile(source: str, name: str, arch: str, options: tuple[str, ...] = ()) -> tuple[bytes, str]:
    """Compile CUDA C with NVRTC for `arch` (compute_XY -> PTX, sm_XY -> cubin); returns (image, "ptx"|"cubin")."""
    path = compile_to_file(source, name, arch, options)
    return path.read_bytes(), path.suffix[1:]


def compile_to_file(source: str, name: str, arch: str, options: tuple[str, ...] = ()) -> Path:
    """NVRTC compile, cached on disk by the hash of source, options, architecture and NVRTC version."""
    nvrtc = _nvrtc()
    opts = (f"--gpu-architecture={arch}", *options, *(f"-I{d}" for d in cuda_include_dirs()))
    kind = "cubin" if arch.startswith("sm_") else "ptx"
    key = hashlib.sha256("\0".join((source, *opts, str(nvrtc.getVersion()))).encode()).hexdigest()[:16]
    target = cache_dir() / "cuda" / f"{name}-{key}.{kind}"
    if target.exists():
        return target
    prog = nvrtc.createProgram(source, f"{name}.cu", [], [])
    try:
        try:
            nvrtc.compileProgram(prog, list(opts))
        except Exception as exc:
            log = ""
            try:
                log = nvrtc.getProgramLog(prog)
            except Exception:
                pass
            raise SnncError(f"NVRTC compilation of generated kernel '{name}' for {arch} failed: {exc}\n"
                            f"{log.strip()[:4000]}",
                            hint="this is a bug in snnc's code generator (or an NVRTC too old for the "
                                 "architecture); please report it with your .snn file") from None
        image = nvrtc.getCUBIN(prog) if kind == "cubin" else nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)
    if isinstance(image, str):
        image = image.encode()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=f".{kind}.tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(image)
    os.replace(tmp, target)  # atomic: concurrent processes never load a half-written image
    return target


def _device_arch(device: torch.device) -> str:
    major, minor = torch.cuda.get_device_capability(device)
    wanted = major * 10 + minor
    try:
        supported = [int(a) for a in _nvrtc().getSupportedArchs()]
    except Exception:
        supported = [wanted]
    if wanted in supported:
        return f"sm_{wanted}"  # a cubin: no JIT at load
    older = [a for a in supported if a <= wanted]
    return f"compute_{max(older) if older else wanted}"  # PTX, which the driver JIT-compiles for the device


# ------------------------------------------------------------------ kernels
class CudaKernels:
    """One plan's forward and backward for one I/O dtype on one device."""

    def __init__(self, p: Plan, dtype: str, device: torch.device):
        import cupy

        self.plan, self.dtype, self.device = p, dtype, device
        self.spec = kernels.spec(p, host=False)
        self.sources = kernels.render_cuda(p, dtype)
        arch = _device_arch(device)
        name = f"snnc_{p.neuron.name}_{dtype}"
        self._modules = []
        with cupy.cuda.Device(device.index):
            for which, opts in (("forward", FORWARD_OPTIONS), ("backward", BACKWARD_OPTIONS)):
                path = compile_to_file(self.sources[which], f"{name}_{which}", arch, opts)
                module = cupy.RawModule(path=str(path))
                self._modules.append(module)
                setattr(self, which, module.get_function(f"snnc_{which}"))

    def launch(self, fn, params, tensors: dict, scalars: dict, T: int, N: int) -> None:
        import cupy

        args = []
        for q in params:
            if q.role == "scalar":
                args.append(np.float64(scalars[q.key]))
            elif q.role == "T":
                args.append(np.int64(T))
            elif q.role == "N":
                args.append(np.int64(N))
            else:
                t = tensors.get((q.role, q.key))
                args.append(np.uint64(0 if t is None else t.data_ptr()))
        blocks = (N + THREADS - 1) // THREADS
        with cupy.cuda.Device(self.device.index):
            with _cupy_stream(torch.cuda.current_stream(self.device), self.device.index):
                fn((blocks,), (THREADS,), tuple(args))


def _cupy_stream(stream: torch.cuda.Stream, device_index: int):
    """PyTorch's stream as a CuPy stream (the CUDA stream protocol; ExternalStream on older CuPy)."""
    import cupy

    if hasattr(cupy.cuda.Stream, "from_external") and hasattr(stream, "__cuda_stream__"):
        return cupy.cuda.Stream.from_external(stream)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return cupy.cuda.ExternalStream(stream.cuda_stream, device_index)


_KERNELS: dict = {}
_LOCK = threading.Lock()


def cuda_kernels(p: Plan, dtype: str, device: torch.device) -> CudaKernels:
    key = (id(p.neuron), p.config, dtype, device.index)
    return cached(_KERNELS, _LOCK, key, p.neuron, lambda: CudaKernels(p, dtype, device))


def _forward(ctx, k: CudaKernels, scalars: dict, x, rest, need_grad: bool):
    p = k.plan
    S = len(p.states)
    inits, learn = rest[:S], rest[S:]
    T = x.shape[0]
    N = x[0].numel() if T else 0
    spike = torch.empty_like(x)
    finals = tuple(torch.empty_like(s) for s in inits)
    saved = {s: torch.empty(x.shape, dtype=torch.float32, device=x.device) for s in p.saved} if need_grad else {}
    tensors = forward_tensors(p, x, spike, inits, finals, saved, learn)
    if T > 0 and N > 0:
        k.launch(k.forward, k.spec.forward_params, tensors, scalars, T, N)
    else:
        finals = tuple(s.clone() for s in inits)
    if ctx is not None:
        ctx.k, ctx.scalars, ctx.T, ctx.N = k, scalars, T, N
        ctx.save_for_backward(*saved.values(), x if p.needs_x else None,
                              *(t if s in k.spec.prev_states else None for s, t in zip(p.states, inits)), *learn)
        ctx.x_dtype = x.dtype
    return (spike, *finals)


class _CudaFunction(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, k: CudaKernels, scalars: dict, x, *rest):
        return _forward(ctx, k, scalars, x, rest, True)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, gspike, *gfinals):
        k: CudaKernels = ctx.k
        p = k.plan
        saved, x, inits, learn = unpack_saved(p, ctx.saved_tensors)
        T, N = ctx.T, ctx.N
        like = next(iter(saved.values()))
        dev = like.device
        gspike = (torch.zeros(like.shape, dtype=ctx.x_dtype, device=dev) if gspike is None
                  else gspike.to(ctx.x_dtype).contiguous())
        gfinals = [None if g is None else g.to(torch.float32).contiguous() for g in gfinals]
        gx = torch.empty(like.shape, dtype=ctx.x_dtype, device=dev)
        shape = like.shape[1:]
        ginits = tuple(torch.empty(shape, dtype=torch.float32, device=dev) for _ in p.states)
        glearn = tuple(torch.zeros((), dtype=torch.float32, device=dev) for _ in p.learnables)
        tensors = {("gspike", None): gspike, ("x", None): x, ("gx", None): gx,
                   **{("gfinal", s): g for s, g in zip(p.states, gfinals)},
                   **{("saved", s): t for s, t in saved.items()},
                   **{("init", s): t for s, t in zip(p.states, inits) if t is not None},
                   **{("learnable", l): t for l, t in zip(p.learnables, learn)},
                   **{("ginit", s): g for s, g in zip(p.states, ginits)},
                   **{("glearn", l): g for l, g in zip(p.learnables, glearn)}}
        if T > 0 and N > 0:
            k.launch(k.backward, k.spec.backward_params, tensors, ctx.scalars, T, N)
        else:
            ginits = tuple(torch.zeros(shape, device=dev) if g is None else g for g in gfinals)
        return (None, None, gx, *ginits, *glearn)


def _check(name: str, t, device=None) -> None:
    if not isinstance(t, torch.Tensor):
        raise SnncError(f"the 'cupy' backend expects tensors; {name} is {type(t).__name__}")
    if t.device.type != "cuda":
        raise SnncError(f"the 'cupy' backend runs on CUDA devices, but {name} is on {t.device}",
                        hint="move the model and inputs to the GPU (.cuda()), or use backend='cpp' on the CPU")
    if device is not None and t.device != device:
        raise SnncError(f"{name} is on {t.device} but x_seq is on {device}")
    if not t.is_floating_point():
        raise SnncError(f"the 'cupy' backend needs floating-point tensors; {name} has dtype {t.dtype}")


def multi_step(p: Plan, x_seq: torch.Tensor, states: tuple, scalars: dict, learnables: tuple = ()):
    """Fused forward over x_seq [T, ...] on a CUDA device, differentiable; returns (spike_seq, final_states).

    float16 inputs run the fp16 kernels (fp32 state and math); other dtypes run in float32. spike_seq has
    x_seq's dtype, the final states are fp32."""
    from .fused import scalar_args

    if not torch.cuda.is_available():
        raise SnncError("the 'cupy' backend needs a CUDA device, and torch.cuda.is_available() is False here",
                        hint="use backend='cpp' (CPU) or backend='torch'")
    _nvrtc()
    try:
        import cupy  # noqa: F401
    except Exception as exc:
        raise SnncError(f"the 'cupy' backend needs CuPy, which is not importable here ({exc})",
                        hint="pip install cupy-cuda13x, or use backend='cpp'") from None
    _check("x_seq", x_seq)
    if x_seq.dim() < 1:
        raise SnncError("x_seq must have a time dimension first: [T, ...]")
    for s, t in zip(p.states, states):
        _check(f"state '{s}'", t, x_seq.device)
    for l, t in zip(p.learnables, learnables):
        _check(f"learnable '{l}'", t, x_seq.device)
    dtype = "float16" if x_seq.dtype == torch.float16 else "float32"
    k = cuda_kernels(p, dtype, x_seq.device)
    values = dict(zip(p.scalars, scalar_args(p, scalars)))
    x = x_seq.to(torch.float16 if dtype == "float16" else torch.float32).contiguous()
    shape = x.shape[1:]
    inits = tuple(s.to(torch.float32).expand(shape).contiguous() for s in states)
    learn = tuple(t.to(torch.float32).reshape(()).contiguous() for t in learnables)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, *inits, *learn)):
        spike, *finals = _CudaFunction.apply(k, values, x, *inits, *learn)
    else:  # inference: nothing to save
        spike, *finals = _forward(None, k, values, x, inits + learn, False)
    return spike.to(x_seq.dtype), tuple(finals)
