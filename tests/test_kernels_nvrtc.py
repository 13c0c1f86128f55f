"""Every generated CUDA kernel compiles with NVRTC, fp32 and fp16, for several virtual architectures; and for
sm_90 its machine code is what the kernel design needs: no local memory (spills), registers within budget,
no intra-block communication, vector loads and stores in the consecutive-lanes entry points.

Runs without a GPU (NVRTC only compiles). compute_70 is skipped when NVRTC is 13 or newer, which dropped
Volta; compute_75 stands in as the oldest architecture those versions support. The SASS checks need
cuobjdump (on PATH, in CUDA_HOME/bin or in the triton wheel) and skip without it.

The per-kernel SASS table in docs/cuda.md comes from this file:

    python tests/test_kernels_nvrtc.py            # registers, spills, load/store widths per entry point
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

if __name__ == "__main__":  # run as a script (the SASS table): this checkout's snnc, as the benchmarks do
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from snnc.compiler.assemble import load_module
from snnc.compiler.derive import default_config, plan
from snnc.compiler.renderers import CUDA

from conftest import MODELS

try:
    from snnc.runtime.cuda import (BACKWARD_OPTIONS, ENTRY_POINTS, FORWARD_OPTIONS, cuda_include_dirs, nvrtc_compile,
                                   nvrtc_version, ptxas_report)

    NVRTC = nvrtc_version()
except Exception as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"NVRTC (CuPy) not available: {exc}", allow_module_level=True)

ARCHS = ("compute_70", "compute_75", "compute_80", "compute_90")
LIB = load_module(MODELS / "neurons.snn")[0]


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path_factory, monkeypatch):
    """Compile for real: a private cache directory, so no earlier run's PTX is reused."""
    monkeypatch.setenv("SNNC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "nvrtc-cache"))


def _compile_all(p, arch):
    for dtype in ("float32", "float16"):
        src = CUDA.render(p, dtype)
        for which, opts in (("forward", FORWARD_OPTIONS), ("backward", BACKWARD_OPTIONS)):
            image, kind = nvrtc_compile(src[which], f"test_{p.neuron.name}_{dtype}_{which}", arch, opts)
            assert kind == "ptx" and f"snnc_{which}".encode() in image


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", [n.name for n in LIB.neurons])
def test_library_kernels_compile(name, arch):
    if arch == "compute_70" and NVRTC >= (13, 0):
        pytest.skip(f"NVRTC {NVRTC[0]}.{NVRTC[1]} no longer supports compute_70 (Volta)")
    _compile_all(plan(LIB.neuron(name)), arch)


@pytest.mark.parametrize("name", [n.name for n in LIB.neurons])
def test_reset_variants_compile(name):
    n = LIB.neuron(name)
    for soft in (False, True):
        for detach in (False, True):
            _compile_all(plan(n, dataclasses.replace(default_config(n), soft_reset=soft, detach_reset=detach)),
                         "compute_80")


def test_test_neurons_compile(kernel_test_neurons):
    for n in kernel_test_neurons.neurons:
        _compile_all(plan(n), "compute_80")


def test_fp16_header_is_found():
    assert cuda_include_dirs(), "no directory with cuda_fp16.h (set CUDA_PATH or install nvidia-cuda-runtime)"


# ------------------------------------------------------------------ sm_90 machine code
SASS_ARCH = "sm_90"
# Two 256-thread blocks per SM at least (65536 registers / 512 threads): with four lanes and four steps of
# loads in flight per thread, that keeps enough bytes in flight to saturate HBM. The launch bounds
# (256 threads) alone would allow 255.
REGISTER_BUDGET = 128


def find_cuobjdump() -> str | None:
    """cuobjdump from PATH, CUDA_HOME/CUDA_PATH, /usr/local/cuda, or the triton wheel's copy."""
    found = shutil.which("cuobjdump")
    if found:
        return found
    roots = [os.environ.get(v) for v in ("CUDA_HOME", "CUDA_PATH")] + ["/usr/local/cuda"]
    spec = importlib.util.find_spec("triton")
    candidates = [Path(r) / "bin" / "cuobjdump" for r in roots if r]
    if spec and spec.origin:
        candidates.append(Path(spec.origin).parent / "backends" / "nvidia" / "bin" / "cuobjdump")
    return next((str(c) for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


@lru_cache(maxsize=None)
def machine_code(name: str, dtype: str, which: str) -> tuple[bytes, str]:
    """(cubin, ptxas log) of a library neuron's kernel (default configuration) for SASS_ARCH."""
    p = plan(LIB.neuron(name))
    return ptxas_report(CUDA.render(p, dtype)[which], f"sass_{name}_{dtype}_{which}", SASS_ARCH,
                        FORWARD_OPTIONS if which == "forward" else BACKWARD_OPTIONS)


def ptxas_entries(log: str) -> dict[str, dict]:
    """Per entry point, from `ptxas -v`: registers, stack frame, spill stores and loads, barriers, smem."""
    out = {}
    for block in re.split(r"(?=ptxas info\s+: Compiling entry function)", log)[1:]:
        entry = re.search(r"entry function '(\w+)'", block).group(1)
        frame = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", block)
        used = re.search(r"Used (\d+) registers(?:, used (\d+) barriers)?(?:, (\d+) bytes smem)?", block)
        out[entry] = {"registers": int(used.group(1)), "barriers": int(used.group(2) or 0),
                      "smem": int(used.group(3) or 0), "stack": int(frame.group(1)),
                      "spill_stores": int(frame.group(2)), "spill_loads": int(frame.group(3))}
    return out


# shared memory, barriers, warp shuffles and votes, atomics and reductions (global: ATOMG, REDG)
BLOCK_COMMUNICATION = frozenset({"LDS", "STS", "LDSM", "BAR", "SHFL", "VOTE", "MATCH", "REDUX", "ATOM", "ATOMS",
                                 "ATOMG", "RED", "REDG"})


def _width(op: str) -> int:
    """Bits moved by one LDG/STG from its modifiers (LDG.E.128 -> 128, LDG.E.U16 -> 16, LDG.E -> 32)."""
    m = re.search(r"\.(128|64|U16|S16|U8|S8)\b", op)
    if m is None:
        return 32
    return int(m.group(1)) if m.group(1).isdigit() else int(m.group(1)[1:])


def sass_entries(cubin: bytes, cuobjdump: str) -> dict[str, dict]:
    """Per entry point: global loads and stores by width in bits ({128: 8, 32: 1}), local-memory accesses,
    intra-block communication (shared memory, barriers, shuffles, atomics), instruction count."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "k.cubin"
        path.write_bytes(cubin)
        sass = subprocess.run([cuobjdump, "-sass", str(path)], capture_output=True, text=True, check=True).stdout
    out = {}
    for body in re.split(r"\n\s*Function : ", sass)[1:]:
        entry = body.split("\n", 1)[0].strip()
        ops = re.findall(r"/\*[0-9a-f]{4}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", body)
        info = {"instructions": len(ops), "local": sum(op.split(".")[0] in ("LDL", "STL") for op in ops),
                "block_comm": sorted({op for op in ops if op.split(".")[0] in BLOCK_COMMUNICATION})}
        for kind in ("LDG", "STG"):
            widths: dict[int, int] = {}
            for op in ops:
                if op.split(".")[0] == kind:
                    widths[_width(op)] = widths.get(_width(op), 0) + 1
            info[kind] = dict(sorted(widths.items(), reverse=True))
        out[entry] = info
    return out


SASS_CASES = [(n.name, dtype, which) for n in LIB.neurons for dtype in ("float32", "float16")
              for which in ("forward", "backward")]


@pytest.mark.parametrize("name, dtype, which", SASS_CASES)
def test_no_spills_and_registers_within_budget(name, dtype, which):
    """ptxas -v for sm_90: no stack frame, no spill bytes, at most REGISTER_BUDGET registers, and no barriers
    or shared memory (the CPU emulation test relies on threads that never communicate)."""
    _, log = machine_code(name, dtype, which)
    entries = ptxas_entries(log)
    assert sorted(entries) == sorted(ENTRY_POINTS[which])
    for entry, e in entries.items():
        where = f"{name} {dtype} {entry}"
        assert e["spill_stores"] == 0 and e["spill_loads"] == 0, f"{where} spills: {e}"
        assert e["stack"] == 0, f"{where} has a stack frame (local memory): {e}"
        assert e["registers"] <= REGISTER_BUDGET, f"{where} uses {e['registers']} registers > {REGISTER_BUDGET}"
        assert e["barriers"] == 0 and e["smem"] == 0, f"{where} communicates within a block: {e}"


@pytest.mark.parametrize("name, dtype, which", SASS_CASES)
def test_sass_vector_accesses(name, dtype, which):
    """cuobjdump -sass for sm_90: no local memory and no shared memory, shuffles or atomics anywhere; in the
    consecutive-lanes entry point every per-neuron access is one vector (16 bytes of fp32, 8 of fp16 I/O):
    the only 32-bit loads are the learnables (read once), the only scalar stores none."""
    cuobjdump = find_cuobjdump()
    if cuobjdump is None:
        pytest.skip("cuobjdump not found (PATH, CUDA_HOME/bin, /usr/local/cuda/bin, the triton wheel)")
    cubin, _ = machine_code(name, dtype, which)
    entries = sass_entries(cubin, cuobjdump)
    assert sorted(entries) == sorted(ENTRY_POINTS[which])
    learnables = len(plan(LIB.neuron(name)).learnables)
    for entry, e in entries.items():
        assert e["local"] == 0, f"{name} {dtype} {entry}: {e['local']} local-memory accesses"
        assert not e["block_comm"], f"{name} {dtype} {entry}: {e['block_comm']}"
    vec = entries[ENTRY_POINTS[which][1]]
    narrow_loads = {w: c for w, c in vec["LDG"].items() if w < 64}
    narrow_stores = {w: c for w, c in vec["STG"].items() if w < 64}
    assert set(narrow_loads) <= {32} and narrow_loads.get(32, 0) <= learnables, f"{name} {dtype}: {vec['LDG']}"
    assert not narrow_stores, f"{name} {dtype}: {vec['STG']}"
    assert vec["LDG"].get(128 if dtype == "float32" else 64, 0) >= 4, f"{name} {dtype}: {vec['LDG']}"


def sass_table() -> str:
    """docs/cuda.md's table: per library neuron, dtype and entry point (sm_90, NVRTC)."""
    cuobjdump = find_cuobjdump()
    rows = ["| neuron | dtype | entry point | registers | spills (st/ld B) | LDG widths (bits: count) | "
            "STG widths (bits: count) | SASS instructions |", "|---|---|---|---|---|---|---|---|"]
    fmt = lambda d: ", ".join(f"{w}: {c}" for w, c in d.items()) or "-"  # noqa: E731
    for name, dtype, which in SASS_CASES:
        cubin, log = machine_code(name, dtype, which)
        ptxas = ptxas_entries(log)
        sass = sass_entries(cubin, cuobjdump) if cuobjdump else {}
        for entry in ENTRY_POINTS[which]:
            e, s = ptxas[entry], sass.get(entry, {})
            rows.append(f"| {name} | {dtype} | {entry} | {e['registers']} | {e['spill_stores']}/{e['spill_loads']} | "
                        f"{fmt(s.get('LDG', {}))} | {fmt(s.get('STG', {}))} | {s.get('instructions', '-')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(print(sass_table()))
