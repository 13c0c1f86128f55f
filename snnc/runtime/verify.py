"""Check the fused kernels against eager PyTorch autograd, neuron by neuron.

The reference is built from the same `Plan` the kernels are generated from,
printed with `PythonPrinter` and differentiated by autograd (spike: Heaviside
forward, the plan's surrogate backward; `detach_reset` detaches the spike in
the reset). Every neuron of a file runs in its default configuration and in
the four hard/soft reset x detach_reset variants, on random inputs scaled so
that the neurons fire, on every requested backend that is available here, and
(backend "torch") the generated PyTorch modules are checked against the same
reference when `snnc.load` can build them.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from ..compiler import ir
from ..compiler.derive import MEMBRANE, Config, Plan, default_config, plan as make_plan
from ..compiler.neuron import emitted_neurons
from ..compiler.printers import PythonPrinter
from ..compiler.surrogates import grad_expr
from ..compiler.source import SnncError
from . import support

__all__ = ["VerifyResult", "verify", "reference_multi_step", "default_values", "learnable_defaults", "configs",
           "backend_available", "compare", "random_input", "generated_neurons", "generated_runner", "format_table",
           "DEFAULT_SHAPES"]

DEFAULT_SHAPES = ((8, 3, 37), (1, 5), (16, 1030))  # [T, ...]: odd sizes, T = 1, N past one host block
TOLERANCE = {"float32": 1e-5, "float16": 2e-3}  # max |Δ| / max |reference|; fp16 learnables: a derived bound


@dataclass
class VerifyResult:
    neuron: str
    config: str
    backend: str
    dtype: str = "float32"
    shape: tuple = ()
    status: str = "ok"  # ok | fail | skipped | error
    reason: str = ""
    spike_mismatches: int = 0
    spike_rate: float = 0.0
    max_dv: float = 0.0  # max |Δ final state| over all states, absolute
    grad_x: float = 0.0  # max |Δ| / max |reference|, per gradient
    grad_init: float = 0.0
    grad_learnables: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "skipped")

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "error")

    def row(self) -> tuple[str, ...]:
        if self.status in ("skipped", "error") and not self.shape:
            return (self.neuron, self.config, self.backend, self.dtype, "-", self.status, "", "", "", "", "",
                    self.reason)
        return (self.neuron, self.config, self.backend, self.dtype, "x".join(map(str, self.shape)), self.status,
                str(self.spike_mismatches), f"{self.max_dv:.1e}", f"{self.grad_x:.1e}", f"{self.grad_init:.1e}",
                f"{self.grad_learnables:.1e}" if self.details.get("learnables", 1) else "-",
                self.reason)

    def __str__(self) -> str:
        return "  ".join(x for x in self.row() if x)


HEADER = ("neuron", "config", "backend", "dtype", "shape", "status", "spikes≠", "max|Δv|", "grad x", "grad init",
          "grad θ", "note")


def format_table(results: list[VerifyResult]) -> str:
    """The results as an aligned text table (gradient columns: max |Δ| / max |reference|)."""
    rows = [HEADER, *(r.row() for r in results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + ("  " + r[-1] if r[-1] else "")
             for r in rows]
    return "\n".join(line.rstrip() for line in lines)


# ------------------------------------------------------------------ values
def _eval_scalar(e: ir.Expr, env: dict) -> float:
    return float(eval(PythonPrinter()(e), {"math": math, "rt": support, **env}))  # noqa: S307 - printed from the checked IR


def default_values(neuron: ir.Neuron, cfg: Config | None = None) -> dict[str, float]:
    """Float parameters at their declared defaults (v_reset 0.0 when a hard reset needs one it lacks)."""
    env: dict[str, float] = {}
    for prm in neuron.params:
        if prm.type == "float" and prm.default is not None:
            env[prm.name] = _eval_scalar(prm.default, env)
    if cfg is not None and not cfg.soft_reset and "v_reset" not in env:
        env["v_reset"] = 0.0
    return env


def learnable_defaults(neuron: ir.Neuron, values: dict) -> dict[str, float]:
    return {l.name: _eval_scalar(l.init, dict(values)) for l in neuron.learnables}


def configs(neuron: ir.Neuron) -> list[Config]:
    """The default configuration, then hard/soft reset x detach_reset, then the membrane as the output."""
    base = default_config(neuron)
    out = [base]
    for soft in (False, True):
        for detach in (False, True):
            c = dataclasses.replace(base, soft_reset=soft, detach_reset=detach)
            if c not in out:
                out.append(c)
    membrane = dataclasses.replace(base, output="v")
    if membrane not in out:
        out.append(membrane)
    return out


# ------------------------------------------------------------------ the eager reference
class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, threshold, grad_fn):
        ctx.save_for_backward(h)
        ctx.grad_fn = grad_fn
        return (h >= threshold).to(h.dtype)

    @staticmethod
    def backward(ctx, g):
        (h,) = ctx.saved_tensors
        return g * ctx.grad_fn(h), None, None


def reference_multi_step(p: Plan, x_seq: torch.Tensor, states: tuple, scalars: dict, learnables: tuple = ()):
    """Eager autograd over T steps from the plan's expressions: (output_seq, final_states, H_seq of the membrane).
    The output is the spike, or for a configuration with output "v" the membrane potential after the reset."""
    tensors = {"x", *p.states, *(f"_h_{s}" for s in p.states), "_spike", "_spike_r", *p.learnables,
               *(t for t, _ in p.charge)}
    printer = PythonPrinter(tensors=tensors)
    code = lambda e: compile(printer(e), "<snnc reference>", "eval")  # noqa: E731
    charge = [(t, code(e)) for t, e in p.charge]
    reset = [(t, code(e)) for t, e in p.reset]
    sg_code = compile(PythonPrinter(tensors={"x"})(grad_expr(p.config.surrogate or p.neuron.surrogate)),
                      "<snnc surrogate>", "eval")
    base = {"torch": torch, "math": math, "rt": support,
            **{k: float(v) for k, v in scalars.items() if v is not None},
            **dict(zip(p.learnables, learnables))}
    threshold_code = code(p.threshold)

    def grad_fn(z):  # the surrogate's derivative at z = H_v - threshold
        out = eval(sg_code, {**base, "x": z})  # noqa: S307
        return out if isinstance(out, torch.Tensor) else torch.full_like(z, float(out))

    cur = dict(zip(p.states, states))
    spikes, hs = [], []
    for t in range(x_seq.shape[0]):
        env = {**base, "x": x_seq[t], **cur}
        for target, c in charge:
            env[target] = eval(c, env)  # noqa: S307
        for s in p.states:
            env[f"_h_{s}"] = env[s]
        spike = _Spike.apply(env[f"_h_{MEMBRANE}"] - eval(threshold_code, env), 0.0, grad_fn)  # noqa: S307
        env["_spike"] = spike
        env["_spike_r"] = spike.detach() if p.config.detach_reset else spike
        cur = {}
        for target, c in reset:
            value = eval(c, env)  # noqa: S307
            cur[target] = value if isinstance(value, torch.Tensor) else torch.full_like(spike, float(value))
        spikes.append(cur[MEMBRANE] if p.config.output == "v" else spike)
        hs.append(env[f"_h_{MEMBRANE}"])
    if not spikes:
        return x_seq.clone(), tuple(cur[s] for s in p.states), x_seq.clone()
    return torch.stack(spikes), tuple(cur[s] for s in p.states), torch.stack(hs)


# ------------------------------------------------------------------ running and comparing
def backend_available(backend: str) -> tuple[bool, str]:
    from .backends import problem

    why = problem(backend)
    return why is None, why or ""


def backend_device(backend: str) -> str:
    from .backends import get

    return "cuda" if get(backend).device == "cuda" else "cpu"


def _run_backend(backend: str, p: Plan, x, states, scalars, learnables):
    from .ops import run_plan

    return run_plan(p, backend, x, states, scalars, learnables)


def random_input(p: Plan, shape: tuple, scalars: dict, learnables: dict, seed: int = 0,
                 states: tuple | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """x [T, ...] and initial states, scaled so that between 5% and 60% of the neuron-steps spike if possible."""
    from .plans import initial_states

    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(shape, generator=g)
    fresh = initial_states(p, scalars, noise[0]) if states is None else states
    inits = tuple(f + 0.1 * torch.randn(f.shape, generator=g) for f in fresh)
    learn = tuple(torch.tensor(learnables[l]) for l in p.learnables)
    threshold = float(scalars.get("v_threshold", 1.0))  # a scale for the input (a state threshold: 1)
    best, best_gap = None, math.inf
    with torch.no_grad():
        for scale in (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0):
            x = scale * abs(threshold or 1.0) * (noise + 0.5)
            spikes, finals, _ = reference_multi_step(p, x, inits, scalars, learn)
            if not all(torch.isfinite(f).all() for f in finals):
                continue
            rate = float(spikes.mean()) if spikes.numel() else 0.0
            gap = 0.0 if 0.05 <= rate <= 0.6 else min(abs(rate - 0.05), abs(rate - 0.6))
            if gap < best_gap:
                best, best_gap = x, gap
            if gap == 0.0:
                break
    return (best if best is not None else noise), inits


def _rel(a: torch.Tensor | None, b: torch.Tensor | None) -> float:
    if a is None and b is None:
        return 0.0
    if a is None or b is None:
        a = torch.zeros_like(b) if a is None else a
        b = torch.zeros_like(a) if b is None else b
    a, b = a.detach().double(), b.detach().double()
    if a.numel() == 0:
        return 0.0
    scale = max(float(b.abs().max()), 1e-12)
    return float((a - b).abs().max()) / scale


UNIT = {"float32": 2.0 ** -24, "float16": 2.0 ** -11}  # unit roundoff of each I/O dtype


def learnable_error_bound(p: Plan, x, inits, scalars: dict, learn_values: dict, w_spike, w_states, dtype: str,
                          device: str = "cpu") -> list[float]:
    """How far a backend's learnable gradients may be from the reference's, derived, per learnable.

    A learnable's gradient is linear in the upstream gradients: G = sum_j c_j g_j, j over the output elements
    (c_j = dS_j / dθ through the surrogate). A backend with `dtype` I/O receives g_j rounded to that dtype
    (|δ_j| <= u) and sums T * N terms in fp32 (error <= (T + log2 N + 1) 2^-24 per unit of sum |terms|), and
    its fp32 arithmetic differs from eager by the fp32 tolerance. So |ΔG| <= (u + (T + log2 N + 1) 2^-24) A +
    TOLERANCE[float32] |G| with A = sum_j |c_j g_j|, and c_j comes from autograd's double backward through
    the reference.
    """
    xr = x.detach().to(device=device, dtype=torch.float32)
    ir_ = tuple(s.detach().to(device) for s in inits)
    lr = tuple(torch.tensor(learn_values[l], device=device, requires_grad=True) for l in p.learnables)
    g = w_spike.to(device).clone().requires_grad_(True)
    spikes, finals, _ = reference_multi_step(p, xr, ir_, scalars, lr)
    loss = (spikes * g).sum() + sum((f * w.to(device)).sum() for f, w in zip(finals, w_states))
    grads = torch.autograd.grad(loss, lr, create_graph=True)
    n = max(x[0].numel(), 1)
    unit = UNIT[dtype] + (x.shape[0] + math.log2(n) + 1) * UNIT["float32"]
    bounds = []
    for grad in grads:
        (c,) = torch.autograd.grad(grad, g, retain_graph=True, allow_unused=True)
        a = 0.0 if c is None else float((c * g).detach().abs().sum())
        bounds.append(unit * a + TOLERANCE["float32"] * abs(float(grad.detach())))
    return bounds


def compare(backend, p: Plan, x: torch.Tensor, inits: tuple, scalars: dict, learn_values: dict,
            dtype: str = "float32", device: str = "cpu", seed: int = 0, name: str | None = None) -> VerifyResult:
    """One backend vs the eager reference on one input; gradients from a random linear loss on spikes and states.

    `backend`: a backend's name, or a callable (x, inits, learnables) -> (spikes, final_states) to check instead.
    """
    label = name or (backend if isinstance(backend, str) else getattr(backend, "__name__", "custom"))
    res = VerifyResult(p.neuron.name, p.config.key(), label, dtype, tuple(x.shape))
    tdtype = {"float32": torch.float32, "float16": torch.float16}[dtype]
    g = torch.Generator().manual_seed(seed + 1)
    w_spike = torch.randn(x.shape, generator=g)
    w_states = [torch.randn(x.shape[1:], generator=g) for _ in p.states]

    def run(fn, xin):
        xr = xin.detach().to(device=device, dtype=tdtype).requires_grad_(True)
        ir_ = tuple(s.detach().to(device).clone().requires_grad_(True) for s in inits)
        lr = tuple(torch.tensor(learn_values[l], device=device, requires_grad=True) for l in p.learnables)
        spikes, finals = fn(xr, ir_, lr)[:2]
        loss = (spikes.float() * w_spike.to(device)).sum()
        for f, w in zip(finals, w_states):
            loss = loss + (f.float() * w.to(device)).sum()
        grads = torch.autograd.grad(loss, (xr, *ir_, *lr), allow_unused=True)
        return spikes.detach().float().cpu(), [f.detach().float().cpu() for f in finals], \
            [None if q is None else q.float().cpu() for q in grads]

    ref_s, ref_f, ref_g = run(lambda xr, ir_, lr: reference_multi_step(
        p, xr.float(), ir_, scalars, lr), x)
    runner = backend if callable(backend) else (lambda xr, ir_, lr: _run_backend(backend, p, xr, ir_, scalars, lr))
    got_s, got_f, got_g = run(runner, x)
    S = len(p.states)
    emits_v = p.config.output == "v"  # a potential, compared within tolerance; spikes are compared exactly
    res.spike_mismatches = 0 if emits_v else int((ref_s != got_s).sum())
    res.spike_rate = float(ref_s.mean()) if ref_s.numel() and not emits_v else 0.0
    res.max_dv = max((float((a - b).abs().max()) if a.numel() else 0.0 for a, b in zip(got_f, ref_f)), default=0.0)
    dv_rel = max((_rel(a, b) for a, b in zip(got_f, ref_f)), default=0.0)
    if emits_v:
        dv_rel = max(dv_rel, _rel(got_s, ref_s))
    res.grad_x = _rel(got_g[0], ref_g[0])
    res.grad_init = max((_rel(a, b) for a, b in zip(got_g[1:1 + S], ref_g[1:1 + S])), default=0.0)
    res.grad_learnables = max((_rel(a, b) for a, b in zip(got_g[1 + S:], ref_g[1 + S:])), default=0.0)
    res.details = {"dv_rel": dv_rel, "learnables": len(p.learnables)}
    tol = TOLERANCE[dtype]
    learn_ok = res.grad_learnables <= tol
    if dtype != "float32" and p.learnables and res.spike_mismatches == 0:
        bounds = learnable_error_bound(p, x, inits, scalars, learn_values, w_spike, w_states, dtype)
        errors = [abs(float(a) - float(b)) for a, b in zip(got_g[1 + S:], ref_g[1 + S:])]
        res.details["learnable_bounds"] = bounds
        learn_ok = all(e <= b for e, b in zip(errors, bounds))
    problems = []
    allowed = 0 if dtype == "float32" else max(1, int(1e-3 * ref_s.numel()))
    if res.spike_mismatches > allowed:
        problems.append(f"{res.spike_mismatches} spike mismatches")
    if res.spike_mismatches == 0:  # after a flipped spike the trajectories legitimately differ
        for name, err in (("v", dv_rel), ("grad x", res.grad_x), ("grad init", res.grad_init)):
            if not err <= tol:
                problems.append(f"{name} error {err:.2e} > {tol:.0e}")
        if not learn_ok:
            bound = res.details.get("learnable_bounds")
            problems.append(f"grad learnables error {res.grad_learnables:.2e} > "
                            + (f"the derived bound {max(bound):.2e}" if bound else f"{tol:.0e}"))
    if problems:
        res.status, res.reason = "fail", "; ".join(problems)
    return res


def generated_neurons(path) -> tuple[dict, str]:
    """The generated torch neuron classes of a .snn file (`snnc.load(path).neurons`), or ({}, why not)."""
    try:
        from .loader import load

        return dict(load(path).neurons), ""
    except Exception as exc:  # the generated modules are optional for verification
        return {}, f"generated modules unavailable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def generated_runner(cls, p: Plan, scalars: dict, learn_values: dict):
    """Run the generated module (torch backend) for plan `p`'s configuration, from given initial states."""
    neuron = p.neuron
    kwargs = {"detach_reset": p.config.detach_reset, **dict(p.config.bools)}
    if neuron.param("v_reset") is not None:
        kwargs["v_reset"] = None if p.config.soft_reset else float(scalars.get("v_reset", 0.0))

    def run(x, inits, learnables):
        cell = cls(**kwargs, step_mode="s").to(x.device)
        cell.output = "v" if p.config.output == "v" else "spike"
        for name, value in zip(p.learnables, learnables):
            cell._parameters.pop(name, None)  # read the caller's leaf, so its gradient is the module's
            setattr(cell, name, value)
        cell._state = tuple(inits)  # start from the given states (NeuronBase keeps them here between calls)
        spikes = torch.stack([cell(x[t]) for t in range(x.shape[0])]) if x.shape[0] else x.clone()
        return spikes, tuple(cell._state)

    run.__name__ = "module"
    return run


def _chosen(module: ir.Module, names) -> list:
    """The neurons to verify: those the module's package emits, or the ones named (each must be one of them)."""
    emitted = emitted_neurons(module)
    if names is None:
        return emitted
    known = {n.name: n for n in emitted}
    for name in names:
        if name not in known:
            from ..compiler.source import did_you_mean

            raise SnncError(f"no neuron '{name}' to verify in {module.file}",
                            hint=did_you_mean(name, known) or f"its neurons: {', '.join(known) or 'none'}")
    return [known[name] for name in dict.fromkeys(names)]


def verify(module: ir.Module, backends=None, shapes=DEFAULT_SHAPES, seed: int = 0,
           dtypes=("float32",), generated: bool = True, neurons=None) -> list[VerifyResult]:
    """Every neuron of `module` (those its package emits: its own, and the imported ones its networks use) x
    configurations x shapes x available backends, against eager autograd.

    `backends`: names from the backend table (default: all of them). With `generated`, the generated modules'
    own single steps (`snnc.load(module.file)`) are checked against the same reference too, as "module".
    `neurons`: only these, by name (default: all).
    """
    from .backends import names

    backends = names() if backends is None else backends
    chosen = _chosen(module, neurons)
    results: list[VerifyResult] = []
    classes, why = generated_neurons(module.file) if generated else ({}, "")
    for neuron in chosen:
        for cfg in configs(neuron):
            try:
                p = make_plan(neuron, cfg)
            except SnncError as exc:
                results.append(VerifyResult(neuron.name, cfg.key(), "-", status="error", reason=str(exc)))
                continue
            scalars = default_values(neuron, cfg)
            learn = learnable_defaults(neuron, scalars)
            if generated:
                cls = classes.get(neuron.name)
                if cls is None:
                    results.append(VerifyResult(neuron.name, cfg.key(), "module", status="skipped",
                                                reason=why or "no generated module for this neuron"))
                else:
                    for i, shape in enumerate(shapes):
                        x, inits = random_input(p, tuple(shape), scalars, learn, seed + i)
                        try:
                            res = compare(generated_runner(cls, p, scalars, learn), p, x, inits, scalars, learn,
                                          seed=seed + i, name="module")
                        except Exception as exc:  # a broken generated module is a finding, not a crash
                            res = VerifyResult(neuron.name, cfg.key(), "module", "float32", tuple(shape), "error",
                                               f"{type(exc).__name__}: {exc}")
                        results.append(res)
            for backend in backends:
                ok, why = backend_available(backend)
                if not ok:
                    results.append(VerifyResult(neuron.name, cfg.key(), backend, status="skipped", reason=why))
                    continue
                device = backend_device(backend)
                for dtype in dtypes if device == "cuda" else ("float32",):
                    for i, shape in enumerate(shapes):
                        x, inits = random_input(p, tuple(shape), scalars, learn, seed + i)
                        try:
                            res = compare(backend, p, x, inits, scalars, learn, dtype, device, seed + i)
                        except SnncError as exc:
                            res = VerifyResult(neuron.name, cfg.key(), backend, dtype, tuple(shape), "error",
                                               str(exc))
                        results.append(res)
    return results
