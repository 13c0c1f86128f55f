"""The data `snnc train` feeds: every dataset of the dataset table (`snnc/compiler/datasets.py`), read from a
local folder in its publisher's layout, decoded or binned once and cached, and served in batches.

`load(name, data_dir, ...)` finds the files (`data_dir`, else SNNC_DATA_DIR), reads them with the row's reader
(a module of this package) and returns a `Dataset` of splits:

* images (MNIST, CIFAR) are held in memory as uint8 (`Split`), decoded once per set of files (cached by their
  path, size, modification time and inode);
* events and spikes (N-MNIST, DVS Gesture, CIFAR10-DVS, SHD, SSC) are binned into frames once, on the first
  run, and kept in snnc's cache as memory-mapped integer counts (`Frames`), keyed by the files' identity and
  every setting that shapes the frames (binning, T where it sets the count, transforms, the reader's own
  code); a changed setting builds new frames, never serves stale ones. Training reads them from the page cache
  without holding the dataset in memory.

A batch (`Batch`) is images [N, C, H, W] in [0, 1] (or normalised), or sequences [T, N, ...] with, where samples
have different lengths, each one's number of valid steps (shorter samples are padded with empty frames).
Augmentations are drawn per sample from (seed, epoch, sample): a batch's contents do not depend on its
neighbours, on the number of loader processes, or on where a run was resumed. Nothing is downloaded unless
`download=True`.
"""
from __future__ import annotations

import importlib
import io
import json
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ...compiler import ir
from ...compiler.datasets import AUGMENTS, DATASETS, TRANSFORMS, Dataset as Row, step_values
from ...compiler.source import SnncError, did_you_mean
from . import events as ev
from . import files
from .files import ENV_VAR, resolve_dir  # noqa: F401 (public API)
from .idx import IMAGE_MAGIC, LABEL_MAGIC, identify, read_idx  # noqa: F401 (public API)

VALIDATION_SEED = 20261126  # which training samples form the validation split: fixed, so runs compare
FORMAT = 1  # of the cached frames: part of their key
_AUGMENT_SALT = 0xA06E


class Batch(NamedTuple):
    x: torch.Tensor  # images [N, C, H, W] or sequences [T, N, ...], float
    y: torch.Tensor  # labels [N]
    lengths: torch.Tensor | None = None  # valid steps of each sample, where they differ (sequences)


class _Samples:
    """What every split does: its length, a head, the fixed validation hold-out."""

    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def head(self, k: int | None):
        """The first k samples (all when k is None)."""
        return self if k is None else self.take(torch.arange(min(k, len(self))))

    def hold_out(self, fraction: float):
        """(rest, held out): `fraction` of the samples, chosen by a fixed seed (the same split in every run)."""
        n_val = int(round(len(self) * fraction))
        if n_val == 0:
            return self, self.take(torch.arange(0))
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(VALIDATION_SEED))
        return self.take(order[n_val:].sort().values), self.take(order[:n_val].sort().values)


def _rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([_AUGMENT_SALT, seed & (2**63 - 1), epoch, int(index)])


# ------------------------------------------------------------------ images
@dataclass(frozen=True)
class Split(_Samples):
    """Images in memory: uint8 [N, C, H, W], labels int64 [N], and the normalisation applied to batches."""

    images: torch.Tensor
    labels: torch.Tensor
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def take(self, ids: torch.Tensor) -> "Split":
        return replace(self, images=self.images[ids], labels=self.labels[ids])

    def batch(self, index: torch.Tensor, device: torch.device | str = "cpu", *, augment=(), seed: int = 0,
              epoch: int = 0) -> Batch:
        """Float images and labels for the given sample ids (augmented per sample when `augment` is given)."""
        images = self.images[index]
        if augment:
            images = _augment_images(images, index, augment, seed, epoch)
        x = images.to(device, non_blocking=True).float().div_(255.0)
        if self.mean:
            x = (x - torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)) / \
                torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return Batch(x, self.labels[index].to(device, non_blocking=True))


def _augment_images(images: torch.Tensor, index: torch.Tensor, augment, seed: int, epoch: int) -> torch.Tensor:
    """crop (zero padding, then a random window of the image's size) and flip, per sample."""
    out = images.clone()
    h, w = images.shape[-2:]
    for n, i in enumerate(index.tolist()):
        rng = _rng(seed, epoch, i)
        img = images[n]
        for step in augment:
            v = step_values(step, AUGMENTS[step.name])
            if step.name == "crop" and v["padding"]:
                pad = v["padding"]
                padded = torch.nn.functional.pad(img, (pad, pad, pad, pad))
                top, left = (int(d) for d in rng.integers(0, 2 * pad + 1, size=2))
                img = padded[:, top:top + h, left:left + w]
            elif step.name == "flip" and rng.random() < v["p"]:
                img = img.flip(-1)
        out[n] = img
    return out


# ------------------------------------------------------------------ event frames
@dataclass(frozen=True)
class EventSource:
    """How to read, preprocess and bin one sample again (augmentations that act on events)."""

    reader: str
    row: Row
    items: tuple
    transforms: tuple
    binning: ir.Step
    T: int
    shape: tuple[int, ...]

    def frames(self, i: int, augments, rng: np.random.Generator) -> np.ndarray:
        sample = _reader(self.reader).events(self.items[i], self.row)
        sample = ev.augment_events(ev.preprocess(sample, self.transforms), augments, self.shape, rng)
        return ev.to_frames(sample, self.shape, self.binning, self.T)


@dataclass(frozen=True)
class Frames(_Samples):
    """Binned samples: counts [sum of frames, *shape] (memory-mapped), the frames of sample k at
    data[offsets[k]:offsets[k + 1]]; `ids` the samples this split holds; at most `T` steps of each are used."""

    data: np.ndarray
    offsets: np.ndarray
    labels: torch.Tensor
    ids: np.ndarray
    T: int
    fixed: bool  # every sample has the same number of frames (no mask needed)
    source: EventSource | None = None

    def take(self, ids: torch.Tensor) -> "Frames":
        ids = ids.numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
        return replace(self, ids=self.ids[ids], labels=self.labels[torch.as_tensor(ids, dtype=torch.long)])

    @property
    def lengths(self) -> np.ndarray:
        return np.minimum(np.diff(self.offsets)[self.ids], self.T)

    def batch(self, index: torch.Tensor, device: torch.device | str = "cpu", *, augment=(), seed: int = 0,
              epoch: int = 0) -> Batch:
        """Frames [T, N, *shape] as floats (counts), labels, and the valid steps of each sample."""
        ids = self.ids[index.numpy()]
        frame_aug = [s for s in augment if not AUGMENTS[s.name].on_events]
        if self.fixed and not (augment and ev.on_events(augment)):
            return self._fixed(ids, index, frame_aug, seed, epoch, device)
        if augment and ev.on_events(augment) and self.source is not None:
            samples = [self.source.frames(int(i), augment, _rng(seed, epoch, k))[: self.T]
                       for i, k in zip(ids, index.tolist())]
        else:
            samples = [np.asarray(self.data[self.offsets[i]: self.offsets[i] + min(self.offsets[i + 1] - self.offsets[i],
                                                                                  self.T)]) for i in ids]
            if frame_aug:
                samples = [ev.augment_frames(s, frame_aug, _rng(seed, epoch, k)) for s, k in zip(samples, index.tolist())]
        lengths = np.array([len(s) for s in samples], dtype=np.int64)
        steps = int(lengths.max()) if len(lengths) else 0
        shape = self.data.shape[1:]
        out = np.zeros((steps, len(samples), *shape), dtype=np.float32)
        for n, s in enumerate(samples):
            out[: len(s), n] = s
        y = self.labels[index].to(device, non_blocking=True)
        x = torch.from_numpy(out).to(device, non_blocking=True)
        return Batch(x, y, torch.from_numpy(lengths).to(device))

    def _fixed(self, ids, index, frame_aug, seed, epoch, device) -> Batch:
        """Every sample has the same frames: one gather from the memory map, one cast into [T, N, ...]."""
        per_sample = int(self.offsets[1] - self.offsets[0]) if len(self.offsets) > 1 else 0
        block = np.asarray(self.data.reshape(-1, per_sample, *self.data.shape[1:])[ids, : self.T])
        if frame_aug:
            block = np.stack([ev.augment_frames(s, frame_aug, _rng(seed, epoch, k)) for s, k in zip(block, index.tolist())])
        x = torch.empty((block.shape[1], block.shape[0], *block.shape[2:]), dtype=torch.float32)
        x.copy_(torch.from_numpy(block).transpose(0, 1))
        return Batch(x.to(device, non_blocking=True), self.labels[index].to(device, non_blocking=True))


# ------------------------------------------------------------------ a dataset
@dataclass(frozen=True)
class Dataset:
    name: str
    train: _Samples
    test: _Samples
    folder: Path
    valid: _Samples | None = None  # the published validation split, where there is one (SSC)
    num_classes: int = 10
    kind: str = "images"
    sample_shape: tuple[int, ...] = (1, 28, 28)  # an image, or a frame
    settings: dict = field(default_factory=dict)  # what shaped the frames (binning, transforms)


def load(name: str = "mnist", data_dir: str | os.PathLike | None = None, download: bool = False, *, T: int | None = None,
         frames: ir.Step | dict | None = None, transform=(), augment=()) -> Dataset:
    """A dataset's splits: images in memory, or events binned into cached frames (binning `frames`, else the
    dataset's default; a frame count left out is `T`). `augment` only says whether events must be kept at hand
    (augmentations that act on events); batches are augmented where the runner asks."""
    row = DATASETS.get(name)
    if row is None:
        raise SnncError(f"unknown dataset '{name}'", hint=did_you_mean(name, DATASETS) or
                        f"datasets: {', '.join(DATASETS)}")
    frames, transform, augment = as_step(frames), as_steps(transform), as_steps(augment)
    root = resolve_dir(data_dir, row)
    reader = _reader(row.reader)
    folder = reader.find(root, row)
    if folder is None and download:
        if not hasattr(reader, "download"):
            raise SnncError(f"snnc cannot download {row.title}", hint=f"fetch it from {row.source} and pass --data-dir")
        reader.download(root, row)
        folder = reader.find(root, row)
    if folder is None:
        raise files.missing(root, row, downloadable=hasattr(reader, "download"))
    if row.kind == "images":
        return _images(row, folder.resolve(), _newest(folder), transform)
    if T is None:
        raise SnncError(f"binning {row.title} into frames needs the network's T")
    return _binned(row, folder.resolve(), T, frames or row.frames, transform, ev.on_events(augment))


def as_step(value) -> ir.Step | None:
    return ir.Step.model_validate(value) if isinstance(value, dict) else value


def as_steps(values) -> tuple[ir.Step, ...]:
    return tuple(as_step(v) for v in values or ())


def _reader(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def _newest(folder: Path) -> float:
    return max((p.stat().st_mtime for p in folder.iterdir() if p.is_file()), default=0.0)


@lru_cache(maxsize=4)
def _images(row: Row, folder: Path, mtime: float, transform: tuple) -> Dataset:
    arrays = _decoded(row, folder)
    mean = std = ()
    for step in transform:
        if step.name == "normalize":
            v = step_values(step, TRANSFORMS["normalize"])
            mean, std = tuple(v["mean"] or row.mean), tuple(v["std"] or row.std)
    splits = {k: Split(torch.from_numpy(x), torch.from_numpy(y), mean, std) for k, (x, y) in arrays.items()}
    _nonempty(row, splits, folder)
    return Dataset(row.name, splits["train"], splits["test"], folder, num_classes=row.classes, kind=row.kind,
                   sample_shape=row.shape, settings={"transform": [s.model_dump() for s in transform]})


def _decoded(row: Row, folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The reader's arrays, from snnc's cache when these files were decoded before (a later run skips
    decompression, checksums and identification)."""
    from ...runtime.cache import digest, subdir, trusted
    from ...runtime.files import write_atomic

    reader = _reader(row.reader)
    path = trusted(subdir("data") / f"{row.name}-{digest(_reader_code(row.reader), *files.identity(reader.paths(folder, row)))}.npz")
    try:
        with np.load(path) as z:
            arrays = {split: (z[f"{split}_x"], z[f"{split}_y"]) for split in row.splits}
        if all(x.dtype == np.uint8 and y.dtype == np.int64 and x.shape[1:] == tuple(row.shape[1:]) and
               len(x) == len(y) for x, y in arrays.values()):
            return arrays
    except (OSError, ValueError, KeyError, EOFError):
        pass
    arrays = reader.read(folder, row)
    buffer = io.BytesIO()
    np.savez(buffer, **{f"{s}_{k}": a for s, (x, y) in arrays.items() for k, a in (("x", x), ("y", y))})
    try:
        write_atomic(path, buffer.getvalue(), replace=False)
    except OSError:  # a cache that cannot be written only costs the next run the decoding
        pass
    return arrays


@lru_cache(maxsize=None)
def _reader_code(name: str) -> bytes:
    """The reader's and the binning's source: a cache key part (a changed reader never serves old frames)."""
    here = Path(__file__).parent
    return b"".join((here / f).read_bytes() for f in (f"{name}.py", "events.py", "files.py", "__init__.py"))


@lru_cache(maxsize=8)
def _binned(row: Row, folder: Path, T: int, binning: ir.Step, transform: tuple, keep_events: bool) -> Dataset:
    shape = ev.frame_shape(row, transform)
    reader = _reader(row.reader)
    count = ev.frame_count(binning, T)
    splits = {}
    for split in row.splits:
        items, labels = reader.listing(folder, row, split)
        data, offsets = _frames(row, folder, split, items, transform, binning, T, shape)
        source = EventSource(row.reader, row, tuple(items), transform, binning, T, shape) if keep_events else None
        uniform = len(offsets) > 1 and bool(np.all(np.diff(offsets) == offsets[1] - offsets[0]))
        splits[split] = Frames(data, offsets, torch.from_numpy(labels), np.arange(len(labels)), T,
                               count is not None and count >= T and uniform, source)
    settings = {"frames": binning.model_dump(), "transform": [s.model_dump() for s in transform]}
    _nonempty(row, splits, folder)
    return Dataset(row.name, splits["train"], splits["test"], folder, splits.get("valid"), row.classes, row.kind,
                   shape, settings)


def _frames(row: Row, folder: Path, split: str, items: list, transform: tuple, binning: ir.Step, T: int,
            shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A split's frames from the cache, or binned now and cached: (memory-mapped counts, offsets)."""
    from ...runtime.cache import digest, subdir, trusted

    reader = _reader(row.reader)
    sources = reader.paths(folder, row) if hasattr(reader, "paths") else list(items)
    n = ev.frame_count(binning, None)
    setting = json.dumps({"format": FORMAT, "frames": binning.model_dump(), "T": T if n is None and
                          ev.frame_count(binning, T) is not None else None,
                          "transform": [s.model_dump() for s in transform], "split": split}, sort_keys=True)
    key = digest(_reader_code(row.reader), setting, *files.identity(sources))
    target = subdir("data") / f"{row.name}-{split}-frames-{key}"
    if not (target / "offsets.npy").is_file():
        _build(row, folder, items, transform, binning, T, shape, target)
    trusted(target)
    try:
        return np.load(target / "frames.npy", mmap_mode="r"), np.load(target / "offsets.npy")
    except (OSError, ValueError) as exc:
        raise SnncError(f"the cached frames in {target} cannot be read ({exc})",
                        hint=f"delete {target}; the next run bins the events again") from None


def _build(row: Row, folder: Path, items: list, transform: tuple, binning: ir.Step, T: int,
           shape: tuple[int, ...], target: Path) -> None:
    """Bin every sample and write the counts (uint8 where they fit, else uint16/int32) and offsets, atomically."""
    from ...runtime.files import write_atomic

    reader = _reader(row.reader)
    listed = files.sums(folder)

    def fill(tmp: Path) -> None:
        counts, biggest = [], 0
        with open(tmp / "raw.bin", "wb") as raw:
            for item in items:
                if listed and isinstance(item, Path):
                    files.verify(item, folder, listed)
                frames = ev.to_frames(ev.preprocess(reader.events(item, row), transform), shape, binning, T)
                biggest = max(biggest, int(frames.max(initial=0)))
                raw.write(frames.astype(np.int32).tobytes())
                counts.append(len(frames))
        if hasattr(reader, "paths") and listed:
            for path in reader.paths(folder, row):
                files.verify(path, folder, listed)
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        dtype = np.uint8 if biggest < 2**8 else np.uint16 if biggest < 2**16 else np.int32
        data = np.lib.format.open_memmap(tmp / "frames.npy", mode="w+", dtype=dtype, shape=(int(offsets[-1]), *shape))
        source = np.memmap(tmp / "raw.bin", dtype=np.int32, mode="r", shape=data.shape) if offsets[-1] else None
        step = max(1, (64 << 20) // max(1, 4 * int(np.prod(shape))))
        for start in range(0, int(offsets[-1]), step):
            data[start:start + step] = source[start:start + step]
        data.flush()
        del data, source
        (tmp / "raw.bin").unlink()
        np.save(tmp / "offsets.npy", offsets)

    write_atomic(target, fill, replace=False)


def _nonempty(row: Row, splits: dict, folder: Path) -> None:
    for name, split in splits.items():
        if len(split) == 0:
            raise SnncError(f"{row.title}'s {name} split in {folder} holds no samples",
                            hint=f"expected {row.files}")


def steps_of(row: Row, binning: ir.Step | None, T: int) -> int | None:
    """How many frames each sample gets (None: it depends on the sample); images: None."""
    return None if binning is None else ev.frame_count(binning, T)


__all__ = ["Batch", "Dataset", "EventSource", "Frames", "Split", "load", "read_idx", "resolve_dir"]
