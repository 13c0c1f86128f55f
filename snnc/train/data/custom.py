"""Any dataset from Python: a `torch.utils.data.Dataset` (or a tonic dataset, which yields structured event
arrays) as a split of the runner, so that a user's own loader keeps the runner (validation split, checkpoints,
exact resume, metrics, plots, DDP).

An item is `(x, label)`. `kind` says what x is:

* `images`: [C, H, W], float in [0, 1] or uint8 (divided by 255) — the network's encoder encodes it;
* `sequences`: [steps, ...] already over time (frames, binned spikes) — padded to the batch's longest, with
  each sample's length kept for the readout;
* `events`: a structured array with fields t, x, p (and y for cameras), as tonic datasets give them (times in
  microseconds) — binned with `frames` (a binning of the dataset table, e.g. `step("time_bins", n=10)`) into
  frames of `shape` ([P, H, W] or [channels]; from the dataset's `sensor_size` when it has one).

Nothing of a user's dataset is cached: wrap it in your own cache if reading it is slow, and keep its order
fixed between runs (exact resume relies on it).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ...compiler import ir
from ...compiler.datasets import AUGMENTS, BINNINGS, step_problems
from ...compiler.source import SnncError
from . import Batch, Dataset, _augment_images, _rng, _Samples, as_step
from . import events as ev

KINDS = ("images", "sequences", "events")


def step(name: str, **args) -> ir.Step:
    """A data step by name: `step("time_bins", n=10)`, `step("flip")`."""
    return ir.Step(name=name, args=tuple((k, tuple(map(float, v)) if isinstance(v, (list, tuple)) else float(v))
                                         for k, v in args.items()))


@dataclass(frozen=True, eq=False)
class TorchSplit(_Samples):
    dataset: object
    ids: np.ndarray
    kind: str
    shape: tuple[int, ...]
    binning: ir.Step | None = None
    T: int | None = None

    def __len__(self) -> int:  # labels are read with each batch
        return len(self.ids)

    def take(self, ids) -> "TorchSplit":
        ids = ids.numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids, dtype=np.int64)
        return replace(self, ids=self.ids[ids])

    def batch(self, index: torch.Tensor, device="cpu", *, augment=(), seed: int = 0, epoch: int = 0) -> Batch:
        items = [self.dataset[int(i)] for i in self.ids[index.numpy()]]
        y = torch.tensor([int(label) for _, label in items], dtype=torch.long)
        xs = [x for x, _ in items]
        if self.kind == "images":
            x = torch.stack([_image(v) for v in xs])
            if augment:
                x = _augment_images(x, index, augment, seed, epoch)
            if x.dtype == torch.uint8:
                x = x.float().div_(255.0)
            return Batch(x.to(device), y.to(device))
        if self.kind == "events":
            xs = [self._frames(v, augment, _rng(seed, epoch, int(k))) for v, k in zip(xs, index.tolist())]
        sequences = [torch.as_tensor(np.asarray(v)).float()[: self.T] for v in xs]
        lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
        out = torch.nn.utils.rnn.pad_sequence(sequences).contiguous()  # [steps, N, ...]
        return Batch(out.to(device), y.to(device), lengths.to(device))

    def _frames(self, events, augment, rng) -> np.ndarray:
        names = events.dtype.names or ()
        if not {"t", "x", "p"} <= set(names):
            raise SnncError(f"an item of this dataset is not an event array (fields {list(names) or 'none'})",
                            hint="events are structured arrays with fields t, x, p (and y), as tonic gives them")
        sample = ev.Events(t=np.asarray(events["t"]), x=np.asarray(events["x"]), p=np.asarray(events["p"]),
                           y=np.asarray(events["y"]) if "y" in names else None)
        sample = ev.augment_events(sample, augment, self.shape, rng)
        return ev.to_frames(sample, self.shape, self.binning, self.T)


def _image(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    if t.dim() == 2:
        t = t.unsqueeze(0)
    return t


def from_torch(train, test, *, classes: int, kind: str = "images", shape: tuple[int, ...] | None = None,
               frames=None, T: int | None = None, valid=None, name: str = "custom") -> Dataset:
    """A runner dataset of a user's train and test datasets (and a validation dataset, else the runner holds
    out val_split of train)."""
    if kind not in KINDS:
        raise SnncError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not isinstance(classes, int) or classes < 1:
        raise SnncError(f"classes must be a positive number, not {classes!r}")
    binning = as_step(frames) if not isinstance(frames, str) else step(frames)
    if kind == "events":
        if binning is None:
            raise SnncError("events need a binning: frames=step(\"time_bins\", n=10), for example",
                            hint=f"binnings: {', '.join(BINNINGS)}")
        problems = step_problems(binning, "frames", "events" if len(shape or _sensor(train) or ()) == 3 else "spikes",
                                 name)
        if problems:
            raise SnncError(problems[0].message, hint=problems[0].hint)
    shape = tuple(shape) if shape is not None else _sensor(train)
    if kind == "events" and shape is None:
        raise SnncError("events need the frame shape: shape=(2, H, W) for a camera, (channels,) for spike data",
                        hint="or a dataset with tonic's sensor_size")
    if shape is None:
        x, _ = train[0]
        shape = tuple(_image(x).shape) if kind == "images" else tuple(np.asarray(x).shape[1:])

    def split(d):
        return None if d is None else TorchSplit(d, np.arange(len(d)), kind, shape, binning, T)

    return Dataset(name, split(train), split(test), folder=None, valid=split(valid), num_classes=classes,
                   kind={"images": "images", "sequences": "sequences", "events": "sequences"}[kind],
                   sample_shape=shape, settings={"frames": binning.model_dump() if binning else None})


def _sensor(dataset) -> tuple[int, ...] | None:
    """tonic's sensor_size (W, H, P) as a frame shape: (P, H, W), or (channels,) for (channels, 1, 1)."""
    size = getattr(dataset, "sensor_size", None)
    if size is None:
        return None
    w, h, p = (int(v) for v in size)
    return (w,) if h == 1 and p == 1 else (p, h, w)


def check(data: Dataset, encoder: str, input_shape: tuple[int, ...], classes: int, T: int) -> str | None:
    """Why a network cannot take this data, or None."""
    from ...compiler.encoders import ENCODERS

    code = ENCODERS.get(encoder)
    gives = "images" if data.kind == "images" else "sequences"
    if code is None or code.takes != gives:
        return f"the {encoder} encoder does not take {gives} (this dataset's items)"
    step_shape = code.step_shape(tuple(data.sample_shape))
    if tuple(step_shape) != tuple(input_shape):
        return f"this dataset gives {list(step_shape)} per step, but the network's input is {list(input_shape)}"
    if classes != data.num_classes:
        return f"this dataset has {data.num_classes} classes, the network's output {classes}"
    steps = code.steps(tuple(data.sample_shape))
    if steps is not None and steps != T:
        return f"the {encoder} encoder makes {steps} steps of these images, but T is {T}"
    return None


__all__ = ["from_torch", "step", "check", "AUGMENTS"]
