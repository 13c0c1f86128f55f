"""Online gradient modes (placeholder until implemented): only BPTT."""
from __future__ import annotations

MODES = ("bptt",)


def apply(net, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"gradient mode {mode!r} is not available; use one of {', '.join(MODES)}")
