"""From a generated neuron module to the step plan its kernels are built from.

A module names its neuron (`SPEC_JSON`, the IR) and its configuration (`config_key()`: reset mode,
detach_reset, bool parameters, output, surrogate); together they are the `spec` string the kernels are
specialised on and the custom operators take. Plans are derived once per spec and process.
"""
from __future__ import annotations

import math
import threading
from functools import lru_cache

import torch

from ..compiler import ir
from ..compiler.neuron import Config, Plan
from ..compiler.printers import PythonPrinter
from ..compiler.source import SnncError
from . import support

_LOCK = threading.Lock()


def spec_of(module) -> str:
    """The kernel spec of a generated neuron module: its neuron's IR and its current configuration."""
    if getattr(module.surrogate_function, "spec", None) is None:
        raise SnncError(f"{type(module).__name__}: the fused backends need an snnc surrogate "
                        "(snnc.surrogate(name, ...)), not an arbitrary Python function",
                        hint="pass surrogate_function=snnc.surrogate('atan', alpha=2.0), or use backend='torch'")
    return module.SPEC_JSON + "\n" + module.config_key()


def config_from_key(key: str) -> Config:
    """Inverse of `NeuronBase.config_key()`."""
    fields = dict(part.split("=", 1) for part in key.split(";", 4))
    bools = tuple((k, v == "1") for k, v in (b.split("=") for b in fields["bools"].split(",") if b))
    surrogate = ir.Surrogate.model_validate_json(fields["sg"])
    return Config(soft_reset=fields["soft"] == "1", detach_reset=fields["detach"] == "1", bools=bools,
                  surrogate=surrogate, output=fields["out"])


def config_key(neuron: ir.Neuron, cfg: Config) -> str:
    """The key a module with this configuration would give (`NeuronBase.config_key()`)."""
    bools = ",".join(f"{b}={int(v)}" for b, v in cfg.bools)
    sg = (cfg.surrogate or neuron.surrogate).model_dump_json()
    return f"soft={int(cfg.soft_reset)};detach={int(cfg.detach_reset)};bools={bools};out={cfg.output};sg={sg}"


def spec_for(p: Plan) -> str:
    """The kernel spec of a plan; the plan is registered under it, so `plan_for` returns this very plan."""
    spec = p.neuron.model_dump_json() + "\n" + config_key(p.neuron, p.config)
    with _LOCK:
        _PLANS.setdefault(spec, p)
    return spec


def from_json(adapter, text: str | bytes):
    """A model read back from its JSON: through Python's parser, whose depth only the recursion limit bounds
    (pydantic's own stops at 200 levels of JSON, which 100 levels of calls exceed)."""
    import json

    return adapter.validate_python(json.loads(text))


@lru_cache(maxsize=None)
def neuron_of(spec_json: str) -> ir.Neuron:
    return from_json(ir.Neuron.__pydantic_validator__, spec_json)


_PLANS: dict[str, Plan] = {}


def plan_for(spec: str) -> Plan:
    """The plan of a kernel spec (`spec_of`): derived once per process, and read from the cache after the
    first process (deriving needs SymPy: half a second to import, and more to differentiate)."""
    hit = _PLANS.get(spec)
    if hit is not None:
        return hit
    with _LOCK:
        if spec not in _PLANS:
            _PLANS[spec] = _cached_plan(spec)
        return _PLANS[spec]


@lru_cache(maxsize=1)
def _plan_json():
    from pydantic import TypeAdapter

    return TypeAdapter(Plan)


def _cached_plan(spec: str) -> Plan:
    from .cache import digest, generator_hash, subdir, trusted
    from .files import write_atomic

    path = trusted(subdir("plans") / f"{digest(generator_hash(), spec)}.json")
    try:
        return from_json(_plan_json(), path.read_bytes())
    except (OSError, ValueError, RecursionError):  # not there yet (or unreadable: derived again and rewritten)
        pass
    from ..compiler.derive import plan as make_plan

    neuron_json, key = spec.split("\n", 1)
    p = make_plan(neuron_of(neuron_json), config_from_key(key))
    try:
        data = _plan_json().dump_json(p)
    except ValueError:  # derived expressions nesting past pydantic's serialiser depth: derived in each process
        return p
    write_atomic(path, data)
    return p


def scalar_args(p: Plan, values: dict) -> list[float]:
    """The plan's runtime scalars, in kernel order, from a name -> value dict."""
    missing = [s for s in p.scalars if values.get(s) is None]
    if missing:
        raise SnncError(f"neuron '{p.neuron.name}': no value for parameter(s) {', '.join(missing)}",
                        hint="the fused kernels need every float parameter the neuron's equations use")
    return [float(values[s]) for s in p.scalars]


def initial_states(p: Plan, values: dict, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Fresh states shaped like one time step of the input, from the neuron's `state k = <init>` expressions."""
    printer = PythonPrinter()
    env = {"math": math, "rt": support, **{k: float(v) for k, v in values.items() if v is not None}}
    out = []
    for _, e in p.init:
        value = float(eval(printer(e), env))  # noqa: S307 - printed from the checked IR
        out.append(torch.full(like.shape, value, dtype=torch.float32, device=like.device))
    return tuple(out)
