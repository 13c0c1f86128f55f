"""MNIST and Fashion-MNIST: the four IDX files (optionally gzipped), directly in the folder or in
torchvision's layout (`<root>/MNIST/raw/...`, `<root>/FashionMNIST/raw/...`)."""
from __future__ import annotations

import gzip
import hashlib
import zlib
from pathlib import Path

import numpy as np

from ...compiler.datasets import DATASETS, Dataset
from ...compiler.source import SnncError
from . import files

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801


def find(root: Path, row: Dataset) -> Path | None:
    return files.find(root, row, lambda folder: all(_file(folder, f) is not None for p in FILES.values() for f in p))


def paths(folder: Path, row: Dataset) -> list[Path]:
    return [_file(folder, stem) for pair in FILES.values() for stem in pair]


def read(folder: Path, row: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (images uint8 [N, 1, 28, 28], labels int64 [N])}, checked: magic numbers, sizes, the image size,
    labels in range, the checksums beside them, and that the files are this dataset's and not the other's."""
    _check_identity(row, folder)
    listed = files.sums(folder)
    out = {}
    for split, (image_stem, label_stem) in FILES.items():
        image_path, label_path = _file(folder, image_stem), _file(folder, label_stem)
        for path in (image_path, label_path):
            files.verify(path, folder, listed)
        images = read_idx(image_path, IMAGE_MAGIC)
        labels = read_idx(label_path, LABEL_MAGIC).astype(np.int64)
        if images.shape[1:] != row.shape[1:]:
            raise files.corrupt(image_path, f"its images are {'x'.join(map(str, images.shape[1:]))} pixels, "
                                f"{row.title}'s are {'x'.join(map(str, row.shape[1:]))}", row)
        if images.shape[0] != labels.shape[0]:
            raise files.corrupt(label_path, f"it has {labels.shape[0]} labels for {images.shape[0]} images in "
                                f"{image_path.name}", row)
        if labels.size and int(labels.max()) >= row.classes:
            raise files.corrupt(label_path, f"it contains label {int(labels.max())}, expected 0..{row.classes - 1}",
                                row)
        out[split] = (np.ascontiguousarray(images[:, None]), labels)
    return out


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file (raw or .gz) of unsigned bytes, its magic number and size checked."""
    data = _read(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise files.corrupt(path, f"it is {len(data)} bytes, shorter than its header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise files.corrupt(path, f"magic number is 0x{found:08x}, expected 0x{magic:08x}")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise files.corrupt(path, f"it holds {len(data)} bytes, its header {dims} needs {expected} (truncated?)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def _file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, gzip.BadGzipFile) and exc.errno is not None:
            raise SnncError(f"cannot read {path}: {exc.strerror}") from None
        raise files.corrupt(path, f"it is not a valid gzip file ({exc})") from None


# Which dataset a label file is, by content: SHA-256 of the decompressed bytes (MNIST, from the files this
# project trains on) and MD5 of the original .gz downloads (torchvision's published checksums). Used only to say
# "this folder holds the other dataset", never to refuse a copy.
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
    return KNOWN_LABELS.get(hashlib.sha256(_read(label_path)).hexdigest())


def _check_identity(row: Dataset, folder: Path) -> None:
    for _, label_stem in FILES.values():
        found = identify(_file(folder, label_stem))
        if found is not None and found != row.name:
            raise SnncError(f"{folder} holds the {DATASETS[found].title} files, not {row.title}",
                            hint=f"point --data-dir at the {row.title} files, or use --dataset {found}")


def download(root: Path, row: Dataset) -> None:
    """Fetch the files with torchvision (`--download`)."""
    try:
        import torchvision
    except Exception as exc:  # noqa: BLE001 - missing, or built for another torch
        raise SnncError(f"--download needs torchvision, which is not importable here ({exc})",
                        hint="pip install torchvision (the one built for your torch), or download the four IDX "
                             "files yourself and pass --data-dir") from None
    cls = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST}[row.name]
    try:
        root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as exc:  # network errors come in many types
        raise SnncError(f"downloading {row.title} into {root} failed: {exc}",
                        hint=f"this machine may be offline; copy {row.files} into a folder and point --data-dir "
                             f"or {files.ENV_VAR} at it") from None
