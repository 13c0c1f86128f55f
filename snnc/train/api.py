"""`snnc.fit`: a network of a `.snn` file trained on your own data, with everything `snnc train` does."""
from __future__ import annotations

from pathlib import Path

from .data.custom import from_torch
from .experiment import from_library
from .recipe import TrainOptions


def fit(model, train, test, *, network: str | None = None, kind: str = "images", shape=None, frames=None,
        valid=None, name: str = "custom", **options) -> dict:
    """Train the network of `model` (a `.snn` path or `snnc.load`'s result) on `train` and `test`, any
    `torch.utils.data.Dataset` of `(x, label)` items (or tonic datasets of events, `kind="events"` with a
    binning `frames`), with the runner's validation split, checkpoints, exact resume (`resume=`), metrics,
    plots and data-parallel training (`nproc=`). `options` are `TrainOptions` fields (`epochs=`, `lr=`,
    `out_dir=`, `max_steps=`, ...). Returns what `snnc train` prints: the metrics and where the run is."""
    from ..runtime.loader import load

    lib = load(model) if isinstance(model, (str, Path)) else model
    cls = lib.network_class(network)
    data = from_torch(train, test, classes=cls.NUM_CLASSES, kind=kind, shape=shape, frames=frames, T=cls.T,
                      valid=valid, name=name)
    from .runner import train as run

    return run(from_library(lib, network, data=data), TrainOptions(**options))
