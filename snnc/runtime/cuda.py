"""CUDA backend: the generated kernels compiled with NVRTC at first use and launched through CuPy.

* Compilation: NVRTC (CuPy's bindings) to a cubin for the device's architecture
  (PTX for the newest architecture NVRTC knows, when it does not know the
  device's), cached on disk under snnc's cache directory by the hash of source,
  options and architecture. The forward is compiled with `--fmad=false` so it
  rounds like eager PyTorch; the backward may contract and divides within
  2 ulp (`--prec-div=false`).
* Launch: zero-copy (tensor data pointers), on PyTorch's current stream and
  device, one launch for all T steps forward and one for the whole BPTT. Each
  thread owns `CUDA_LAUNCH.lanes` neurons: consecutive ones with vector
  accesses (`snnc_forward_vec`, `snnc_backward_vec`) when N is a multiple of
  the lanes and every array is aligned for them, else lanes a block apart
  (`snnc_forward`, `snnc_backward`; any N, any alignment). Blocks shrink from
  256 to 64 threads when N is too small to give every SM two blocks.
* Learnable gradients: the backward writes one partial sum (double) per
  launched thread; one torch.sum finishes them (deterministic, no atomics).
* Dtypes: float32, and float16 I/O (`__half` loads and stores, fp32 state and
  math). Other floating dtypes run in float32.
* A cubin from CuPy's NVRTC binding lacks its last byte (CuPy strips a
  trailing NUL it expects after PTX); it is padded back, so the cached file is
  a whole ELF that cuobjdump and nvdisasm read.
"""
from __future__ import annotations

import os
import shutil
import threading
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..compiler.neuron import Plan
from ..compiler.renderers import CUDA_LAUNCH, CKernels
from ..compiler.source import SnncError
from .cache import compiling, digest, subdir, trusted
from .files import write_atomic

__all__ = ["CudaKernels", "cuda_kernels", "nvrtc_compile", "compile_to_file", "cuda_include_dirs",
           "nvrtc_version", "ptxas_report", "launch_shape", "FORWARD_OPTIONS", "BACKWARD_OPTIONS", "THREADS",
           "MIN_THREADS", "ENTRY_POINTS"]

THREADS = CUDA_LAUNCH.threads
MIN_THREADS = 64  # the smallest block the runtime launches (two warps)
ENTRY_POINTS = {"forward": ("snnc_forward", "snnc_forward_vec"), "backward": ("snnc_backward", "snnc_backward_vec")}
FORWARD_OPTIONS = ("--fmad=false", "--std=c++17")
# The backward may round differently from eager (its tolerance is 1e-5 relative): contraction, and divisions
# within 2 ulp (--prec-div=false) instead of IEEE ones, whose slow-path branch split each lane's step into
# separate basic blocks (17-24% more SASS instructions, less overlap between the lanes).
BACKWARD_OPTIONS = ("--std=c++17", "--prec-div=false")


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
    target = subdir("cuda") / f"{name}-{digest(source, *opts, str(nvrtc.getVersion()))}.{kind}"
    if trusted(target).exists():
        return target
    with compiling():
        image = _compile(nvrtc, source, name, arch, opts, kind)
    write_atomic(target, image)  # concurrent processes never load a half-written image
    return target


def _compile(nvrtc, source: str, name: str, arch: str, opts: tuple[str, ...], kind: str) -> bytes:
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
    return _whole_elf(image) if kind == "cubin" else image


def _whole_elf(image: bytes) -> bytes:
    """An ELF image padded with zeros to the end of its last header table (CuPy's getCUBIN drops one byte)."""
    if image[:4] != b"\x7fELF" or image[4] != 2 or len(image) < 64:  # ELF64 only (every CUDA cubin)
        return image
    phoff, shoff = int.from_bytes(image[32:40], "little"), int.from_bytes(image[40:48], "little")
    phentsize, phnum = int.from_bytes(image[54:56], "little"), int.from_bytes(image[56:58], "little")
    shentsize, shnum = int.from_bytes(image[58:60], "little"), int.from_bytes(image[60:62], "little")
    end = max(phoff + phentsize * phnum, shoff + shentsize * shnum)
    return image + b"\0" * (end - len(image)) if end > len(image) else image


def ptxas_report(source: str, name: str, arch: str, options: tuple[str, ...] = ()) -> tuple[bytes, str]:
    """(cubin, log) from NVRTC compiling `source` for `arch` (sm_XY) with `ptxas -v`: the log gives each entry
    point's registers, stack frame, spill bytes, barriers and shared memory. Not cached: it is for the tests
    and for the SASS notes in docs/cuda.md."""
    nvrtc = _nvrtc()
    opts = [f"--gpu-architecture={arch}", "--ptxas-options=-v", *options, *(f"-I{d}" for d in cuda_include_dirs())]
    prog = nvrtc.createProgram(source, f"{name}.cu", [], [])
    try:
        nvrtc.compileProgram(prog, opts)
        return _whole_elf(nvrtc.getCUBIN(prog)), nvrtc.getProgramLog(prog).rstrip("\0")
    finally:
        nvrtc.destroyProgram(prog)


def launch_shape(N: int, sms: int) -> tuple[int, int]:
    """(blocks, threads per block) for N neurons, `CUDA_LAUNCH.lanes` per thread: THREADS-thread blocks,
    halved (down to MIN_THREADS) while that leaves fewer than two blocks per SM, so that a small layer
    still spreads over the whole device."""
    groups = -(-N // CUDA_LAUNCH.lanes)
    threads = THREADS
    while threads > MIN_THREADS and -(-groups // threads) < 2 * sms:
        threads //= 2
    return -(-groups // threads), threads


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

    LANE_ROLES = frozenset({"x", "init", "spike", "final", "saved", "gspike", "gfinal", "gx", "ginit"})

    def __init__(self, renderer: CKernels, p: Plan, dtype: str, device: torch.device):
        self.plan, self.dtype, self.device = p, dtype, device
        self.io = torch.float16 if dtype == "float16" else torch.float32
        self.spec = renderer.spec(p)
        self.sources = renderer.render(p, dtype)
        self._functions = self._load()

    def _load(self) -> dict:
        """The entry points by name (ENTRY_POINTS), compiled for this device."""
        import cupy

        arch = _device_arch(self.device)
        name = f"snnc_{self.plan.neuron.name}_{self.dtype}"
        self._modules, functions = [], {}
        with cupy.cuda.Device(self.device.index):
            for which, opts in (("forward", FORWARD_OPTIONS), ("backward", BACKWARD_OPTIONS)):
                path = compile_to_file(self.sources[which], f"{name}_{which}", arch, opts)
                module = cupy.RawModule(path=str(path))
                self._modules.append(module)
                functions.update({f: module.get_function(f) for f in ENTRY_POINTS[which]})
        return functions

    def sm_count(self) -> int:
        return _sm_count(self.device.index)

    def vectorised(self, params, tensors: dict, N: int) -> bool:
        """Whether the consecutive-lanes entry point may run: N a multiple of the lanes, and every array the
        lanes touch aligned for one access of `lanes` elements."""
        lanes = CUDA_LAUNCH.lanes
        if N % lanes:
            return False
        for q in params:
            t = tensors.get((q.role, q.key)) if q.pointer and q.role in self.LANE_ROLES else None
            if t is not None and t.data_ptr() % (lanes * t.element_size()):
                return False
        return True

    @staticmethod
    def arguments(params, tensors: dict, scalars: dict, T: int, N: int) -> list:
        """Call arguments in signature order: pointers as ints (0 for a missing optional array), scalars."""
        out = []
        for q in params:
            if q.role == "scalar":
                out.append(float(scalars[q.key]))
            elif q.role == "T":
                out.append(int(T))
            elif q.role == "N":
                out.append(int(N))
            else:
                t = tensors.get((q.role, q.key))
                out.append(0 if t is None else t.data_ptr())
        return out

    def launch(self, which: str, tensors: dict, scalars: dict, T: int, N: int, shape: tuple[int, int]) -> None:
        params = self.spec.forward_params if which == "forward" else self.spec.backward_params
        name = ENTRY_POINTS[which][int(self.vectorised(params, tensors, N))]
        self._launch(name, params, shape, self.arguments(params, tensors, scalars, T, N))

    def _launch(self, name: str, params, shape: tuple[int, int], args: list) -> None:
        import cupy

        typed = tuple(np.float64(a) if q.role == "scalar" else np.int64(a) if q.role in ("T", "N") else np.uint64(a)
                      for q, a in zip(params, args))
        blocks, threads = shape
        with cupy.cuda.Device(self.device.index):
            with _cupy_stream(torch.cuda.current_stream(self.device), self.device.index):
                self._functions[name]((blocks,), (threads,), typed)

    def _io(self, t):
        return t.to(self.io).contiguous()

    def _check(self, x) -> None:
        _check("x_seq", x)

    def forward(self, x, inits, learn, scalars, need_saved):
        p = self.plan
        self._check(x)
        xk = self._io(x)
        shape = xk.shape[1:]
        i32 = [s.to(torch.float32).expand(shape).contiguous() for s in inits]
        l32 = [t.to(torch.float32).reshape(()).contiguous() for t in learn]
        T = xk.shape[0]
        N = xk[0].numel() if T else 0
        out = torch.empty_like(xk)
        finals = [torch.empty_like(s) for s in i32]
        saved = [torch.empty(xk.shape, dtype=torch.float32, device=xk.device) for _ in p.saved] if need_saved else []
        tensors = {("x", None): xk, ("spike", None): out,
                   **{("init", s): t for s, t in zip(p.states, i32)},
                   **{("final", s): t for s, t in zip(p.states, finals)},
                   **{("saved", s): t for s, t in zip(p.saved, saved)},
                   **{("learnable", l): t for l, t in zip(p.learnables, l32)}}
        if T > 0 and N > 0:
            self.launch("forward", tensors, dict(zip(p.scalars, scalars)), T, N, launch_shape(N, self.sm_count()))
        else:
            finals = [s.clone() for s in i32]
        return out.to(x.dtype), [f.to(s.dtype) for f, s in zip(finals, inits)], saved

    def backward(self, gout, gfinals, saved, x, inits, learn, scalars):
        p = self.plan
        xk = self._io(x)
        shape = xk.shape[1:]
        T = xk.shape[0]
        N = xk[0].numel() if T else 0
        dev = xk.device
        gx = torch.empty_like(xk)
        ginits = [torch.empty(shape, dtype=torch.float32, device=dev) for _ in p.states]
        grid = launch_shape(N, self.sm_count()) if T > 0 and N > 0 else (0, 0)
        # one partial sum per launched thread and learnable; every thread writes its slot
        partial = torch.empty((len(p.learnables), grid[0] * grid[1]), dtype=torch.float64, device=dev)
        tensors = {("gspike", None): self._io(gout), ("x", None): xk, ("gx", None): gx,
                   **{("gfinal", s): g.to(torch.float32).contiguous() for s, g in zip(p.states, gfinals)},
                   **{("saved", s): t for s, t in zip(p.saved, saved)},
                   # only the states whose previous value the backward rebuilds read their initial one
                   **{("init", s): t.to(torch.float32).expand(shape).contiguous() for s, t in zip(p.states, inits)
                      if s in self.spec.prev_states},
                   **{("learnable", l): t.to(torch.float32).reshape(()).contiguous() for l, t in zip(p.learnables, learn)},
                   **{("ginit", s): g for s, g in zip(p.states, ginits)},
                   **{("glearn", l): partial[i] for i, l in enumerate(p.learnables)}}
        if T > 0 and N > 0:
            self.launch("backward", tensors, dict(zip(p.scalars, scalars)), T, N, grid)
        else:
            ginits = [g.to(torch.float32).expand(shape).clone() for g in gfinals]
        glearn = list(partial.sum(dim=1).to(torch.float32).unbind(0)) if p.learnables else []
        return gx.to(x.dtype), [g.to(s.dtype) for g, s in zip(ginits, inits)], glearn


@lru_cache(maxsize=None)
def _sm_count(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


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


def cuda_kernels(renderer: CKernels, p: Plan, dtype: torch.dtype, device: torch.device) -> CudaKernels:
    """A plan's kernels for tensors of `dtype` (float16 I/O for float16, float32 I/O for every other dtype)."""
    io = "float16" if dtype == torch.float16 else "float32"
    key = (id(p), io, device.index)
    hit = _KERNELS.get(key)
    if hit is None or hit.plan is not p:
        with _LOCK:
            hit = _KERNELS[key] = CudaKernels(renderer, p, io, device)
    return hit


def _check(name: str, t) -> None:
    if t.device.type != "cuda":
        raise SnncError(f"the 'cupy' backend runs on CUDA devices, but {name} is on {t.device}",
                        hint="move the model and inputs to the GPU (.cuda()), or use backend='cpp' on the CPU")
    if not t.is_floating_point():
        raise SnncError(f"the 'cupy' backend needs floating-point tensors; {name} has dtype {t.dtype}")
