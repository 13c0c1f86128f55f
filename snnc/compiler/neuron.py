"""A neuron's configuration and its update rules as IR: what every later stage agrees on.

The membrane is the state named `v` (`MEMBRANE`); the threshold acts on it and the reset rule resets it.
A `Config` fixes what is folded into generated kernels at compile time: hard or soft reset, detach_reset,
the values of boolean parameters and the surrogate. `charge_updates` and `reset_updates` are the neuron's
equations under a config, as IR (no algebra here: `derive` differentiates them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import ir
from .exprs import fold, substitute

MEMBRANE = "v"
THRESHOLD = "v_threshold"


def threshold(neuron: ir.Neuron) -> ir.Expr:
    """What the membrane is compared with: the parameter v_threshold, a learnable v_threshold, or a state
    v_threshold (an adaptive threshold) at its charged value `_h_v_threshold`."""
    if any(s.name == THRESHOLD for s in neuron.states):
        return ir.Var(name=f"_h_{THRESHOLD}")
    return ir.Var(name=THRESHOLD)


@dataclass(frozen=True)
class Config:
    soft_reset: bool = False
    detach_reset: bool = False
    bools: tuple[tuple[str, bool], ...] = ()
    surrogate: ir.Surrogate | None = None  # None: the neuron's own
    output: str = "spike"  # what the layer emits: "spike", or "v" (its membrane potential after the reset)

    def key(self) -> str:
        sg = self.surrogate
        sg_text = "" if sg is None else f"{sg.name}{sg.args}"
        out = "" if self.output == "spike" else f"-out_{self.output}"
        return f"{'soft' if self.soft_reset else 'hard'}-{int(self.detach_reset)}-{self.bools}-{sg_text}{out}"


@dataclass(frozen=True)
class Plan:
    """One neuron under one config, derived (`derive.plan`): every kernel target is rendered from this."""

    neuron: ir.Neuron
    config: Config
    states: tuple[str, ...]
    scalars: tuple[str, ...]  # float parameters the kernels take at run time
    learnables: tuple[str, ...]
    charge: tuple[tuple[str, ir.Expr], ...]  # sequential, in place: state = expr
    reset: tuple[tuple[str, ir.Expr], ...]  # post-reset state from _h_<k>, _spike, _spike_r
    surrogate_grad: ir.Expr  # of _h_v and the threshold
    backward: tuple[tuple[str, ir.Expr], ...]  # _sg, _gh_<k>, then _gp_<k>, _g_x, _gl_<θ>
    saved: tuple[str, ...]  # states whose charged value H[t] the backward reads
    prev: tuple[tuple[str, ir.Expr], ...]  # previous state from _hp_<k>, _sp (step t-1)
    needs_x: bool
    init: tuple[tuple[str, ir.Expr], ...] = field(default=())
    threshold: ir.Expr = field(default_factory=lambda: ir.Var(name="v_threshold"))  # of _h_<k> and parameters

    @property
    def threshold_prev(self) -> ir.Expr:
        """The threshold of step t - 1 (from `_hp_<k>`), for the spike the backward rebuilds there."""
        return substitute(self.threshold, {f"_h_{s}": ir.Var(name=f"_hp_{s}") for s in self.states})

    @property
    def grad_names(self) -> dict[str, str]:
        return {"x": "_g_x", **{s: f"_gp_{s}" for s in self.states}, **{l: f"_gl_{l}" for l in self.learnables}}


def default_config(neuron: ir.Neuron) -> Config:
    bools = tuple((p.name, bool(p.default.value)) for p in neuron.params
                  if p.type == "bool" and p.name != "detach_reset" and isinstance(p.default, ir.Bool))
    v_reset = neuron.param("v_reset")
    detach = neuron.param("detach_reset")
    return Config(
        soft_reset=v_reset is None or v_reset.default is None,
        detach_reset=bool(detach and isinstance(detach.default, ir.Bool) and detach.default.value),
        bools=bools,
        output="v" if neuron.output == "membrane" else "spike",
    )


def layer_config(neuron: ir.Neuron, overrides: tuple[tuple[str, ir.Value], ...]) -> Config:
    """The configuration of a network's neuron layer: the neuron's defaults, then the layer's arguments."""
    from .surrogates import surrogate_from_value

    cfg = default_config(neuron)
    given = dict(overrides)
    bools = dict(cfg.bools)
    soft, detach, surrogate = cfg.soft_reset, cfg.detach_reset, None
    for key, value in given.items():
        v = value.value if isinstance(value, ir.Lit) else None
        if key == "v_reset":
            soft = v is None
        elif key == "detach_reset":
            detach = bool(v)
        elif key in bools:
            bools[key] = bool(v)
        elif key == "surrogate":
            surrogate = surrogate_from_value(value)
    return Config(soft_reset=soft, detach_reset=detach, bools=tuple(bools.items()), surrogate=surrogate,
                  output=cfg.output)


def specialise(e: ir.Expr, cfg: Config) -> ir.Expr:
    env = {name: ir.Bool(value=value) for name, value in cfg.bools}
    env["detach_reset"] = ir.Bool(value=cfg.detach_reset)
    if cfg.soft_reset:
        env["v_reset"] = ir.Num(value=0.0)
    return fold(substitute(e, env))


def charge_updates(neuron: ir.Neuron, cfg: Config) -> tuple[tuple[str, ir.Expr], ...]:
    out = []
    for a in neuron.charge:
        value = a.value if a.op == "=" else ir.BinOp(op="+", left=ir.Var(name=a.target), right=a.value)
        out.append((a.target, specialise(value, cfg)))
    return tuple(out)


def reset_updates(neuron: ir.Neuron, cfg: Config) -> tuple[tuple[str, ir.Expr], ...]:
    """The states after firing, from the charged values `_h_<k>` and the spike (`_spike_r` where
    detach_reset applies). A non-spiking neuron never fires: its states stay as charged."""
    h = lambda s: ir.Var(name=f"_h_{s}")  # noqa: E731
    if neuron.output == "membrane":
        return tuple((s.name, h(s.name)) for s in neuron.states)
    spike, spike_r = ir.Var(name="_spike"), ir.Var(name="_spike_r")
    one = ir.Num(value=1.0)
    if cfg.soft_reset:  # V = H - V_th * S
        v = ir.BinOp(op="-", left=h(MEMBRANE), right=ir.BinOp(op="*", left=spike_r, right=threshold(neuron)))
    else:  # V = S * V_reset + (1 - S) * H
        v = ir.BinOp(op="+", left=ir.BinOp(op="*", left=spike_r, right=ir.Var(name="v_reset")),
                     right=ir.BinOp(op="*", left=ir.BinOp(op="-", left=one, right=spike_r), right=h(MEMBRANE)))
    values = {s.name: h(s.name) for s in neuron.states}
    values[MEMBRANE] = v
    env = {s.name: h(s.name) for s in neuron.states}  # on-spike updates read the charged values
    for a in neuron.on_spike:
        e = specialise(substitute(a.value, env), cfg)
        if a.op == "+=":  # s + S * e
            values[a.target] = ir.BinOp(op="+", left=values[a.target], right=ir.BinOp(op="*", left=spike, right=e))
        else:  # S * e + (1 - S) * s
            values[a.target] = ir.BinOp(op="+", left=ir.BinOp(op="*", left=spike, right=e),
                                        right=ir.BinOp(op="*", left=ir.BinOp(op="-", left=one, right=spike),
                                                       right=values[a.target]))
    return tuple((s.name, values[s.name]) for s in neuron.states)


def emitted_neurons(module: ir.Module) -> list[ir.Neuron]:
    """The neurons a file's generated package defines: its own (`own_neurons`) and those its networks' layers
    use, in the module's order. An imported neuron no network uses stays in its library."""
    keep = {n.name for n in own_neurons(module)} | {
        layer.op.neuron for net in module.networks for layer in net.layers if isinstance(layer.op, ir.NeuronLayer)}
    return [n for n in module.neurons if n.name in keep]


def own_neurons(module: ir.Module) -> list[ir.Neuron]:
    """The neurons a file defines itself, or, for a file that only imports (a library), the imported ones."""
    own = [n for n in module.neurons if n.file == module.file]
    return own if own or module.networks else list(module.neurons)
