"""`snnc.surrogate(name, **args)`: the generated surrogate code for one surrogate, built at run time."""
from __future__ import annotations

from functools import lru_cache

from ..compiler import ir
from ..compiler.codegen import surrogate_source
from ..compiler.source import SnncError
from ..compiler.surrogates import canonical, grad_expr
from . import support


def make(name: str, **args) -> support.Surrogate:
    key = canonical(name)
    if key is None:
        grad_expr(ir.Surrogate(name=name))  # raises the located "unknown surrogate" error with a suggestion
        raise SnncError(f"unknown surrogate '{name}'")
    return _make(key, tuple(sorted((k, float(v)) for k, v in args.items())))


@lru_cache(maxsize=None)
def _make(name: str, args: tuple) -> support.Surrogate:
    spec = ir.Surrogate(name=name, args=args)
    grad_expr(spec)  # validate names and values before generating code
    namespace = {"rt": support, "torch": __import__("torch"), "math": __import__("math")}
    exec(compile(surrogate_source(spec), f"<snnc surrogate {name}>", "exec"), namespace)  # code printed from the IR
    return namespace["SURROGATE_0"]
