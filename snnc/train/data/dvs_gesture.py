"""DVS128 Gesture in the per-sample release tonic reads: `ibmGestureTrain/user<NN>_<lighting>/<label>.npy` and
`ibmGestureTest/...`, each an array of events [n, 4]: x, y, polarity, time in milliseconds (tonic multiplies by
1000 to microseconds, as here)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...compiler.datasets import Dataset
from . import files
from .events import Events

FOLDERS = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}


def find(root: Path, row: Dataset) -> Path | None:
    return files.find(root, row, lambda f: all((f / d).is_dir() and any((f / d).glob("*/*.npy"))
                                               for d in FOLDERS.values()))


def listing(folder: Path, row: Dataset, split: str) -> tuple[list[Path], np.ndarray]:
    items, labels = [], []
    for user in sorted(p for p in (folder / FOLDERS[split]).iterdir() if p.is_dir()):
        for path in sorted(user.glob("*.npy"), key=lambda p: (len(p.stem), p.stem)):
            if not path.stem.isdigit() or int(path.stem) >= row.classes:
                raise files.corrupt(path, f"its name is not a class number 0..{row.classes - 1}", row)
            items.append(path)
            labels.append(int(path.stem))
    if not items:
        raise files.missing(folder, row, f"no .npy files under {folder / FOLDERS[split]}/<user>/")
    return items, np.asarray(labels, dtype=np.int64)


def events(path: Path, row: Dataset) -> Events:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise files.corrupt(path, f"it is not a .npy array ({exc})", row) from None
    if data.ndim != 2 or data.shape[1] != 4 or data.dtype.kind not in "iuf":
        raise files.corrupt(path, f"it holds an array of shape {list(data.shape)} ({data.dtype}), not events [n, 4]",
                            row)
    data = data.copy()
    data[:, 3] *= 1000  # milliseconds -> microseconds, in the file's own type, as tonic does
    x, y = data[:, 0].astype(np.int16), data[:, 1].astype(np.int16)
    p, t = data[:, 2].astype(bool), data[:, 3].astype(np.int64)
    if x.size and (x.min() < 0 or y.min() < 0 or x.max() >= row.shape[2] or y.max() >= row.shape[1]):
        raise files.corrupt(path, "it has events outside the 128x128 sensor", row)
    return Events(t=t, x=x, p=p.astype(np.int8), y=y)
