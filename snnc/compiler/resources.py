"""Find the grammar and templates, in a checkout or an installed wheel."""
from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
_PACKAGE = _HERE.parent


def resource_dir(name: str) -> Path:
    """`grammars` or `templates`: <repo>/<name> in a checkout, snnc/_data/<name> in a wheel."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"snnc installation is missing its {name}/ folder")


LIBRARY_PREFIX = "snnc."


def library() -> dict[str, Path]:
    """The bundled `.snn` library by import name: {'snnc.neurons': <path>, ...} (snnc/lib/*.snn)."""
    return {LIBRARY_PREFIX + p.stem: p for p in sorted((_PACKAGE / "lib").glob("*.snn"))}


def library_module_of(name: str) -> str | None:
    """The library module ('snnc.neurons') that defines a neuron or block `name`, if one does (read as text:
    this serves error messages only)."""
    import re

    pattern = re.compile(rf"^\s*(neuron|block)\s+{re.escape(name)}\b", re.M)
    return next((module for module, path in library().items() if pattern.search(path.read_text())), None)
