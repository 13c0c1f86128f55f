"""CIFAR-10 and CIFAR-100: the python version (`cifar-10-batches-py/`, `cifar-100-python/`), as torchvision
downloads it. The batches are pickles; they are read with an unpickler that builds only dicts, lists, strings,
numbers and NumPy arrays, so a planted file cannot run code."""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from ...compiler.datasets import Dataset
from ...compiler.source import SnncError
from . import files

SPLITS = {
    "cifar10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    "cifar100": {"train": ["train"], "test": ["test"]},
}
LABELS = {"cifar10": "labels", "cifar100": "fine_labels"}
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}  # bytes, as Python 3 writes protocol 2


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a CIFAR batch never holds")


def find(root: Path, row: Dataset) -> Path | None:
    names = [n for split in SPLITS[row.name].values() for n in split]
    return files.find(root, row, lambda folder: all((folder / n).is_file() for n in names))


def paths(folder: Path, row: Dataset) -> list[Path]:
    return [folder / n for split in SPLITS[row.name].values() for n in split]


def read(folder: Path, row: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    listed = files.sums(folder)
    out = {}
    for split, names in SPLITS[row.name].items():
        images, labels = [], []
        for name in names:
            path = folder / name
            files.verify(path, folder, listed)
            x, y = _batch(path, row)
            images.append(x)
            labels.append(y)
        out[split] = (np.concatenate(images), np.concatenate(labels))
    return out


def _batch(path: Path, row: Dataset) -> tuple[np.ndarray, np.ndarray]:
    try:
        entry = _Unpickler(io.BytesIO(files.read_bytes(path)), encoding="latin1").load()
    except SnncError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated or foreign pickles fail in many ways
        raise files.corrupt(path, f"it is not a CIFAR batch ({type(exc).__name__}: {str(exc)[:120]})", row) from None
    key = LABELS[row.name]
    if not isinstance(entry, dict) or "data" not in entry or key not in entry:
        raise files.corrupt(path, f"it has no 'data' and '{key}' entries", row)
    data, labels = entry["data"], np.asarray(entry[key], dtype=np.int64)
    size = int(np.prod(row.shape))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != size:
        raise files.corrupt(path, f"its data is not uint8 rows of {size} pixels", row)
    if labels.shape != (data.shape[0],):
        raise files.corrupt(path, f"it has {labels.size} labels for {data.shape[0]} images", row)
    if labels.size and (labels.min() < 0 or labels.max() >= row.classes):
        raise files.corrupt(path, f"it contains label {int(labels.max())}, expected 0..{row.classes - 1}", row)
    return data.reshape(-1, *row.shape).copy(), labels


def download(root: Path, row: Dataset) -> None:
    try:
        import torchvision
    except Exception as exc:  # noqa: BLE001
        raise SnncError(f"--download needs torchvision, which is not importable here ({exc})",
                        hint=f"pip install torchvision, or download {row.source} yourself and pass --data-dir") from None
    cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[row.name]
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
    except Exception as exc:  # noqa: BLE001
        raise SnncError(f"downloading {row.title} into {root} failed: {exc}",
                        hint=f"this machine may be offline; put {row.files} under a folder and pass --data-dir") from None
