"""snnc: a declarative compiler for spiking neural networks."""
import os as _os

from .started import IMPORTED_AT  # noqa: F401  (first: a run's start where /proc cannot say)

# OpenMP threads that spin while waiting collapse when another process wants the same cores (measured: 541
# images/s against 3,155 with passive waiting, fc2_mnist beside a busy process on 2 cores). snnc's host kernels
# and, when snnc is imported before torch, torch's own threads wait passively unless the user says otherwise.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .compiler.source import SnncError  # noqa: E402

from .version import __version__  # noqa: E402
__all__ = ["SnncError", "load", "fit", "functional", "surrogate", "__version__"]


def load(path, **kwargs):
    """Parse, check, generate and import a `.snn` file (cached by content hash)."""
    from .runtime.loader import load as _load

    return _load(path, **kwargs)


def fit(model, train, test, **kwargs):
    """Train a network of a `.snn` file on your own datasets (`snnc.train.api.fit`: every option `snnc train`
    has, as keywords)."""
    from .train.api import fit as _fit

    return _fit(model, train, test, **kwargs)


def surrogate(name: str, **args):
    """A surrogate spike function usable as `surrogate_function=` of any generated neuron (and in fused kernels)."""
    from .runtime.surrogate import make

    return make(name, **args)


def __getattr__(name):  # `snnc.functional` without importing torch for `snnc check`
    if name == "functional":
        import importlib

        return importlib.import_module(".functional", __name__)
    raise AttributeError(f"module 'snnc' has no attribute {name!r}")
