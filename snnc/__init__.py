"""snnc: a declarative compiler for spiking neural networks."""
from .source import SnncError

__version__ = "0.1.0"
__all__ = ["SnncError", "load", "functional", "__version__"]


def load(path, **kwargs):
    """Parse, check, generate and import a `.snn` file (cached by content hash)."""
    from .runtime.loader import load as _load

    return _load(path, **kwargs)


def __getattr__(name):
    if name == "functional":
        from . import functional

        return functional
    raise AttributeError(name)
