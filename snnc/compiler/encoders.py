"""The encoder table: how a dataset's samples become a network's input over time.

One row per encoder, read by `assemble` (a network's default encoder comes from its dataset's row), `check`
(does the dataset, through this encoder, give what the network's `input` and `T` say?), the runner (the
function that encodes, `snnc.train.encode.<function>`) and the docs. Torch-free: `snnc check` needs no torch.

An encoder takes either static images ([C, H, W], values in [0, 1] or normalised) or sequences (a sample that
already has a time axis: event frames, binned spikes). Adding one is a row here and its function in
`snnc/train/encode.py`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Encoder:
    name: str
    doc: str
    takes: Literal["images", "sequences"]
    steps: Callable[[Shape], int | None]  # the T the encoder fixes for a sample shape (None: any T)
    step_shape: Callable[[Shape], Shape]  # the network's input per step for a sample shape
    function: str  # its function in snnc.train.encode

    def check(self, shape: Shape) -> str | None:
        """Why this encoder cannot take samples of `shape`, or None."""
        if self.name in ("rows", "pixels", "pixels_permuted") and len(shape) != 3:
            return f"the {self.name} encoder reads [C, H, W] images, not samples of shape {list(shape)}"
        return None


def _same(shape: Shape) -> Shape:
    return tuple(shape)


def _any(shape: Shape) -> None:
    return None


ENCODERS: dict[str, Encoder] = {e.name: e for e in (
    Encoder("poisson", "a Bernoulli spike per pixel and step with probability = intensity", "images", _any, _same,
            "poisson_code"),
    Encoder("direct", "the image itself at every step (the first layer encodes)", "images", _any, _same, "direct"),
    Encoder("latency", "one spike per pixel, brighter earlier", "images", _any, _same, "latency"),
    Encoder("rows", "one image row per step (sequential MNIST, T = height)", "images",
            lambda s: s[1], lambda s: (s[0] * s[2],), "rows"),
    Encoder("pixels", "one pixel per step (pixel-by-pixel sequential MNIST, T = height x width)", "images",
            lambda s: s[1] * s[2], lambda s: (s[0],), "pixels"),
    Encoder("pixels_permuted", "one pixel per step in a fixed random order (permuted sequential MNIST)", "images",
            lambda s: s[1] * s[2], lambda s: (s[0],), "pixels_permuted"),
    Encoder("frames", "a sequence as it is: frame t at step t (event frames, binned spikes; counts as values)",
            "sequences", _any, _same, "frames"),
)}
