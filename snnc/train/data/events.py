"""Events to frames: binnings, preprocessing and augmentations, vectorised with NumPy.

A sample is an `Events`: arrays `t`, `x`, `p` and, for cameras, `y`, in time order. Integer times are
microseconds (cameras, and spike data as tonic gives it); float times are seconds, as the SHD/SSC files store
them, kept so because each peer converts them in its own way and the frames must equal the peer's to the
count:

* the tonic binnings (`time_bins`, `event_bins`, `time_window`, `event_count`) reproduce tonic 1.7's
  `ToFrame` (its `slice_events_by_*`), on times in microseconds (float64 seconds * 1e6, truncated, as tonic's
  HSD reader makes them);
* the SpikingJelly binnings (`split_by_number`, `split_by_time`, `duration`) reproduce SpikingJelly 2.0's
  `integrate_events_by_fixed_frames_number` / `_by_fixed_duration` (and, for spike data, their SHD variants,
  which work in milliseconds). Where SpikingJelly raises on a sample (a frame with no event under
  split_by='time', a sample whose events all share one time under 'duration'), these give empty frames.

Frames are integer counts, [frames, P, H, W] for cameras and [frames, channels] for spike data. A sample with
no events gives empty frames (one, for the binnings whose frame count depends on the sample).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ...compiler import ir
from ...compiler.datasets import AUGMENTS, BINNINGS, TRANSFORMS, Dataset, step_values


@dataclass(frozen=True)
class Events:
    t: np.ndarray
    x: np.ndarray
    p: np.ndarray
    y: np.ndarray | None = None  # None: spike data (x is the channel)

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def take(self, keep) -> "Events":
        return Events(self.t[keep], self.x[keep], self.p[keep], None if self.y is None else self.y[keep])


# ------------------------------------------------------------------ binning: which events form each frame
def _time_us(ev: Events) -> np.ndarray:
    """Times in microseconds as tonic has them: camera times as they are; spike times (seconds) widened to
    float64, times 1e6, truncated (tonic 1.7's HSD reader)."""
    if ev.y is not None or ev.t.dtype.kind in "iu":  # already microseconds (cameras; tonic's spike events)
        return ev.t
    return (ev.t.astype(np.float64) * 1e6).astype(np.int64)


def _slices_time_bins(t, n):
    window = (t[-1] - t[0]) // n
    starts = np.arange(n) * window + t[0]
    return np.searchsorted(t, starts), np.searchsorted(t, starts + window)


def _slices_event_bins(t, n):
    count = len(t) // n
    starts = np.arange(n) * count
    return starts, starts + count


def _slices_time_window(t, window):
    slices = max(int(np.floor((t[-1] - t[0] - window) / window) + 1), 1)
    starts = np.arange(slices) * window + t[0]
    return np.searchsorted(t, starts)[:slices], np.searchsorted(t, starts + window)[:slices]


def _slices_event_count(t, count):
    count_here = min(count, len(t))
    slices = int(np.floor((len(t) - count_here) / count) + 1)
    starts = (np.arange(slices) * count).astype(np.int64)
    return starts, starts + count_here


def _slices_split_by_number(t, n):
    step = len(t) // n
    starts = np.arange(n) * step
    ends = starts + step
    ends[-1] = len(t)
    return starts, ends


def _slices_split_by_time(t, n, spikes: bool):
    """SpikingJelly: frame i holds t in [t0 + dt*i, t0 + dt*(i+1)), the last one everything after its start
    (camera data: dt = (t[-1] - t0) // n; spike data: the SHD variant, dt = (t[-1] - t0) / n in seconds)."""
    dt = (t[-1] - t[0]) / n if spikes else (t[-1] - t[0]) // n
    lows = dt * np.arange(n) + t[0]
    starts = np.searchsorted(t, lows, side="left")
    ends = np.searchsorted(t, lows + dt, side="left")
    ends[-1] = len(t)
    empty = starts >= ends  # SpikingJelly raises here; an empty frame instead
    starts[empty] = ends[empty]
    return starts, ends


def _slices_duration(t, window, spikes: bool):
    """SpikingJelly's fixed duration: frame k holds (t - t0) // window == k; the last one the rest."""
    if spikes:  # SpikingJelly's SHD variant: milliseconds, from seconds in the file's precision
        t = 1000 * t if t.dtype.kind == "f" else t / 1000.0
        t = t - t[0]
        window = window / 1000.0
    else:
        t = t - t.min()
    frames = math.ceil(t[-1] / window)
    if frames == 0:  # every event at one time: SpikingJelly fails; one frame holds them
        return np.array([0]), np.array([len(t)])
    index = t // window
    bounds = np.searchsorted(index, np.arange(1, frames), side="left")
    return np.concatenate(([0], bounds)), np.concatenate((bounds, [len(t)]))


def slices(ev: Events, binning: ir.Step, T: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The [start, end) event index range of each frame."""
    kind = BINNINGS[binning.name]
    v = step_values(binning, kind, T)
    name, spikes = binning.name, ev.y is None
    if name in ("split_by_number", "split_by_time", "duration"):
        if name == "split_by_number":
            return _slices_split_by_number(ev.t, v["n"])
        if name == "split_by_time":
            return _slices_split_by_time(ev.t, v["n"], spikes)
        return _slices_duration(ev.t, v["us"], spikes)
    t = _time_us(ev)
    if name == "time_bins":
        return _slices_time_bins(t, v["n"])
    if name == "event_bins":
        return _slices_event_bins(t, v["n"])
    if name == "time_window":
        return _slices_time_window(t, v["us"])
    return _slices_event_count(t, v["events"])


def frame_count(binning: ir.Step, T: int | None = None) -> int | None:
    """The number of frames every sample gets, or None where it depends on the sample."""
    kind = BINNINGS[binning.name]
    return None if kind.variable else step_values(binning, kind, T)["n"]


def to_frames(ev: Events, shape: tuple[int, ...], binning: ir.Step, T: int | None = None) -> np.ndarray:
    """Counts [frames, *shape] (int32) of a sample's events binned so."""
    size = int(np.prod(shape))
    if len(ev) == 0:
        return np.zeros((frame_count(binning, T) or 1, *shape), dtype=np.int32)
    starts, ends = slices(ev, binning, T)
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    counts = np.maximum(ends - starts, 0)
    flat = _flat_index(ev, shape)
    if np.all(starts[1:] >= ends[:-1]):  # disjoint, in order (all binnings here): one gather, one bincount
        which = np.repeat(np.arange(len(starts)), counts)
        picked = np.concatenate([flat[s:e] for s, e in zip(starts, ends)]) if len(starts) > 1 else flat[starts[0]:ends[0]]
        out = np.bincount(which * size + picked, minlength=len(starts) * size)
    else:  # pragma: no cover - overlapping windows are not offered
        out = np.concatenate([np.bincount(flat[s:e], minlength=size) for s, e in zip(starts, ends)])
    return out.astype(np.int32).reshape(len(starts), *shape)


def _flat_index(ev: Events, shape: tuple[int, ...]) -> np.ndarray:
    x = ev.x.astype(np.int64)
    if ev.y is None:
        return x
    polarities, height, width = shape
    p = (ev.p != 0).astype(np.int64) if polarities == 2 else np.zeros_like(x)
    return (p * height + ev.y.astype(np.int64)) * width + x


# ------------------------------------------------------------------ transforms (deterministic)
def denoise(ev: Events, us: float) -> Events:
    """tonic's Denoise(filter_time=us), vectorised: an event is kept when one of its 4 neighbour pixels saw an
    event (earlier in the stream) less than `us` before it — or saw none yet while t < us (tonic's memory
    starts at filter_time). The image size is the events' own, as tonic takes it (x.max() + 1, y.max() + 1)."""
    if len(ev) == 0:
        return ev
    width, height = int(ev.x.max()) + 1, int(ev.y.max()) + 1
    x, y, t = ev.x.astype(np.int64), ev.y.astype(np.int64), ev.t.astype(np.float64)
    n = len(ev)
    pixel = x * height + y
    order = np.lexsort((np.arange(n), pixel))  # by pixel, then stream order
    key = pixel[order] * n + order  # sorted
    keep = np.zeros(n, dtype=bool)
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        nx, ny = x + dx, y + dy
        inside = (nx >= 0) & (nx < width) & (ny >= 0) & (ny < height)
        neighbour = nx * height + ny
        # the last event at the neighbour pixel before this one in the stream
        at = np.searchsorted(key, neighbour * n + np.arange(n), side="left") - 1
        found = (at >= 0) & (key[np.maximum(at, 0)] // n == neighbour)
        last = np.where(found, t[order[np.maximum(at, 0)]], -np.inf)
        memory = np.where(found, last + us, us)
        keep |= inside & (memory > t)
    return ev.take(keep)


def downsample(ev: Events, factor: int) -> Events:
    """Pixels (or channels) pooled in groups of `factor`: coordinates divided, counts add up."""
    return replace(ev, x=ev.x // factor, y=None if ev.y is None else ev.y // factor)


def preprocess(ev: Events, transforms) -> Events:
    for step in transforms:
        values = step_values(step, TRANSFORMS[step.name])
        if step.name == "denoise" and ev.y is not None:
            ev = denoise(ev, values["us"])
        elif step.name == "downsample":
            ev = downsample(ev, values["factor"])
    return ev


# ------------------------------------------------------------------ augmentations (random per sample)
def augment_events(ev: Events, augments, shape: tuple[int, ...], rng: np.random.Generator) -> Events:
    """The augmentations that act on events (drop_event, time_jitter), and flip/shift where the sample is
    binned again anyway, on one sample."""
    for step in augments:
        v = step_values(step, AUGMENTS[step.name])
        if step.name == "drop_event":  # tonic: round(p * n) events, chosen without replacement
            drop = rng.choice(len(ev), int(v["p"] * len(ev) + 0.5), replace=False)
            keep = np.ones(len(ev), dtype=bool)
            keep[drop] = False
            ev = ev.take(keep)
        elif step.name == "time_jitter":  # tonic: t + N(0, std), then back in time order
            t = ev.t + rng.normal(0.0, v["us"] / (1e6 if ev.y is None else 1.0), len(ev))
            t = t.astype(ev.t.dtype) if ev.t.dtype.kind == "f" else np.round(t).astype(ev.t.dtype)
            order = np.argsort(t, kind="stable")
            ev = Events(t[order], ev.x[order], ev.p[order], None if ev.y is None else ev.y[order])
        elif step.name == "flip" and ev.y is not None and rng.random() < v["p"]:
            ev = replace(ev, x=shape[-1] - 1 - ev.x)
        elif step.name == "shift" and ev.y is not None:
            dx, dy = rng.integers(-v["max"], v["max"] + 1, size=2)
            x, y = ev.x.astype(np.int64) + dx, ev.y.astype(np.int64) + dy
            inside = (x >= 0) & (x < shape[-1]) & (y >= 0) & (y < shape[-2])
            ev = Events(ev.t[inside], x[inside], ev.p[inside], y[inside])
    return ev


def augment_frames(frames: np.ndarray, augments, rng: np.random.Generator) -> np.ndarray:
    """flip and shift on a sample's frames [F, P, H, W]: the same frames as the augmented events give."""
    for step in augments:
        v = step_values(step, AUGMENTS[step.name])
        if step.name == "flip" and rng.random() < v["p"]:
            frames = frames[..., ::-1]
        elif step.name == "shift":
            dx, dy = (int(d) for d in rng.integers(-v["max"], v["max"] + 1, size=2))
            frames = _translate(frames, dx, dy)
    return np.ascontiguousarray(frames)


def _translate(frames: np.ndarray, dx: int, dy: int) -> np.ndarray:
    out = np.zeros_like(frames)
    h, w = frames.shape[-2:]
    src_y, dst_y = slice(max(0, -dy), min(h, h - dy)), slice(max(0, dy), min(h, h + dy))
    src_x, dst_x = slice(max(0, -dx), min(w, w - dx)), slice(max(0, dx), min(w, w + dx))
    if src_y.start < src_y.stop and src_x.start < src_x.stop:
        out[..., dst_y, dst_x] = frames[..., src_y, src_x]
    return out


def on_events(augments) -> bool:
    """Whether these augmentations need the events (the sample binned again each epoch)."""
    return any(AUGMENTS[s.name].on_events for s in augments)


def frame_shape(data: Dataset, transforms) -> tuple[int, ...]:
    from ...compiler.datasets import frame_shape as shape_after

    shape, problems = shape_after(data, tuple(transforms))
    if problems:
        from ...compiler.source import SnncError

        raise SnncError(problems[0].message, hint=problems[0].hint)
    return shape
