"""CIFAR10-DVS in its AEDAT release: `<class>/cifar10_<class>_<n>.aedat` for the ten classes (SpikingJelly reads
them from `extract/`, tonic from `CIFAR10DVS/`).

An AEDAT 2.0 file: header lines that start with '#', then big-endian 32-bit (address, timestamp) pairs; the
address holds x in bits 1-7, y in bits 8-14 and the polarity in bit 0. As SpikingJelly reads them (its
`_load_origin_data`), x and y are swapped and mirrored (x = 127 - y_addr, y = 127 - x_addr) and the polarity
inverted. The release has no train/test split: as SpikingJelly's `split_to_train_test_set(0.9, ...,
random_split=False)` makes it, per class (in file name order) the first ceil(0.9 n) samples train, the rest
test."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...compiler.datasets import Dataset
from . import files
from .events import Events

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TRAIN_SHARE = 0.9


def find(root: Path, row: Dataset) -> Path | None:
    return files.find(root, row, lambda f: all(any((f / c).glob("*.aedat")) for c in CLASSES))


def listing(folder: Path, row: Dataset, split: str) -> tuple[list[Path], np.ndarray]:
    items, labels = [], []
    for label, name in enumerate(CLASSES):
        found = sorted((folder / name).glob("*.aedat"), key=lambda p: p.name)
        if not found:
            raise files.missing(folder, row, f"no .aedat files in {folder / name}")
        cut = math.ceil(len(found) * TRAIN_SHARE)
        chosen = found[:cut] if split == "train" else found[cut:]
        items += chosen
        labels += [label] * len(chosen)
    return items, np.asarray(labels, dtype=np.int64)


def _data_start(raw: bytes) -> int:
    """The offset after the '#' header lines."""
    at = 0
    while raw.startswith(b"#", at):
        end = raw.find(b"\n", at)
        if end < 0:
            return len(raw)
        at = end + 1
    return at


def events(path: Path, row: Dataset) -> Events:
    raw = files.read_bytes(path)
    body = raw[_data_start(raw):]
    if len(body) % 8:
        raise files.corrupt(path, f"its {len(body)} bytes of events are not whole (address, timestamp) pairs", row)
    words = np.frombuffer(body, dtype=">u4")
    address, t = words[0::2].astype(np.int64), words[1::2].astype(np.int64)
    x_address, y_address = (address & 0xFE) >> 1, (address & 0x7F00) >> 8
    return Events(t=t, x=127 - y_address, p=1 - (address & 1), y=127 - x_address)
