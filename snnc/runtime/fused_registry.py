"""Plug snnc's fused backends into the shared runtime (`support.FUSED`)."""
from __future__ import annotations

from . import support


def install() -> None:
    if support.FUSED:
        return
    try:
        from .fused import multi_step
    except ImportError:  # fused backends not built into this installation
        return
    for backend in ("cpp", "cupy"):
        support.FUSED[backend] = multi_step
