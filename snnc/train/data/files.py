"""What every reader shares: finding the dataset's folder, checksums, file identity, and the messages.

A dataset's files sit in one of the layouts its row names (the folder itself, or tonic's, torchvision's or
SpikingJelly's sub-folder). A `SHA256SUMS` (or `MD5SUMS`) file beside them, where there is one, is checked for
the files it lists — a copy a user re-packed is never refused by a checksum snnc holds.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ...compiler.datasets import Dataset
from ...compiler.source import SnncError

ENV_VAR = "SNNC_DATA_DIR"


def resolve_dir(data_dir, row: Dataset) -> Path:
    chosen = data_dir if data_dir is not None else os.environ.get(ENV_VAR)
    if not chosen:
        raise SnncError(f"no data folder given for {row.title}",
                        hint=f"pass --data-dir DIR or set {ENV_VAR}=DIR, where DIR holds {row.files} "
                             f"(from {row.source})")
    return Path(chosen).expanduser()


def find(root: Path, row: Dataset, holds) -> Path | None:
    """The first of the row's layouts under `root` for which `holds(folder)` is true."""
    for layout in row.layouts:
        folder = root / layout if layout else root
        try:
            if folder.is_dir() and holds(folder):
                return folder
        except OSError:
            continue
    return None


def missing(root: Path, row: Dataset, what: str | None = None, downloadable: bool = False) -> SnncError:
    places = ", ".join(str(root / l) if l else str(root) for l in row.layouts)
    fetch = " (or add --download to the command to fetch them there)" if downloadable else ""
    return SnncError(f"{row.title} data not found in {root}" + (f": {what}" if what else ""),
                     hint=f"expected {row.files} in one of {places}; they come from {row.source}. Point --data-dir "
                          f"or {ENV_VAR} at the folder that holds them{fetch}")


def corrupt(path: Path, why: str, row: Dataset | None = None) -> SnncError:
    return SnncError(f"data file {path} is corrupt: {why}",
                     hint="replace it with a fresh copy of the original file" +
                          (f" ({row.source})" if row is not None else ""))


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SnncError(f"cannot read {path}: {exc.strerror or exc}") from None


# ------------------------------------------------------------------ checksums
def sums(folder: Path) -> dict[str, tuple[str, str]]:
    """{file name or relative path: (algorithm, hex digest)} from SHA256SUMS / MD5SUMS in `folder`."""
    found: dict[str, tuple[str, str]] = {}
    for name, algorithm in (("MD5SUMS", "md5"), ("SHA256SUMS", "sha256")):
        path = folder / name
        if not path.is_file():
            continue
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 2:
                found[parts[1].lstrip("*")] = (algorithm, parts[0].lower())
    return found


def verify(path: Path, folder: Path, listed: dict[str, tuple[str, str]]) -> None:
    """Check `path` against the checksum file's entry for it, if it has one."""
    if not listed:
        return
    try:
        key = path.relative_to(folder).as_posix()
    except ValueError:
        key = path.name
    entry = listed.get(key) or listed.get(path.name)
    if entry is None:
        return
    algorithm, expected = entry
    digest = hashlib.new(algorithm, read_bytes(path), usedforsecurity=False).hexdigest()
    if digest != expected:
        checksums = "SHA256SUMS" if algorithm == "sha256" else "MD5SUMS"
        raise corrupt(path, f"its {algorithm.upper()} {digest[:12]}... does not match {checksums} ({expected[:12]}...)")


# ------------------------------------------------------------------ identity (cache keys)
def identity(paths: list[Path]) -> list[str]:
    """What a cache entry built from these files depends on: path, size, modification time and inode of each."""
    out = []
    for path in paths:
        st = path.stat()
        out.append(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
    return out
