"""What a training run is: its settings, their defaults and choices, and the datasets it can train on.

Free of torch, so that `snnc --help` and `snnc check` start without it. A setting comes from the command
line (`TrainOptions`), else the resumed checkpoint, else the model's `train { ... }` block, else its default:
the train block's own (`ir.Train`, the one home of the defaults, which `snnc check` fills into every network).
`DEFAULTS` and `RUN_KEYS` load the IR (pydantic) at first use, which the CLI's argument parsing never makes.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

CHOICES = {"opt": ("adam", "sgd"), "lr_schedule": ("none", "cosine"), "loss": ("mse", "ce"),
           "memory": ("fast", "balanced", "min"), "gradient": ("bptt", "sltt")}  # datasets: their table


@lru_cache(maxsize=1)
def defaults() -> dict:
    """Every train-block setting with its default, as `ir.Train` declares it."""
    from ..compiler import ir

    return ir.Train().model_dump()


def __getattr__(name: str):
    if name == "DEFAULTS":
        return defaults()
    if name == "RUN_KEYS":  # settings that shape the training trajectory: fixed for the life of a run
        return ("T", *defaults(), "subset", "test_subset")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class TrainOptions:
    """Command-line options; None means: from the checkpoint (resume), else the model's recipe (whose settings
    default to `DEFAULTS`)."""

    T: int | None = None
    batch_size: int | None = None
    epochs: int | None = None
    lr: float | None = None
    opt: str | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    lr_schedule: str | None = None
    loss: str | None = None
    dataset: str | None = None
    seed: int | None = None
    amp: bool | None = None
    val_split: float | None = None
    memory: str | None = None  # what backward keeps: fast, balanced, min (compiler/memory.py); bit-identical
    gradient: str | None = None  # bptt, or online: sltt (runtime/online.py)
    delay_sigma: tuple | None = None  # learnable delays' schedule (see ir.Train)
    delay_epochs: int | None = None
    delay_lr: float | None = None
    subset: int | None = None
    test_subset: int | None = None
    frames: dict | None = None  # data steps as the train block writes them (ir.Step dumps); None: the recipe's
    transform: tuple | None = None
    augment: tuple | None = None
    max_steps: int | None = None  # a smoke run: at most this many training batches, and evaluation batches
    device: str = "auto"
    backend: str | None = None
    data_dir: str | None = None
    out_dir: str | None = None
    resume: str | None = None
    workers: int | None = None
    data_workers: int | None = None  # loader processes (None: by the data's cost, see train/loader.py)
    nproc: int = 1
    download: bool = False
    quiet: bool = False
    overwrite: bool = False
    plots: bool = True
    fuse_input: bool = True  # Poisson encoder + first linear layer as one kernel (CPU, fused neuron backends)
