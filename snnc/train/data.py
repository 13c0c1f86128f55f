"""MNIST and Fashion-MNIST from a local folder, held in memory as uint8 tensors.

A folder holds the four IDX files (optionally gzipped) either directly or in
torchvision's layout (`<root>/MNIST/raw/...`, `<root>/FashionMNIST/raw/...`).
The folder comes from `data_dir` or the SNNC_DATA_DIR environment variable.
Nothing is downloaded unless `download=True`.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..compiler.source import SnncError
from .recipe import DATASETS, NAMES

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)  # both datasets: one channel of 28 x 28 pixels
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801
ENV_VAR = "SNNC_DATA_DIR"
VALIDATION_SEED = 20261126  # which training images form the validation split: fixed, so runs compare


@dataclass(frozen=True)
class Split:
    """One split in memory: images uint8 [N, 1, H, W], labels int64 [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def head(self, k: int | None) -> "Split":
        """The first k samples (all when k is None)."""
        return self if k is None else Split(self.images[:k], self.labels[:k])

    def hold_out(self, fraction: float) -> tuple["Split", "Split"]:
        """(rest, held out): `fraction` of the samples, chosen by a fixed seed (the same split in every run)."""
        n_val = int(round(len(self) * fraction))
        if n_val == 0:
            return self, Split(self.images[:0], self.labels[:0])
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(VALIDATION_SEED))
        rest, held = order[n_val:].sort().values, order[:n_val].sort().values
        return Split(self.images[rest], self.labels[rest]), Split(self.images[held], self.labels[held])

    def batch(self, index: torch.Tensor, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Float images in [0, 1] and labels for the given sample ids."""
        x = self.images[index].to(device, non_blocking=True).float().div_(255.0)
        return x, self.labels[index].to(device, non_blocking=True)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    folder: Path
    input_shape: tuple[int, ...] = IMAGE_SHAPE
    num_classes: int = NUM_CLASSES


def load(name: str = "mnist", data_dir: str | os.PathLike | None = None, download: bool = False) -> Dataset:
    """Load a dataset's train and test splits into memory."""
    if name not in DATASETS:
        raise SnncError(f"unknown dataset '{name}'", hint=f"use one of: {', '.join(DATASETS)}")
    root = resolve_dir(data_dir, name)
    folder = find_folder(root, name)
    if folder is None and download:
        folder = _download(root, name)
    if folder is None:
        raise _missing(root, name)
    return _load_folder(name, folder.resolve(), _mtime(folder))


def resolve_dir(data_dir, name: str = "mnist") -> Path:
    chosen = data_dir if data_dir is not None else os.environ.get(ENV_VAR)
    if not chosen:
        raise SnncError(
            f"no data folder given for {name}",
            hint=f"pass --data-dir DIR or set {ENV_VAR}=DIR, where DIR holds {_names()} "
            f"(or {DATASETS[name]}/raw/ with them, as torchvision downloads it)",
        )
    return Path(chosen).expanduser()


def find_folder(root: Path, name: str) -> Path | None:
    """The folder (root itself or root/<Name>/raw) that holds all four files."""
    for folder in (root, root / DATASETS[name] / "raw", root / "raw"):
        if all(_find_file(folder, f) is not None for pair in FILES.values() for f in pair):
            return folder
    return None


def read_idx(path: Path, magic: int) -> torch.Tensor:
    """Read an IDX file (raw or .gz) of unsigned bytes, checking magic number and size."""
    data = _read_bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise _corrupt(path, f"it is {len(data)} bytes, shorter than its header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise _corrupt(path, f"magic number is 0x{found:08x}, expected 0x{magic:08x}")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise _corrupt(path, f"it holds {len(data)} bytes, its header {dims} needs {expected} (truncated?)")
    array = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)
    return torch.from_numpy(array.copy())


@lru_cache(maxsize=4)
def _load_folder(name: str, folder: Path, mtime: float) -> Dataset:
    cached = _decoded(name, folder)
    if cached is not None:
        return cached
    _check_identity(name, folder)
    sums = _read_sums(folder)
    splits = {key: _load_split(folder, images, labels, sums) for key, (images, labels) in FILES.items()}
    dataset = Dataset(name, splits["train"], splits["test"], folder)
    _keep_decoded(dataset)
    return dataset


# Decoded, checked splits are kept in snnc's cache, keyed by the files' identity (path, size, modification
# time, inode): a later run skips decompression, checksums and identification (a third of a second).
def _decoded_path(name: str, folder: Path) -> Path:
    from ..runtime.cache import digest, subdir

    stats = []
    for pair in FILES.values():
        for stem in pair:
            path = _find_file(folder, stem)
            st = path.stat()
            stats.append(f"{path}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
    return subdir("data") / f"{name}-{digest(*stats)}.npz"


def _decoded(name: str, folder: Path) -> Dataset | None:
    try:
        with np.load(_decoded_path(name, folder)) as z:
            arrays = {k: torch.from_numpy(z[k]) for k in ("train_x", "train_y", "test_x", "test_y")}
    except (OSError, ValueError, KeyError, EOFError):
        return None
    if arrays["train_x"].dtype != torch.uint8 or arrays["train_y"].dtype != torch.int64:
        return None
    return Dataset(name, Split(arrays["train_x"], arrays["train_y"]), Split(arrays["test_x"], arrays["test_y"]),
                   folder)


def _keep_decoded(dataset: Dataset) -> None:
    import io

    from ..runtime.files import write_atomic

    buffer = io.BytesIO()
    np.savez(buffer, train_x=dataset.train.images.numpy(), train_y=dataset.train.labels.numpy(),
             test_x=dataset.test.images.numpy(), test_y=dataset.test.labels.numpy())
    try:
        write_atomic(_decoded_path(dataset.name, dataset.folder), buffer.getvalue())
    except OSError:  # a cache that cannot be written only costs the next run its third of a second
        pass


# Which dataset a label file is, by content: SHA-256 of the decompressed bytes (MNIST, from the files this
# project trains on) and MD5 of the original .gz downloads (torchvision's published checksums).
KNOWN_LABELS = {
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5": "mnist",
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2": "mnist",
    "d53e105ee54ea40749a09fcbcd1e9432": "mnist",
    "ec29112dd5afa0611ce80d1b7f02629c": "mnist",
    "25c81989df183df01b3e8a0aad5dffbe": "fashion_mnist",
    "bb300cfdad3c16e7a12a480ee83cd310": "fashion_mnist",
}


def identify(label_path: Path) -> str | None:
    """The known dataset a label file belongs to, or None for files snnc does not know (your own data)."""
    if label_path.suffix == ".gz":
        known = KNOWN_LABELS.get(hashlib.md5(label_path.read_bytes(), usedforsecurity=False).hexdigest())
        if known:
            return known
    return KNOWN_LABELS.get(hashlib.sha256(_read_bytes(label_path)).hexdigest())


def _check_identity(name: str, folder: Path) -> None:
    for _, label_name in FILES.values():
        found = identify(_find_file(folder, label_name))
        if found is not None and found != name:
            raise SnncError(f"{folder} holds the {NAMES[found]} files, not {NAMES[name]}",
                            hint=f"point --data-dir at the {NAMES[name]} files, or use --dataset {found}")


def _load_split(folder: Path, image_name: str, label_name: str, sums: dict[str, str]) -> Split:
    image_path, label_path = _find_file(folder, image_name), _find_file(folder, label_name)
    for path in (image_path, label_path):
        _verify(path, sums)
    images = read_idx(image_path, IMAGE_MAGIC)
    labels = read_idx(label_path, LABEL_MAGIC).long()
    if images.shape[0] != labels.shape[0]:
        raise _corrupt(label_path, f"it has {labels.shape[0]} labels for {images.shape[0]} images in {image_path.name}")
    if labels.numel() and int(labels.max()) >= NUM_CLASSES:
        raise _corrupt(label_path, f"it contains label {int(labels.max())}, expected 0..{NUM_CLASSES - 1}")
    return Split(images.unsqueeze(1).contiguous(), labels)


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, gzip.BadGzipFile) and exc.errno is not None:
            raise SnncError(f"cannot read {path}: {exc.strerror}") from None
        raise _corrupt(path, f"it is not a valid gzip file ({exc})") from None


def _read_sums(folder: Path) -> dict[str, str]:
    path = folder / "SHA256SUMS"
    if not path.is_file():
        return {}
    sums = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _verify(path: Path, sums: dict[str, str]):
    expected = sums.get(path.name)
    if expected is None:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise _corrupt(path, f"its SHA-256 {digest[:12]}... does not match SHA256SUMS ({expected[:12]}...)")


def _mtime(folder: Path) -> float:
    return max((p.stat().st_mtime for p in folder.iterdir() if p.is_file()), default=0.0)


def _names() -> str:
    return ", ".join(f for pair in FILES.values() for f in pair) + " (each optionally .gz)"


def _corrupt(path: Path, why: str) -> SnncError:
    return SnncError(
        f"data file {path} is corrupt: {why}",
        hint="replace it with a fresh copy of the original IDX file (or delete it and rerun with download enabled)",
    )


def _missing(root: Path, name: str) -> SnncError:
    return SnncError(
        f"{name} data not found in {root}",
        hint=f"expected {_names()} in {root} or in {root / DATASETS[name] / 'raw'}; "
        f"point --data-dir or {ENV_VAR} at the folder that holds them, or enable download",
    )


def _download(root: Path, name: str) -> Path:
    try:
        import torchvision
    except Exception as exc:  # noqa: BLE001 - missing, or built for another torch
        raise SnncError(f"--download needs torchvision, which is not importable here ({exc})",
                        hint="pip install torchvision (the one built for your torch), or download the four IDX "
                        f"files yourself and pass --data-dir") from None

    cls = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST}[name]
    try:
        root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as exc:  # network errors come in many types
        raise SnncError(
            f"downloading {name} into {root} failed: {exc}",
            hint=f"this machine may be offline; copy {_names()} into a folder and point --data-dir or {ENV_VAR} at it",
        ) from None
    folder = find_folder(root, name)
    if folder is None:
        raise _missing(root, name)
    return folder
