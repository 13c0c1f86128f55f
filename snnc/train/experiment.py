"""What the runner trains: a network class and its recipe, from a loaded `.snn` file or any module."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from ..runtime import support


@dataclass(frozen=True)
class Experiment:
    """What the compiler hands the runner for one network."""

    name: str
    make_net: Callable[[], torch.nn.Module]
    input_shape: tuple[int, ...]
    num_classes: int
    T: int
    encoder: str
    readout: str
    recipe: dict
    model_hash: str
    reset: Callable[[torch.nn.Module], None] = support.reset_net
    set_backend: Callable[[torch.nn.Module, str | None], None] = support.set_backend
    graph: tuple = field(default=())  # (node, layer, inputs) per node, when the network is generated
    data: object = None  # a user's own data (snnc.train.data.custom.from_torch) instead of the recipe's dataset


def from_library(lib, name: str | None = None, data=None) -> Experiment:
    """The experiment of a network in a loaded `.snn` file (`snnc.load(path)`), on the dataset its recipe names
    or on `data` (a user's own, from `snnc.train.data.custom.from_torch`)."""
    cls = lib.network_class(name)
    return Experiment(
        name=cls.__name__, make_net=cls, input_shape=tuple(cls.INPUT_SHAPE), num_classes=cls.NUM_CLASSES,
        T=cls.T, encoder=cls.ENCODER, readout=cls.READOUT, recipe=dict(cls.TRAIN), model_hash=lib.model_hash(name),
        graph=tuple(cls.GRAPH), data=data,
    )
