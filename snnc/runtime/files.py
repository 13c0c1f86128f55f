"""Writing a file or a folder atomically: to a temporary name beside the target, then renamed into place.

Every write snnc makes that another process may read while it happens goes through `write_atomic`: cache
entries (generated packages, compiled kernels, plans, decoded datasets), `snnc build`'s package, and a run's
checkpoints, metrics and plots. A reader sees the old target or the new one, never a part of either.
Temporaries are named `.<target>.<random>.tmp`, so the folder's owner can find what a killed writer left.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def write_atomic(target: str | os.PathLike, content: bytes | str | dict[str, str] | Callable[[Path], None], *,
                 replace: bool = True,
                 mode: int | None = None, durable: bool = False,
                 on_rename: Callable[[str], None] | None = None) -> bool:
    """Write `content` to `target`: bytes or text make a file, {relative name: text} a folder of files, and a
    function of a folder fills the (temporary) folder itself (large binary entries, such as binned frames).

    `replace`: an existing target is replaced; else it is left as it is and nothing is written (False is
    returned): a cache entry, whose key fixes its content (of two processes writing one folder, the first
    rename wins). `mode`: the permissions of the new file or folder
    (default: private, 0600 / 0700, and so is a parent folder it creates). `durable`: the data and the folder's
    entry reach the disk before this returns (a checkpoint survives a crash). `on_rename(when)` is called
    "before" and "after" the rename (the fault injection of the resume tests)."""
    target = Path(target)
    if not replace and target.exists():
        return False
    target.parent.mkdir(mode=0o700 if mode is None else 0o777, parents=True, exist_ok=True)
    folder = isinstance(content, dict) or callable(content)
    prefix = f".{target.name}."
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix, suffix=".tmp") if folder else
               _temp_file(target.parent, prefix))
    try:
        if mode is not None:
            os.chmod(tmp, mode)
        if callable(content):
            content(tmp)
        elif folder:
            for name, text in content.items():
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name).write_text(text)
        else:
            _write_file(tmp, content.encode("utf-8") if isinstance(content, str) else content, durable)
        if on_rename:
            on_rename("before")
        if not _rename(tmp, target, folder, replace):
            _remove(tmp)
            return False
    except BaseException:
        _remove(tmp)
        raise
    if durable:
        _fsync_dir(target.parent)
    if on_rename:
        on_rename("after")
    return True


def _temp_file(folder: Path, prefix: str) -> str:
    fd, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
    os.close(fd)
    return name


def _write_file(path: Path, data: bytes, durable: bool) -> None:
    with open(path, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())


def _rename(tmp: Path, target: Path, folder: bool, replace: bool) -> bool:
    """Put `tmp` at `target`; False where `replace` is off and another writer got there first."""
    if not folder:
        os.replace(tmp, target)
        return True
    if replace and target.exists():
        shutil.rmtree(target)
    try:
        os.rename(tmp, target)  # a folder is never renamed over another
    except OSError:
        if replace or not target.exists():
            raise
        return False
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
