"""snnc's on-disk cache: generated packages and compiled kernels, keyed by everything that shapes them.

* The folder (SNNC_CACHE_DIR, else $XDG_CACHE_HOME/snnc, else ~/.cache/snnc) must be private to the user:
  code found there is imported and executed, so a folder another user can write to is refused.
* Keys hash each part with its length (no two different lists of parts share a key, whatever bytes they
  hold) and include a hash of snnc's own generator sources: an upgrade never serves old generated code.
* Entries are written to a temporary name and renamed into place (`files.write_atomic`); an existing entry
  is never deleted or replaced (its key fixes its content), so a process importing it is never left without
  it. Temporary entries older than an hour (from a killed writer) are removed.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import time
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from ..compiler.source import SnncError
from .files import write_atomic

STALE_SECONDS = 3600
_PACKAGE = Path(__file__).resolve().parents[1]


def cache_dir() -> Path:
    root = os.environ.get("SNNC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "snnc")
    path = Path(root)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError as exc:
        raise SnncError(f"cannot create snnc's cache folder {path}: {exc.strerror or exc}",
                        hint="set SNNC_CACHE_DIR to a writable folder of your own") from None
    if hasattr(os, "getuid") and (info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
        raise SnncError(f"refusing to use the cache folder {path}: "
                        + ("it belongs to another user" if info.st_uid != os.getuid() else
                           "other users can write to it") + ", and snnc runs the code it finds there",
                        hint=f"chmod go-w {path} (if it is yours), or set SNNC_CACHE_DIR to a private folder")
    return path


def subdir(name: str) -> Path:
    path = cache_dir() / name
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def digest(*parts: str | bytes) -> str:
    """A key for a list of parts: each part hashed with its length, so that no two lists collide."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()[:20]


@lru_cache(maxsize=None)
def generator_hash() -> str:
    """A hash of every snnc source that shapes generated code: the compiler, the runtime generated code
    imports, the templates and the grammar (part of every cache key)."""
    from ..compiler.resources import resource_dir

    files = sorted((*(_PACKAGE / "compiler").glob("*.py"), _PACKAGE / "runtime" / "support.py",
                    _PACKAGE / "runtime" / "delays.py",
                    *resource_dir("templates").iterdir(), *resource_dir("grammars").iterdir()))
    return digest(*(p.read_bytes() for p in files if p.is_file()))


def write_dir(files: dict[str, str], target: Path) -> None:
    """Create the cache entry `target`, a folder holding `files`; an existing entry is left as it is (another
    process may have just put the same one there). Clears what killed writers left beside it first."""
    if target.exists():
        return
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _remove_stale(target.parent)
    write_atomic(target, files, replace=False)


def usual_mode(folder: bool = False) -> int:
    """The mode the user's umask gives a new file (or folder): for outputs written through a temporary,
    which mkstemp/mkdtemp create private (0600/0700). Cache entries stay private."""
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return (0o777 if folder else 0o666) & ~mask


_COMPILE_SECONDS = [0.0]


@contextmanager
def compiling():
    """Time a compilation into the cache (C++ or NVRTC): `compile_seconds()` reports it apart from run time."""
    start = time.perf_counter()
    try:
        yield
    finally:
        _COMPILE_SECONDS[0] += time.perf_counter() - start


def compile_seconds() -> float:
    """Seconds this process has spent compiling kernels (zero when every kernel came from the cache)."""
    return _COMPILE_SECONDS[0]


def _remove_stale(folder: Path) -> None:
    """Temporary entries (".<name>-...") a killed writer left behind, once they are an hour old."""
    now = time.time()
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        try:
            if entry.name.startswith(".") and now - entry.lstat().st_mtime > STALE_SECONDS:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        except OSError:
            pass
