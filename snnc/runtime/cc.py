"""Compile C++ source into a cached shared library and load it with ctypes.

One cache entry per source hash (plus compiler flags), written atomically so
that concurrent processes (DDP ranks, pytest workers) never load a half-written
library.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from ..compiler.source import SnncError
from .cache import compiling, digest, subdir, trusted

DEFAULT_FLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-shared", "-fPIC", "-std=c++17")


@lru_cache(maxsize=None)
def cpu_identity() -> str:
    """What -march=native compiles for: a library cache shared between machines must not mix CPUs."""
    import platform

    ident = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            lines = [l for l in f.read().split("\n\n")[0].splitlines() if l.startswith(("model name", "flags"))]
        ident += "\n".join(lines)
    except OSError:
        ident += platform.processor()
    return hashlib.sha256(ident.encode()).hexdigest()[:12]


@lru_cache(maxsize=None)
def find_compiler() -> str:
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    raise SnncError(
        "no C++ compiler found for the 'cpp' backend",
        hint="install g++ (Debian: apt-get install g++) or set CXX, or use backend='torch'",
    )


def compile_library(source: str, name: str, flags: tuple[str, ...] = DEFAULT_FLAGS) -> Path:
    """Compile `source` to a shared library (cached by content) and return its path."""
    compiler = find_compiler()
    key = digest(compiler, cpu_identity(), *flags, source)
    target = subdir("cpp") / f"{name}-{key}.so"
    if trusted(target).exists():
        return target
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{name}-") as tmp:
        src = Path(tmp) / f"{name}.cpp"
        src.write_text(source)
        out = Path(tmp) / f"{name}.so"
        with compiling():
            proc = subprocess.run([compiler, *flags, str(src), "-o", str(out)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise SnncError(
                f"C++ compilation of generated kernel '{name}' failed:\n{proc.stderr.strip()[:4000]}",
                hint="this is a bug in snnc's code generator; please report it with your .snn file",
            )
        os.chmod(out, 0o700)  # whatever the umask: an entry others could write would be refused
        os.replace(out, target)
    return target


@lru_cache(maxsize=None)
def load_library(source: str, name: str, flags: tuple[str, ...] = DEFAULT_FLAGS) -> ctypes.CDLL:
    return ctypes.CDLL(str(compile_library(source, name, flags)))
