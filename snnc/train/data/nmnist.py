"""N-MNIST: one `.bin` file per sample, `Train/<digit>/*.bin` and `Test/<digit>/*.bin`, as the publisher's zips
extract (tonic keeps them under `NMNIST/`, SpikingJelly under `extract/`).

A file is 5 bytes an event: x, y, then polarity (bit 7) and a 23-bit timestamp in microseconds. An event with
y = 240 is not an event but a timestamp overflow: every later timestamp gains 2^13 (the rule of the
publisher's reader, which tonic's `read_mnist_file` follows)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...compiler.datasets import Dataset
from . import files
from .events import Events

FOLDERS = {"train": "Train", "test": "Test"}
OVERFLOW_Y, OVERFLOW_STEP = 240, 2**13


def find(root: Path, row: Dataset) -> Path | None:
    return files.find(root, row, lambda f: all((f / d).is_dir() and any((f / d).glob("*/*.bin"))
                                               for d in FOLDERS.values()))


def listing(folder: Path, row: Dataset, split: str) -> tuple[list[Path], np.ndarray]:
    items, labels = [], []
    for digit in sorted(p for p in (folder / FOLDERS[split]).iterdir() if p.is_dir()):
        if not digit.name.isdigit() or int(digit.name) >= row.classes:
            continue
        for path in sorted(digit.glob("*.bin")):
            items.append(path)
            labels.append(int(digit.name))
    if not items:
        raise files.missing(folder, row, f"no .bin files under {folder / FOLDERS[split]}/<digit>/")
    return items, np.asarray(labels, dtype=np.int64)


def events(path: Path, row: Dataset) -> Events:
    raw = np.frombuffer(files.read_bytes(path), dtype=np.uint8)
    if raw.size % 5:
        raise files.corrupt(path, f"it is {raw.size} bytes, not a whole number of 5-byte events", row)
    raw = raw.reshape(-1, 5).astype(np.int64)
    x, y = raw[:, 0], raw[:, 1]
    p = (raw[:, 2] & 128) >> 7
    t = ((raw[:, 2] & 127) << 16) | (raw[:, 3] << 8) | raw[:, 4]
    overflow = y == OVERFLOW_Y
    t = t + OVERFLOW_STEP * np.cumsum(overflow)
    keep = ~overflow
    x, y, p, t = x[keep], y[keep], p[keep], t[keep]
    width, height = row.shape[2], row.shape[1]
    if x.size and (x.max() >= width or y.max() >= height):
        raise files.corrupt(path, f"it has an event at ({int(x.max())}, {int(y.max())}), outside the "
                            f"{width}x{height} sensor", row)
    return Events(t=t, x=x, p=p, y=y)
