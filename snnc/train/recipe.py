"""What a training run is: its settings, their defaults and choices, and the datasets it can train on.

Free of torch, so that `snnc --help` and `snnc check` start without it. A setting comes from the command
line (`TrainOptions`), else the resumed checkpoint, else the model's `train { ... }` block, else `DEFAULTS`.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..compiler.datasets import DATASETS

DEFAULTS = {
    "epochs": 10, "batch_size": 64, "lr": 1e-3, "opt": "adam", "momentum": 0.9, "lr_schedule": "none",
    "loss": "mse", "dataset": "mnist", "seed": 0, "amp": False, "weight_decay": 0.0, "val_split": 0.1,
    "frames": None, "transform": (), "augment": (),  # the data steps (None: the dataset's own binning)
}
CHOICES = {"opt": ("adam", "sgd"), "lr_schedule": ("none", "cosine"), "loss": ("mse", "ce"),
           "dataset": tuple(DATASETS)}
# Settings that shape the training trajectory: fixed for the life of a run.
RUN_KEYS = ("T", *DEFAULTS, "subset", "test_subset")


@dataclass
class TrainOptions:
    """Command-line options; None means: from the checkpoint (resume), else the model's recipe, else DEFAULTS."""

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
