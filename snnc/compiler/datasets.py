"""The dataset table: every dataset `snnc train` reads, and what the compiler knows about each.

One row per dataset (its name in a train block and for `--dataset`), read by `assemble` (a network's default
encoder), `check` (the dataset's sample shape against `input`, its classes against the output, `T` against the
binning — before anything is read), the runner and the readers (`snnc/train/datasets/<reader>.py` reads the
files), the CLI (`--dataset` choices) and the docs. Beside it the tables of the data steps a train block can
name: `frames = ...` (how events become frames), `transform = [...]` (deterministic preprocessing, cached with
the frames) and `augment = [...]` (random, per sample and epoch, training only). Torch-free.

Kinds of data: `images` ([C, H, W] pixels), `events` (a DVS camera: x, y, polarity, time in microseconds; a
frame is [P, H, W]) and `spikes` (a cochlea model: channel and time; a frame is [channels]).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from . import ir

Kind = Literal["images", "events", "spikes"]
Shape = tuple[int, ...]


@dataclass(frozen=True)
class Dataset:
    name: str
    title: str
    kind: Kind
    shape: Shape  # images: one image [C, H, W]; events: one frame [P, H, W]; spikes: one frame [channels]
    classes: int
    reader: str  # the module of snnc.train.datasets that reads its files
    layouts: tuple[str, ...]  # where under --data-dir the files may sit: '' (the folder itself), tonic's, ...
    files: str  # what that folder holds, for messages and docs
    source: str  # where the files come from
    encoder: str  # the default encoder
    frames: ir.Step | None = None  # the default binning (events and spikes)
    splits: tuple[str, ...] = ("train", "test")  # a 'valid' split, where published, is the validation split
    mean: tuple[float, ...] = ()  # the published normalisation (images), for `transform = [normalize]`
    std: tuple[float, ...] = ()
    cites: str = ""


def _step(name: str, **args) -> ir.Step:
    return ir.Step(name=name, args=tuple(args.items()))


_IDX = ("train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte "
        "(each optionally .gz)")
_NUMBER = _step("split_by_number")  # SpikingJelly's frames_number = T, split_by = 'number'

DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("mnist", "MNIST", "images", (1, 28, 28), 10, "idx", ("", "MNIST/raw", "raw"), _IDX,
            "yann.lecun.com/exdb/mnist", "poisson",
            mean=(0.1307,), std=(0.3081,)),
    Dataset("fashion_mnist", "Fashion-MNIST", "images", (1, 28, 28), 10, "idx", ("", "FashionMNIST/raw", "raw"),
            _IDX, "github.com/zalandoresearch/fashion-mnist",
            "poisson", mean=(0.2860,), std=(0.3530,)),
    Dataset("cifar10", "CIFAR-10", "images", (3, 32, 32), 10, "cifar", ("cifar-10-batches-py", ""),
            "cifar-10-batches-py/: data_batch_1 ... data_batch_5, test_batch (the python version)",
            "www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "direct", mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)),
    Dataset("cifar100", "CIFAR-100", "images", (3, 32, 32), 100, "cifar", ("cifar-100-python", ""),
            "cifar-100-python/: train, test (the python version; fine labels)",
            "www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "direct", mean=(0.5071, 0.4865, 0.4409), std=(0.2673, 0.2564, 0.2762)),
    Dataset("nmnist", "N-MNIST", "events", (2, 34, 34), 10, "nmnist", ("", "NMNIST", "extract"),
            "Train/<digit>/*.bin and Test/<digit>/*.bin (the publisher's Train.zip and Test.zip, extracted)",
            "www.garrickorchard.com/datasets/n-mnist, or tonic.datasets.NMNIST(root)", "frames", _NUMBER,
            cites="Orchard et al. 2015"),
    Dataset("dvs_gesture", "DVS128 Gesture", "events", (2, 128, 128), 11, "dvs_gesture", ("", "DVSGesture"),
            "ibmGestureTrain/user<NN>_<lighting>/<label>.npy and ibmGestureTest/... (the per-sample release tonic "
            "reads)", "research.ibm.com/dvsgesture via tonic.datasets.DVSGesture(root)", "frames", _NUMBER,
            cites="Amir et al. 2017"),
    Dataset("cifar10_dvs", "CIFAR10-DVS", "events", (2, 128, 128), 10, "cifar10_dvs", ("", "CIFAR10DVS", "extract"),
            "airplane/ ... truck/ with cifar10_<class>_<n>.aedat (the AEDAT release); per class the first 90 % "
            "by number train, the rest test (SpikingJelly's split)",
            "figshare.com/articles/dataset/CIFAR10-DVS_New/4724671", "frames", _NUMBER, cites="Li et al. 2017"),
    Dataset("shd", "SHD (Spiking Heidelberg Digits)", "spikes", (700,), 20, "hsd", ("", "SHD", "events_h5", "hsd"),
            "shd_train.h5, shd_test.h5 (spikes/times, spikes/units, labels)",
            "zenkelab.org/datasets (shd_train.h5.zip, shd_test.h5.zip), or tonic.datasets.SHD(root)", "frames",
            _step("duration", ms=10.0), cites="Cramer et al. 2020"),
    Dataset("ssc", "SSC (Spiking Speech Commands)", "spikes", (700,), 35, "hsd", ("", "SSC", "events_h5", "hsd"),
            "ssc_train.h5, ssc_valid.h5, ssc_test.h5 (spikes/times, spikes/units, labels)",
            "zenkelab.org/datasets (ssc_*.h5.zip), or tonic.datasets.SSC(root)", "frames",
            _step("duration", ms=10.0), splits=("train", "valid", "test"), cites="Cramer et al. 2020"),
)}


DEFAULT = "mnist"  # what a run trains on when its train block names no dataset


# ------------------------------------------------------------------ the data steps
@dataclass(frozen=True)
class Arg:
    name: str
    default: float | None = None  # None: required (for a binning's `n`: the network's T)
    low: float = 0.0  # the smallest value allowed
    whole: bool = False
    inclusive: bool = True  # low itself allowed
    aliases: dict = field(default_factory=dict)  # another name -> its factor to this one (ms -> us: 1000)


@dataclass(frozen=True)
class StepKind:
    """A binning, preprocessing step or augmentation: its arguments and what it reproduces."""

    name: str
    doc: str
    kinds: tuple[Kind, ...]
    args: tuple[Arg, ...] = ()
    peer: str = ""  # the implementation it equals (exactly, or in distribution for random steps)
    variable: bool = False  # binnings: the number of frames depends on the sample (padded, with a mask)
    on_events: bool = False  # augmentations: acts on events (the sample is binned again each epoch)


_N = Arg("n", None, 1.0, whole=True)  # a number of frames: T unless given
_US = Arg("us", None, 0.0, inclusive=False, aliases={"ms": 1000.0})

BINNINGS: dict[str, StepKind] = {b.name: b for b in (
    StepKind("time_bins", "n frames of equal duration", ("events", "spikes"), (_N,), "tonic ToFrame(n_time_bins=n)"),
    StepKind("event_bins", "n frames of equal event counts (the remainder dropped)", ("events", "spikes"), (_N,),
             "tonic ToFrame(n_event_bins=n)"),
    StepKind("time_window", "one frame per window of us microseconds", ("events", "spikes"), (_US,),
             "tonic ToFrame(time_window=us)", variable=True),
    StepKind("event_count", "one frame per `events` events", ("events", "spikes"),
             (Arg("events", None, 1.0, whole=True),), "tonic ToFrame(event_count=events)", variable=True),
    StepKind("split_by_number", "n frames of equal event counts (the last takes the remainder)", ("events", "spikes"),
             (_N,), "SpikingJelly frames_number=n, split_by='number'"),
    StepKind("split_by_time", "n frames of equal duration (the last takes the remainder)", ("events", "spikes"),
             (_N,), "SpikingJelly frames_number=n, split_by='time'"),
    StepKind("duration", "one frame per us microseconds from the first event", ("events", "spikes"), (_US,),
             "SpikingJelly duration=us", variable=True),
)}

TRANSFORMS: dict[str, StepKind] = {t.name: t for t in (
    StepKind("denoise", "drop events with no neighbour event within us microseconds", ("events",),
             (Arg("us", 10000.0, 0.0, inclusive=False, aliases={"ms": 1000.0}),), "tonic Denoise(filter_time=us)"),
    StepKind("downsample", "pool pixels (or channels) in groups of `factor`: event counts add up", ("events", "spikes"),
             (Arg("factor", None, 1.0, whole=True),), "tonic Downsample(spatial_factor=1/factor)"),
    StepKind("normalize", "(x - mean) / std per channel; the dataset's published mean and std unless given",
             ("images",), (Arg("mean"), Arg("std")), "torchvision Normalize(mean, std)"),
)}

AUGMENTS: dict[str, StepKind] = {a.name: a for a in (
    StepKind("crop", "a random crop of the image's size after zero padding", ("images",),
             (Arg("padding", 4.0, 0.0, whole=True),), "torchvision RandomCrop(size, padding)"),
    StepKind("flip", "a horizontal flip with probability p", ("images", "events"), (Arg("p", 0.5, 0.0),),
             "torchvision RandomHorizontalFlip(p), tonic RandomFlipLR(p)"),
    StepKind("shift", "a random translation by up to `max` pixels each way, zero filled", ("events",),
             (Arg("max", 4.0, 0.0, whole=True),), "the neuromorphic data augmentation's translation (Li et al. 2022)"),
    StepKind("drop_event", "drop a fraction p of the events at random", ("events", "spikes"), (Arg("p", 0.1, 0.0),),
             "tonic DropEvent(p)", on_events=True),
    StepKind("time_jitter", "move each event in time by a normal draw of `us` microseconds deviation",
             ("events", "spikes"), (Arg("us", 100.0, 0.0, aliases={"ms": 1000.0}),), "tonic TimeJitter(std=us)",
             on_events=True),
)}

TABLES = {"frames": BINNINGS, "transform": TRANSFORMS, "augment": AUGMENTS}


# ------------------------------------------------------------------ what a run's data gives the network
@dataclass(frozen=True)
class Problem:
    """A mismatch between the data and the network; `where` names the setting to point at (a network setting,
    'dataset', 'frames', 'transform', 'augment', or 'output')."""

    where: str
    message: str
    hint: str | None = None
    index: int | None = None  # which of the setting's steps it is about (a transform or augmentation list)


def step_values(step: ir.Step, kind: StepKind, T: int | None = None) -> dict:
    """A step's arguments by name, defaults filled in, aliases converted (`ms = 10` -> `us = 10000`); a missing
    frame count is T. Assumes the step passed `step_problems`."""
    given = dict(step.args)
    values = {}
    for arg in kind.args:
        value = given.get(arg.name)
        for alias, factor in arg.aliases.items():
            if alias in given:
                value = given[alias] * factor
        if value is None:
            value = T if arg.name == "n" else arg.default
        values[arg.name] = int(value) if arg.whole and value is not None else value
    return values


def step_problems(step: ir.Step, where: str, kind_of_data: Kind, title: str, index: int | None = None):
    return [Problem(p.where, p.message, p.hint, index) for p in _step_problems(step, where, kind_of_data, title)]


def _step_problems(step: ir.Step, where: str, kind_of_data: Kind, title: str) -> list[Problem]:
    table = TABLES[where]
    kind = table.get(step.name)
    if kind is None:
        from .source import did_you_mean

        return [Problem(where, f"unknown {_WHAT[where]} '{step.name}'",
                        did_you_mean(step.name, table) or f"{_WHAT[where]}s: {', '.join(table)}")]
    if kind_of_data not in kind.kinds:
        usable = [k for k, v in table.items() if kind_of_data in v.kinds]
        return [Problem(where, f"{_WHAT[where]} '{step.name}' works on {' and '.join(kind.kinds)}, but {title} "
                        f"gives {kind_of_data}", f"for {kind_of_data}: {', '.join(usable) or 'none'}")]
    names = {a.name for a in kind.args} | {al for a in kind.args for al in a.aliases}
    problems = []
    for key, value in step.args:
        if key not in names:
            problems.append(Problem(where, f"{_WHAT[where]} '{step.name}' has no argument '{key}'",
                                    f"its arguments: {', '.join(sorted(names)) or 'none'}"))
    for arg in kind.args:
        given = [(k, v) for k, v in step.args if k == arg.name or k in arg.aliases]
        if len(given) > 1:
            problems.append(Problem(where, f"'{step.name}' is given '{arg.name}' twice"))
            continue
        if not given:
            if arg.default is None and arg.name not in ("n", "mean", "std"):
                problems.append(Problem(where, f"'{step.name}' needs its argument '{arg.name}'",
                                        f"write e.g. {step.name}({arg.name} = ...)"))
            continue
        key, value = given[0]
        if arg.name in ("mean", "std"):
            if not isinstance(value, tuple) or not value or not all(isinstance(v, float) for v in value):
                problems.append(Problem(where, f"'{step.name}' {key} must be a list of numbers, one per channel"))
            continue
        ok = isinstance(value, float) and value == value and abs(value) != float("inf") and (
            value >= arg.low if arg.inclusive else value > arg.low) and (not arg.whole or value.is_integer())
        if not ok:
            want = "a whole number" if arg.whole else "a number"
            bound = f"{'>=' if arg.inclusive else '>'} {arg.low:g}"
            problems.append(Problem(where, f"'{step.name}' {key} must be {want} {bound}, not {_shown(value)}"))
    return problems


_WHAT = {"frames": "binning", "transform": "transform", "augment": "augmentation"}


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def frame_shape(data: Dataset, transforms: tuple[ir.Step, ...]) -> tuple[Shape | None, list[Problem]]:
    """A sample's (images) or a frame's (events, spikes) shape after the transforms."""
    shape = tuple(data.shape)
    problems = []
    for step in transforms:
        if step.name == "downsample" and step.name in TRANSFORMS:
            f = step_values(step, TRANSFORMS["downsample"])["factor"]
            sizes = shape[1:] if data.kind == "events" else shape
            if any(s % f for s in sizes):
                problems.append(Problem("transform", f"downsample factor {f} does not divide {data.title}'s "
                                        f"{'x'.join(map(str, sizes))} {'pixels' if data.kind == 'events' else 'channels'}",
                                        "choose a factor that divides the size"))
                continue
            shape = (shape[0], *(s // f for s in shape[1:])) if data.kind == "events" else tuple(s // f for s in shape)
        if step.name == "normalize" and data.kind == "images":
            values = step_values(step, TRANSFORMS["normalize"])
            for key in ("mean", "std"):
                given = values[key] or getattr(data, key)
                if len(given) != shape[0]:
                    problems.append(Problem("transform", f"normalize {key} has {len(given)} values for "
                                            f"{shape[0]} channels", "give one value per channel"))
                elif key == "std" and any(v == 0 for v in given):
                    problems.append(Problem("transform", "normalize std must not be 0"))
    return (None if problems else shape), problems


def data_problems(dataset: str, frames: ir.Step | None, transforms: tuple[ir.Step, ...], augments: tuple[ir.Step, ...],
                  encoder: str, T: int, input_shape: Shape, classes: int | None) -> list[Problem]:
    """Whether this data, binned, transformed and encoded so, gives what the network takes: the per-step input,
    the number of classes, the steps. `classes` None: the output's size is not known (not checked)."""
    from .encoders import ENCODERS
    from .source import did_you_mean

    data = DATASETS.get(dataset)
    if data is None:
        return [Problem("dataset", f"unknown dataset '{dataset}'",
                        did_you_mean(dataset, DATASETS) or f"datasets: {', '.join(DATASETS)}")]
    problems = []
    if frames is not None:
        if data.kind == "images":
            problems.append(Problem("frames", f"{data.title} holds images; 'frames' bins event and spike data",
                                    "remove the frames setting"))
        else:
            problems += step_problems(frames, "frames", data.kind, data.title)
    for where, steps in (("transform", transforms), ("augment", augments)):
        for i, step in enumerate(steps):
            problems += step_problems(step, where, data.kind, data.title, i)
    if problems:
        return problems
    shape, problems = frame_shape(data, transforms)
    code = ENCODERS.get(encoder)
    if code is None:
        return [*problems, Problem("encoder", f"unknown encoder '{encoder}'",
                                   did_you_mean(encoder, ENCODERS) or f"encoders: {', '.join(ENCODERS)}")]
    if shape is None:
        return problems
    gives = "images" if data.kind == "images" else "sequences"
    if code.takes != gives:
        usable = [n for n, e in ENCODERS.items() if e.takes == gives]
        return [Problem("encoder", f"the {encoder} encoder takes {code.takes}, but {data.title} gives {gives} "
                        f"({'images' if gives == 'images' else 'frames over time'})", f"use encoder = {usable[0]}"
                        + (f" (or {', '.join(usable[1:])})" if len(usable) > 1 else ""))]
    why = code.check(shape)
    if why is not None:
        return [Problem("encoder", why, "use another encoder")]
    step = code.step_shape(shape)
    if tuple(input_shape) != tuple(step):
        problems.append(Problem("input", f"{data.title} through the {encoder} encoder gives {list(step)} per step, "
                                f"but the network's input is {list(input_shape)}", f"set 'input = {list(step)}'"))
    if classes is not None and classes != data.classes:
        problems.append(Problem("output", f"{data.title} has {data.classes} classes, but the network's output has "
                                f"{classes}", f"end the network with {data.classes} outputs, e.g. linear({data.classes})"))
    steps = code.steps(shape)
    if steps is not None and T != steps:
        problems.append(Problem("T", f"the {encoder} encoder makes {steps} steps of {data.title}, but T is {T}",
                                f"set 'T = {steps}'"))
    binning = frames or data.frames
    if binning is not None and data.kind != "images":
        kind = BINNINGS[binning.name]
        n = step_values(binning, kind, T).get("n")
        if n is not None and n != T:
            problems.append(Problem("frames", f"{binning.name}({n}) makes {n} frames, but the network runs T = {T} "
                                    "steps", f"set 'T = {n}' or leave n out ({binning.name} makes T frames)"))
    return problems


def steps_value(steps) -> ir.Value:
    """Data steps (an `ir.Step`, its dump, or a list of them) as the value a train block writes: the inverse of
    what `assemble` reads (`time_window(us = 10000.0)`, `[crop(padding = 4.0), flip]`)."""
    if isinstance(steps, (list, tuple)):
        return ir.ListValue(items=tuple(steps_value(s) for s in steps))
    step = ir.Step.model_validate(steps) if isinstance(steps, dict) else steps
    if not step.args:
        return ir.Lit(value=step.name)
    arg = lambda v: ir.ListValue(items=tuple(ir.Lit(value=x) for x in v)) if isinstance(v, tuple) else ir.Lit(value=v)  # noqa
    return ir.CallValue(func=step.name, kwargs=tuple((k, arg(v)) for k, v in step.args))


def step_text(step: ir.Step, T: int | None = None) -> str:
    """`time_bins(n = 10)`: a step with its arguments as a run uses them (defaults filled in, n = T)."""
    table = next(t for t in TABLES.values() if step.name in t)
    values = step_values(step, table[step.name], T)
    shown = ", ".join(f"{k} = {_shown(float(v)) if isinstance(v, (int, float)) else list(v)}"
                      for k, v in values.items() if v is not None and v != ())
    return f"{step.name}({shown})" if shown else step.name


def describe(net: ir.Network) -> str | None:
    """One line on the data a network's train block names: the dataset, its binning and data steps."""
    t = net.train
    data = DATASETS.get(t.dataset) if t.dataset else None
    if data is None:
        return None
    parts = [f"{data.title} ({data.kind}, {data.classes} classes)"]
    binning = binning_of(data.name, t.frames)
    if binning is not None:
        parts.append(f"frames: {step_text(binning, net.T)} = {BINNINGS[binning.name].peer}")
    if t.transform:
        parts.append("transform: " + ", ".join(step_text(s) for s in t.transform))
    if t.augment:
        parts.append("augment: " + ", ".join(step_text(s) for s in t.augment))
    return "; ".join(parts)


def binning_of(dataset: str, frames: ir.Step | None) -> ir.Step | None:
    """The binning a run uses: the train block's, else the dataset's default (None for images)."""
    data = DATASETS[dataset]
    return None if data.kind == "images" else (frames or data.frames)
