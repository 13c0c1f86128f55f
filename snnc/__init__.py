"""snnc: a declarative compiler for spiking neural networks."""
from .compiler.source import SnncError

__version__ = "0.1.0"
__all__ = ["SnncError", "load", "functional", "surrogate", "__version__"]


def load(path, **kwargs):
    """Parse, check, generate and import a `.snn` file (cached by content hash)."""
    from .runtime.loader import load as _load

    return _load(path, **kwargs)


def surrogate(name: str, **args):
    """A surrogate spike function usable as `surrogate_function=` of any generated neuron (and in fused kernels)."""
    from .runtime.surrogate import make

    return make(name, **args)


def __getattr__(name):  # `snnc.functional` without importing torch for `snnc check`
    if name == "functional":
        import importlib

        return importlib.import_module(".functional", __name__)
    raise AttributeError(f"module 'snnc' has no attribute {name!r}")
