"""SHD and SSC, the Heidelberg spiking datasets: one HDF5 file per split (`shd_train.h5`, `shd_test.h5`;
`ssc_train.h5`, `ssc_valid.h5`, `ssc_test.h5`), each holding `spikes/times` (a variable-length array of spike
times in seconds per sample), `spikes/units` (the channel, 0..699, of each spike) and `labels`."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...compiler.datasets import Dataset
from ...compiler.source import SnncError
from . import files
from .events import Events

_OPEN: dict = {}  # (path, pid) -> an open h5py.File: each worker process opens its own


def _name(row: Dataset, split: str) -> str:
    return f"{row.name}_{split}.h5"


def find(root: Path, row: Dataset) -> Path | None:
    return files.find(root, row, lambda f: all((f / _name(row, s)).is_file() for s in row.splits))


def paths(folder: Path, row: Dataset) -> list[Path]:
    return [folder / _name(row, s) for s in row.splits]


def _file(path: Path, row: Dataset):
    key = (str(path), os.getpid())
    handle = _OPEN.get(key)
    if handle is None:
        try:
            import h5py
        except ImportError:
            raise SnncError(f"reading {row.title} needs h5py", hint="pip install h5py") from None
        try:
            handle = _OPEN[key] = h5py.File(path, "r")
        except OSError as exc:
            raise files.corrupt(path, f"it is not an HDF5 file ({exc})", row) from None
        for key_name in ("spikes/times", "spikes/units", "labels"):
            if key_name not in handle:
                raise files.corrupt(path, f"it has no '{key_name}' (an SHD/SSC file has spikes/times, "
                                    "spikes/units and labels)", row)
    return handle


def listing(folder: Path, row: Dataset, split: str) -> tuple[list, np.ndarray]:
    path = folder / _name(row, split)
    handle = _file(path, row)
    labels = np.asarray(handle["labels"][()], dtype=np.int64)
    n = len(labels)
    if len(handle["spikes/times"]) != n or len(handle["spikes/units"]) != n:
        raise files.corrupt(path, f"it has {n} labels but {len(handle['spikes/times'])} spike trains", row)
    if n and (labels.min() < 0 or labels.max() >= row.classes):
        raise files.corrupt(path, f"it contains label {int(labels.max())}, expected 0..{row.classes - 1}", row)
    return [(path, i) for i in range(n)], labels


def events(item, row: Dataset) -> Events:
    path, i = item
    handle = _file(path, row)
    times = np.asarray(handle["spikes/times"][i])
    units = np.asarray(handle["spikes/units"][i]).astype(np.int64)
    if times.shape != units.shape or times.dtype.kind != "f":
        raise files.corrupt(path, f"sample {i} has {times.size} times ({times.dtype}) for {units.size} units", row)
    if units.size and (units.min() < 0 or units.max() >= row.shape[0]):
        raise files.corrupt(path, f"sample {i} has a spike on channel {int(units.max())}, beyond {row.shape[0]}",
                            row)
    return Events(t=times, x=units, p=np.ones(units.shape, dtype=np.int8))
