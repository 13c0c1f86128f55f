"""snnc's on-disk cache: generated packages and compiled kernels, keyed by everything that shapes them.

* The folder (SNNC_CACHE_DIR, else $XDG_CACHE_HOME/snnc, else ~/.cache/snnc) must be private to the user:
  code found there is imported and executed, so a folder another user can write to is refused. So is each
  subfolder (`packages/`, `cpp/`, `cuda/`, `plans/`, `data/`) and each entry before it is imported, loaded
  or read (`trusted`): a symbolic link, or a file or folder owned by another user or writable by others.
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
    problem = _untrusted(info)
    if problem:
        raise SnncError(f"refusing to use the cache folder {path}: {problem}, and snnc runs the code it finds there",
                        hint=f"chmod go-w {path} (if it is yours), or set SNNC_CACHE_DIR to a private folder")
    return path


def subdir(name: str) -> Path:
    """A subfolder of the cache (created private), refused as the entries in it are (see `trusted`)."""
    path = cache_dir() / name
    try:
        path.mkdir(mode=0o700, exist_ok=True)
    except FileExistsError:  # a file or a link to one: refused below
        pass
    except OSError as exc:
        raise SnncError(f"cannot create the cache folder {path}: {exc.strerror or exc}",
                        hint="set SNNC_CACHE_DIR to a writable folder of your own") from None
    return trusted(path)


def trusted(path: Path) -> Path:
    """`path`, an entry of the cache about to be imported, loaded or read (a folder: with everything in it),
    once none of it is a symbolic link, belongs to another user or can be written by others; else an error.
    Files inside a folder that no other user may enter are only held to the first two."""
    try:
        problem = _untrusted(path.lstat())
        top = path.lstat().st_mode
        if not problem and stat.S_ISDIR(top):
            sealed = not top & 0o077
            for inner in path.rglob("*"):
                problem = _untrusted(inner.lstat(), modes=not sealed)
                if problem:
                    path = inner
                    break
    except FileNotFoundError:
        return path  # not there yet: written by snnc (privately) before it is used
    except OSError as exc:
        problem = f"it cannot be examined ({exc.strerror or exc})"
    if problem:
        raise SnncError(f"refusing to use the cache entry {path}: {problem}, and snnc runs or reads what it finds "
                        "in its cache", hint=f"remove it (rm -r {path}) and snnc writes it again, or set "
                                             "SNNC_CACHE_DIR to a private folder")
    return path


def _untrusted(info: os.stat_result, modes: bool = True) -> str | None:
    """Why a file or folder with this (l)stat cannot be trusted, or None."""
    if stat.S_ISLNK(info.st_mode):
        return "it is a symbolic link"
    if not hasattr(os, "getuid"):
        return None
    if info.st_uid != os.getuid():
        return "it belongs to another user"
    if modes and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return "other users can write to it"
    return None


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
