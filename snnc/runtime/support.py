"""Runtime support for generated snnc modules. Imports only torch.

`snnc build` copies this file verbatim into every generated package as
`_snnc_runtime.py`, so built packages run with PyTorch alone; `snnc.load`
points generated code at this module instead, so every loaded model shares one
set of base classes.

Conventions (SpikingJelly's): step_mode 's' takes [N, ...] per call, 'm' takes
[T, N, ...]; stateless layers fold [T, N, ...] into [T*N, ...] in 'm' mode;
neuron state lives on the module between calls until `reset()`. Every layer
also has `seq(x)` (all T steps, [T, N, ...]) and `step(x)` (one step, [N, ...]),
which a generated network calls directly whatever the layer's step_mode.

Backends: a neuron's multi-step pass runs on a backend named in `BACKENDS`.
On its own (a built package) only 'torch' is known, as eager autograd over
single steps; snnc installs its backend table here when it loads a model
(`snnc.runtime.ops.install`): the rows' names, their fused multi-step pass
(kernels as PyTorch custom operators) and the default per device type.
"""
from __future__ import annotations

import math

import torch
from torch import nn

class Backends:
    """The backends a neuron layer can name: on its own 'torch' (eager single steps, `multi_step` None), or
    snnc's table once installed. `multi_step(module, x_seq, states) -> (out_seq, final_states)` runs a layer's
    T steps on the module's backend; `defaults` names the backend of `backend=None`, per device type."""

    def __init__(self):
        self.names: tuple[str, ...] = ("torch",)
        self.multi_step = None
        self.defaults: dict[str, str] = {}

    def install(self, names, multi_step, defaults) -> None:
        self.names, self.multi_step, self.defaults = tuple(names), multi_step, dict(defaults)

    def __contains__(self, name) -> bool:
        return name in self.names

    def fused(self, name: str):
        """The multi-step pass of backend `name` (a known one), or None: eager single steps."""
        return self.multi_step


BACKENDS = Backends()


def choose_backend(device: torch.device) -> str:
    """The fastest backend available for tensors on `device`."""
    return BACKENDS.defaults.get(device.type, "torch")


class StateError(RuntimeError):
    """Neuron state used wrongly (not reset between batches)."""


class ParameterError(ValueError):
    """A neuron parameter outside its declared constraints."""


class BackendError(ValueError):
    """A backend that is not known here."""


class ShapeError(ValueError):
    """An input of a shape a module cannot take."""


def _check_backend(backend) -> None:
    if backend is not None and backend not in BACKENDS:
        raise BackendError(f"backend must be one of {', '.join(map(repr, BACKENDS.names))} or None, not {backend!r}")


def _compiling() -> bool:
    return bool(getattr(torch, "compiler", None)) and torch.compiler.is_compiling()


# ------------------------------------------------------------------ surrogate spikes
class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, grad):
        ctx.save_for_backward(x)
        ctx.grad = grad
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * ctx.grad(x), None


def heaviside(x):
    return (x >= 0).to(x.dtype)


class Surrogate:
    """Heaviside spike forward, `grad(x)` backward. `spec` is the surrogate's IR as JSON (for fused kernels)."""

    def __init__(self, text: str, grad, spec: str):
        self.text, self.grad, self.spec = text, grad, spec

    def __call__(self, x):
        return _Spike.apply(x, self.grad)

    def __repr__(self):
        return self.text


# ------------------------------------------------------------------ IEEE arithmetic on Python floats
# Generated code computes constant subexpressions of parameters with Python floats, as eager PyTorch does,
# but where Python raises, these give what torch and the kernels compute.
def div(a, b):
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


def pow(a, b):  # noqa: A001 - the expression language's ^
    try:
        out = a ** b
    except ZeroDivisionError:
        return math.inf
    except OverflowError:
        return math.inf if a > 0 or float(b).is_integer() and int(b) % 2 == 0 else -math.inf
    return math.nan if isinstance(out, complex) else out


def exp(a):
    try:
        return math.exp(a)
    except OverflowError:
        return math.inf


def log(a):
    if a > 0:
        return math.log(a)
    return -math.inf if a == 0 else math.nan


def sqrt(a):
    return math.sqrt(a) if a >= 0 else math.nan


def sigmoid(a):
    return 1.0 / (1.0 + math.exp(-a)) if a >= 0 else math.exp(a) / (1.0 + math.exp(a))


# ------------------------------------------------------------------ numbers meeting tensors
# Where torch converts a Python number to a tensor's dtype (full_like, clamp bounds, where branches), it raises
# for a number beyond the dtype's range; the kernels' arithmetic rounds it to infinity. These helpers do the latter.
# Never written after import: torch.compile guards on what it reads here, and a memo filled while tracing
# fails that guard at the next call (a recompilation).
_FLOAT_MAX = {d: torch.finfo(d).max for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64)}


def fit(value, dtype):
    """A Python number as a tensor of `dtype` holds it: beyond the dtype's range, the infinity of its sign."""
    if isinstance(value, float) and value == value:
        limit = _FLOAT_MAX.get(dtype)
        if limit is None:
            limit = torch.finfo(dtype).max if dtype.is_floating_point else math.inf
        if abs(value) > limit:
            return math.copysign(math.inf, value)
    return value


def full_like(like, value):
    return torch.full_like(like, fit(value, like.dtype))


def shaped(value, like):
    """`value` (a number, or a tensor such as a 0-d learnable) as a new tensor of `like`'s shape and dtype:
    what a state becomes when its equation reads neither the input nor a state."""
    if isinstance(value, torch.Tensor):
        return value.to(like.dtype).expand_as(like).clone()
    return full_like(like, value)


def where(cond, a, b, like=None):
    """torch.where with either branch a Python number; with both, the result has the dtype of `like` (a tensor
    the condition reads), not torch's default."""
    if like is None:
        like = a if isinstance(a, torch.Tensor) else b
    dtype = like.dtype if like.is_floating_point() else torch.get_default_dtype()
    a, b = fit(a, dtype), fit(b, dtype)
    if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):  # torch would make the default dtype
        a = torch.tensor(a, dtype=dtype, device=cond.device)
    out = torch.where(cond, a, b)
    return out if out.dtype == dtype else out.to(dtype)


def minimum(a, b):
    """torch.minimum with either side a Python number."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.minimum(a, b)
    t, s = (a, b) if isinstance(a, torch.Tensor) else (b, a)
    return torch.clamp(t, max=fit(s, t.dtype))


def maximum(a, b):
    """torch.maximum with either side a Python number."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.maximum(a, b)
    t, s = (a, b) if isinstance(a, torch.Tensor) else (b, a)
    return torch.clamp(t, min=fit(s, t.dtype))


def clamp(a, lo, hi):
    """min(max(a, lo), hi) where any of the three may be a Python number (a number clamped by tensors too)."""
    return minimum(maximum(a, lo), hi)


# ------------------------------------------------------------------ helpers for generated code
def as_float(neuron: str, name: str, value, optional: bool = False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(f"{neuron}: parameter '{name}' must be a number, not {value!r}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ParameterError(f"{neuron}: parameter '{name}' must be finite, not {value}")
    return value


def require(ok: bool, neuron: str, text: str, values: dict):
    if not ok:
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        raise ParameterError(f"{neuron}: requirement '{text}' does not hold ({shown})")


# ------------------------------------------------------------------ neurons
class NeuronBase(nn.Module):
    """Charge -> fire -> reset over one step (`single_step`, generated) or T steps."""

    STATES: tuple[str, ...] = ()
    MEMBRANE = 0  # index of the membrane potential 'v' in STATES
    FLOAT_PARAMS: tuple[str, ...] = ()
    BOOL_PARAMS: tuple[str, ...] = ()
    SPEC_JSON = "{}"
    NONSPIKING = False  # emits its membrane potential and never fires (`output membrane`)
    snnc_stateful = True

    def __init__(self, surrogate_function, step_mode="s", backend=None, store_v_seq=False):
        super().__init__()
        if step_mode not in ("s", "m"):
            raise ValueError(f"step_mode must be 's' or 'm', not {step_mode!r}")
        _check_backend(backend)
        self.step_mode = step_mode
        self.backend = backend
        self.surrogate_function = surrogate_function
        self.store_v_seq = store_v_seq
        self.output = "v" if self.NONSPIKING else "spike"  # "v": emit the membrane potential (membrane readout)
        self.reset()

    def reset(self):
        self._state = None
        self._consumed = False
        self.v_seq = None

    # state bookkeeping: forgetting reset() is a clear error, never autograd's "backward a second time"
    def _mark_consumed(self, grad):
        self._consumed = True
        return grad

    def _states_for(self, x):
        if self._state is None:
            return self.initial_states(x)
        first = self._state[0]
        if first.shape != x.shape:
            raise StateError(
                f"{type(self).__name__}: state from the previous call has shape {list(first.shape)} but the input "
                f"has shape {list(x.shape)}; call snnc.functional.reset_net(net) (or module.reset()) between batches")
        if self._consumed and any(s.requires_grad for s in self._state):
            raise StateError(
                f"{type(self).__name__}: state from the previous batch was already backpropagated; "
                "call snnc.functional.reset_net(net) between batches (or detach_net(net) for truncated BPTT)")
        return self._state

    def _keep(self, out, states):
        self._state = tuple(states)
        if out.requires_grad and not _compiling():
            out.register_hook(self._mark_consumed)

    def detach(self):
        if self._state is not None:
            self._state = tuple(s.detach() for s in self._state)
            self._consumed = False

    @property
    def v(self):
        return None if self._state is None else self._state[self.MEMBRANE]

    def state(self, name: str):
        """The kept value of the state `name` (after the last step; None before the first)."""
        return None if self._state is None else self._state[self.STATES.index(name)]

    def resolved_backend(self, device) -> str:
        if self.backend is None:
            return choose_backend(device)
        _check_backend(self.backend)
        return self.backend

    def forward(self, x):
        return self.step(x) if self.step_mode == "s" else self.seq(x)

    def step(self, x):
        """One step from the kept state: x [N, ...] -> output [N, ...]."""
        spike, states = self.single_step(x, *self._states_for(x))
        self._keep(spike, states)
        v = states[self.MEMBRANE]
        if self.store_v_seq:
            self.v_seq = v.detach().unsqueeze(0) if self.v_seq is None else torch.cat((self.v_seq, v.detach()[None]))
        return v if self.output == "v" else spike

    def seq(self, x_seq):
        """All steps: x_seq [T, N, ...] -> outputs [T, N, ...], from the kept (or initial) state."""
        if x_seq.dim() == 0:
            raise ShapeError(f"{type(self).__name__}: a multi-step input has time first, [T, N, ...]; this one is 0-d")
        if x_seq.shape[0] == 0:  # no steps: no output, the state as it was
            return x_seq.clone()
        states = self._states_for(x_seq[0])
        fused = BACKENDS.fused(self.resolved_backend(x_seq.device))
        if fused is not None and not self.store_v_seq:
            out_seq, states = fused(self, x_seq, tuple(states))
            self._keep(out_seq, states)
            return out_seq
        outs, vs = [], []
        for x in x_seq.unbind(0):  # one backward node for all steps (x_seq[t] would add a [T, ...] zero fill each)
            spike, states = self.single_step(x, *states)
            v = states[self.MEMBRANE]
            outs.append(v if self.output == "v" else spike)
            if self.store_v_seq:
                vs.append(v.detach())
        out_seq = torch.stack(outs) if outs else x_seq.clone()
        self._keep(out_seq, states)
        if self.store_v_seq:
            self.v_seq = torch.stack(vs) if vs else None
        return out_seq

    multi_step = seq

    def scalar_values(self) -> dict:
        return {p: getattr(self, p) for p in self.FLOAT_PARAMS if getattr(self, p) is not None}

    def config_key(self) -> str:
        """What the fused kernels are specialised on: reset mode, detach_reset, bool parameters, surrogate, output."""
        spec = getattr(self.surrogate_function, "spec", None)
        bools = ",".join(f"{b}={int(bool(getattr(self, b)))}" for b in self.BOOL_PARAMS if b != "detach_reset")
        return (f"soft={int(self.v_reset is None)};detach={int(bool(self.detach_reset))};bools={bools};"
                f"out={self.output};sg={spec}")

    def extra_repr(self):
        params = ", ".join(f"{p}={getattr(self, p)!r}" for p in (*self.FLOAT_PARAMS, *self.BOOL_PARAMS))
        backend = "auto" if self.backend is None else self.backend
        return f"{params}, surrogate={self.surrogate_function!r}, step_mode={self.step_mode!r}, backend={backend!r}"


# ------------------------------------------------------------------ stateless layers
class _Layer:
    """`seq` over [T, N, ...] by folding into [T*N, ...]; `step` over [N, ...]; `forward` by step_mode."""

    step_mode = "s"

    def step(self, x):
        return super().forward(x)

    def seq(self, x):
        T, N = x.shape[:2]
        y = super().forward(x.flatten(0, 1))
        return y.reshape(T, N, *y.shape[1:])

    def forward(self, x):
        return self.seq(x) if self.step_mode == "m" else self.step(x)


class Flatten(_Layer, nn.Flatten):
    pass


class Linear(_Layer, nn.Linear):
    def seq(self, x):  # a matmul over the last dim needs no folding
        return nn.functional.linear(x, self.weight, self.bias)


class Conv2d(_Layer, nn.Conv2d):
    pass


class MaxPool2d(_Layer, nn.MaxPool2d):
    pass


class AvgPool2d(_Layer, nn.AvgPool2d):
    pass


class BatchNorm1d(_Layer, nn.BatchNorm1d):
    pass


class BatchNorm2d(_Layer, nn.BatchNorm2d):
    pass


class Dropout(nn.Module):
    """One dropout mask for all T steps of a sample (SpikingJelly's convention)."""

    snnc_stateful = True
    step_mode = "s"

    def __init__(self, p=0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), not {p}")
        self.p = p
        self.reset()

    def reset(self):
        self._mask = None

    def _new_mask(self, like):
        return torch.bernoulli(torch.full_like(like, 1.0 - self.p)) / (1.0 - self.p)

    def seq(self, x):
        if not self.training or self.p == 0.0:
            return x
        return x * self._new_mask(x[0]).unsqueeze(0)

    def step(self, x):
        if not self.training or self.p == 0.0:
            return x
        if self._mask is None or self._mask.shape != x.shape:
            self._mask = self._new_mask(x)
        return x * self._mask

    def forward(self, x):
        return self.seq(x) if self.step_mode == "m" else self.step(x)

    def extra_repr(self):
        return f"p={self.p}"


class Merge(nn.Module):
    """Element-wise merge of two inputs: SpikingJelly's SEW connect functions (ADD, AND, IAND) and mul."""

    step_mode = "s"
    KINDS = ("add", "mul", "and", "iand")

    def __init__(self, kind: str):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"merge must be one of {', '.join(self.KINDS)}, not {kind!r}")
        self.kind = kind

    def step(self, a, b):
        if self.kind == "add":
            return a + b
        if self.kind == "iand":
            return a * (1.0 - b)
        return a * b

    seq = step

    def forward(self, a, b):
        return self.step(a, b)

    def extra_repr(self):
        return repr(self.kind)


class Concat(nn.Module):
    """Inputs joined along the channel (first per-sample) dimension."""

    step_mode = "s"

    def step(self, *xs):
        return torch.cat(xs, dim=1)

    def seq(self, *xs):
        return torch.cat(xs, dim=2)

    def forward(self, *xs):
        return self.seq(*xs) if self.step_mode == "m" else self.step(*xs)


class Delay(nn.Module):
    """A fixed delay of `steps` steps (an int, or one per channel): output[t] = input[t - d], 0 before."""

    snnc_stateful = True
    step_mode = "s"

    def __init__(self, steps):
        super().__init__()
        per_channel = isinstance(steps, (tuple, list))
        values = tuple(int(d) for d in (steps if per_channel else (steps,)))
        if not values or any(d < 0 for d in values):
            raise ValueError(f"delays must be non-negative whole steps, not {steps!r}")
        self.steps = values if per_channel else values[0]
        self.depth = max(values)
        self.register_buffer("_channel_steps", torch.tensor(values, dtype=torch.long) if per_channel else None,
                             persistent=False)
        self.reset()

    def reset(self):
        self._past = []  # the last `depth` inputs, oldest first

    def _per_channel(self, history: list, like):
        """output[c] = the input of d_c steps ago, from a list of the last `depth` inputs (oldest first)."""
        if isinstance(self.steps, int):
            return history[0] if len(history) == self.depth else torch.zeros_like(like)
        out = torch.zeros_like(like)
        for c, d in enumerate(self.steps):
            if d == 0:
                out[:, c] = like[:, c]
            elif len(history) >= d:
                out[:, c] = history[len(history) - d][:, c]
        return out

    def seq(self, x):
        if isinstance(self.steps, int):
            return shift(x, self.steps)
        T = x.shape[0]
        idx = torch.arange(T, device=x.device)[:, None] - self._channel_steps.to(x.device)[None, :]  # [T, C]
        valid = (idx >= 0).to(x.dtype)
        gathered = x[idx.clamp(min=0), :, torch.arange(x.shape[2], device=x.device)[None, :]]  # [T, C, N, ...]
        gathered = gathered.movedim(1, 2)  # [T, N, C, ...]
        return gathered * valid.view(T, 1, -1, *([1] * (x.dim() - 3)))

    def peek(self, like, shape):
        """This step's output before this step's input is known (d >= 1): the input of d steps ago."""
        zero = like.new_zeros((like.shape[0], *shape))
        if isinstance(self.steps, int):
            return self._past[0] if len(self._past) == self.depth and self.depth else zero
        return self._per_channel(self._past, zero)

    def step(self, x):
        if self.depth == 0:
            return x
        if isinstance(self.steps, int):
            out = self._past[0] if len(self._past) == self.depth else torch.zeros_like(x)
        else:
            out = self._per_channel(self._past, x)
        self._past = (self._past + [x])[-self.depth:]
        return out

    def forward(self, x):
        return self.seq(x) if self.step_mode == "m" else self.step(x)

    def extra_repr(self):
        return f"steps={self.steps!r}"


def shift(x_seq, steps: int = 1):
    """[T, N, ...] delayed by `steps`: zeros first (a neuron's previous output read through feedback)."""
    if steps == 0:
        return x_seq
    if steps >= x_seq.shape[0]:
        return torch.zeros_like(x_seq)
    return torch.cat((torch.zeros_like(x_seq[:steps]), x_seq[:-steps]))


def zeros(like, shape):
    """Zeros [N, *shape] with `like`'s batch size, dtype and device (feedback before the first step)."""
    return like.new_zeros((like.shape[0], *shape))


class Layers(nn.ModuleDict):
    """A network's nodes by name (blocks nest): state_dict keys are layers.<path>.<parameter>."""


# ------------------------------------------------------------------ networks and functional helpers
def reset_net(net: nn.Module):
    for m in net.modules():
        if getattr(m, "snnc_stateful", False):
            m.reset()


def nonfinite_states(net: nn.Module) -> list[str]:
    """The neuron layers whose state holds NaN or infinity (one device sync when all are finite)."""
    named = [(name, m) for name, m in net.named_modules() if isinstance(m, NeuronBase) and m._state is not None]
    if not named:
        return []
    flags = torch.stack([torch.stack([torch.isfinite(s).all() for s in m._state]).all() for _, m in named])
    if bool(flags.all()):
        return []
    return [f"{name or type(m).__name__} ({type(m).__name__})" for (name, m), ok in zip(named, flags.tolist())
            if not ok]


def detach_net(net: nn.Module):
    for m in net.modules():
        if isinstance(m, NeuronBase):
            m.detach()
        elif isinstance(m, Network):
            m.memory = {k: v.detach() for k, v in m.memory.items()}


def set_step_mode(net: nn.Module, step_mode: str):
    """Every module's step mode; in a generated network in mode 'm', its loop nodes step one at a time ('s')."""
    if step_mode not in ("s", "m"):
        raise ValueError(f"step_mode must be 's' or 'm', not {step_mode!r}")
    for m in net.modules():
        if hasattr(m, "step_mode"):
            m.step_mode = step_mode
    if step_mode == "m":
        for m in net.modules():
            if isinstance(m, Network):
                for name in m.LOOPS:
                    for sub in m.node(name).modules():
                        if hasattr(sub, "step_mode"):
                            sub.step_mode = "s"


def set_backend(net: nn.Module, backend: str | None):
    """The backend of every neuron layer: a name in BACKENDS, or None for the fastest one available."""
    _check_backend(backend)
    for m in net.modules():
        if isinstance(m, NeuronBase):
            m.backend = backend


def _valid(y, lengths):
    """[T, N, 1, ...]: whether step t of sample n is one of its `lengths[n]` valid steps (the rest is padding)."""
    steps = torch.arange(y.shape[0], device=y.device).view(-1, *([1] * (y.dim() - 1)))
    return steps < lengths.to(y.device).view(1, -1, *([1] * (y.dim() - 2)))


def _mean(y, lengths=None):
    if lengths is None:
        return y.mean(0)
    return (y * _valid(y, lengths)).sum(0) / lengths.to(y.device, y.dtype).view(-1, *([1] * (y.dim() - 2)))


def _max(y, lengths=None):
    if lengths is None:
        return y.max(0).values
    return y.masked_fill(~_valid(y, lengths), float("-inf")).max(0).values


def _last(y, lengths=None):
    if lengths is None:
        return y[-1]
    return y[lengths.to(y.device) - 1, torch.arange(y.shape[1], device=y.device)]


# A readout: the output over time [T, N, C] (and each sample's valid steps, where padded) -> class scores [N, C].
READOUTS = {"mean": _mean, "max": _max, "last": _last}
READOUTS["rate"] = READOUTS["membrane"] = READOUTS["mean"]


def set_readout(net: nn.Module, readout: str):
    """'rate'/'mean', 'max', 'last': over the output node's values; 'membrane': its membrane potential, mean."""
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {', '.join(READOUTS)}, not {readout!r}")
    net.READOUT = readout
    out = net.output_layer() if isinstance(net, Network) else None
    if isinstance(out, NeuronBase) and not out.NONSPIKING:
        out.output = "v" if readout == "membrane" else "spike"


class Network(nn.Module):
    """A generated network. In multi-step mode each call is a whole sample sequence, so state is reset first.

    Subclasses define `forward_seq` ([T, N, ...]) and `forward_step` ([N, ...]); feedback that a single step
    reads from the previous call lives in `self.memory`.
    """

    T = 1
    INPUT_SHAPE: tuple = ()
    NUM_CLASSES = 0
    ENCODER = "direct"
    READOUT = "mean"
    OUTPUT = ""
    GRAPH: tuple = ()
    LOOPS: tuple = ()
    auto_reset = True
    step_mode = "m"
    snnc_stateful = True
    MEMORY: dict = {}  # per memory policy but fast: node -> 'bits' | 'recompute' (compiler/memory.py)
    saving = None  # the memory plan carried out (snnc.runtime.memory.apply); None: autograd's way

    def __init__(self):
        super().__init__()
        self.memory: dict = {}

    def finish(self, step_mode, backend):
        set_step_mode(self, step_mode)
        set_backend(self, backend)
        set_readout(self, self.READOUT)

    def forward(self, x):
        if self.step_mode == "m":
            if x.dim() == 0 or x.shape[0] == 0:
                raise ShapeError(f"{type(self).__name__}: a multi-step input has T >= 1 steps first, [T, N, ...]; "
                                 f"this one has shape {list(x.shape)}")
            if self.auto_reset:
                reset_net(self.layers)
                self.memory = {}
            if self.saving is not None and torch.is_grad_enabled():
                with self.saving:  # the memory plan's hooks on what backward keeps (snnc.runtime.memory)
                    return self.forward_seq(x)
            return self.forward_seq(x)
        return self.forward_step(x)

    def reset(self):
        self.memory = {}
        if hasattr(self, "layers"):
            reset_net(self.layers)

    def previous(self, name: str, like, shape):
        """A node's output of the previous step (zeros before the first)."""
        value = self.memory.get(name)
        return value if value is not None else zeros(like, shape)

    def readout(self, y_seq, lengths=None):
        """The network's output over time [T, N, C] -> class scores [N, C] (mean, max or last step); with
        `lengths`, over each sample's valid steps only (padded sequences)."""
        return READOUTS[self.READOUT](y_seq, lengths)

    def node(self, name: str) -> nn.Module:
        m = self.layers
        for part in name.split("."):
            m = m[part]
        return m

    def output_layer(self) -> nn.Module | None:
        return self.node(self.OUTPUT) if self.OUTPUT and hasattr(self, "layers") else None

    def readout_layer(self):
        """The output node if it is a neuron layer (its v_seq gives output voltages when store_v_seq is set)."""
        out = self.output_layer()
        return out if isinstance(out, NeuronBase) else None


# ------------------------------------------------------------------ layers NIR has (snnc import reads them)
class Conv1d(_Layer, nn.Conv1d):
    pass


class SumPool2d(_Layer, nn.AvgPool2d):
    """Sums over each window: average pooling whose divisor is 1 (exact sums, no division)."""

    def __init__(self, kernel_size, stride=None):
        super().__init__(kernel_size, stride=stride, divisor_override=1)


class Vote(nn.Module):
    """The mean of each group of `size` outputs: [..., C] -> [..., C / size] (SpikingJelly's VotingLayer)."""

    step_mode = "s"

    def __init__(self, size=10):
        super().__init__()
        self.size = size

    def step(self, x):
        return x.unflatten(-1, (-1, self.size)).mean(-1)

    seq = step

    def forward(self, x):
        return self.step(x)

    def extra_repr(self):
        return f"size={self.size}"


class Scale(nn.Module):
    """x * weight, element-wise, the weight of the input's per-sample shape (NIR's Scale)."""

    step_mode = "s"

    def __init__(self, shape):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(tuple(shape)))

    def step(self, x):
        return x * self.weight

    seq = step

    def forward(self, x):
        return self.step(x)

    def extra_repr(self):
        return f"shape={tuple(self.weight.shape)}"


# ------------------------------------------------------------------ tokens and attention (per sample [L, C])
class _Trailing(nn.Module):
    """A stateless layer over the trailing (per-sample) axes: the same in steps and over a whole sequence."""

    step_mode = "s"

    def seq(self, *xs):
        return self.step(*xs)

    def forward(self, *xs):
        return self.step(*xs)


class Tokens(_Trailing):
    """[..., C, H, W] -> [..., H*W, C]: one token per position (Spikformer's patch flattening)."""

    def step(self, x):
        return x.flatten(-2).transpose(-1, -2).contiguous()  # neurons' fused kernels read contiguous memory


class Matmul(_Trailing):
    """a @ b over the last two axes, each optionally transposed, times `scale`. On spikes the products are
    whole counts, exact in fp32 below 2^24, so either order of a chain (Q K^T V or Q (K^T V)) gives one result."""

    def __init__(self, transpose_a=False, transpose_b=False, scale=1.0):
        super().__init__()
        self.transpose_a, self.transpose_b, self.scale = transpose_a, transpose_b, scale

    def step(self, a, b):
        y = torch.matmul(a.transpose(-1, -2) if self.transpose_a else a, b.transpose(-1, -2) if self.transpose_b else b)
        return y if self.scale == 1.0 else y * self.scale

    def extra_repr(self):
        return f"transpose_a={self.transpose_a}, transpose_b={self.transpose_b}, scale={self.scale}"


class Heads(_Trailing):
    """[..., L, C] -> [..., heads, L, C / heads]; channel c is head c // (C / heads)."""

    def __init__(self, heads):
        super().__init__()
        self.heads = heads

    def step(self, x):
        return x.unflatten(-1, (self.heads, -1)).transpose(-2, -3).contiguous()

    def extra_repr(self):
        return f"heads={self.heads}"


class MergeHeads(_Trailing):
    """[..., heads, L, D] -> [..., L, heads * D] (the inverse of Heads)."""

    def step(self, x):
        return x.transpose(-2, -3).flatten(-2).contiguous()


class Reduce(_Trailing):
    """The sum or mean over the token (second to last) or channel (last) axis."""

    def __init__(self, kind, axis="tokens", keepdim=True):
        super().__init__()
        self.kind, self.axis, self.keepdim = kind, axis, keepdim

    def step(self, x):
        dim = -2 if self.axis == "tokens" else -1
        return (x.sum if self.kind == "sum" else x.mean)(dim=dim, keepdim=self.keepdim)

    def extra_repr(self):
        return f"{self.kind!r}, axis={self.axis!r}, keepdim={self.keepdim}"


class TokenBatchNorm1d(BatchNorm1d):
    """Batch normalisation of tokens [..., L, C] over their channels, statistics over T*N*L (SpikingJelly's
    Spikformer: BatchNorm1d on [T*N, C, L])."""

    def step(self, x):
        return nn.BatchNorm1d.forward(self, x.transpose(-1, -2)).transpose(-1, -2).contiguous()

    def seq(self, x):
        return self.step(x.flatten(0, 1)).reshape(x.shape)


class LayerNorm(_Trailing):
    """Layer normalisation over the channel (last) axis."""

    def __init__(self, channels):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def step(self, x):
        return self.norm(x)


# ------------------------------------------------------------------ learnable delays (their own module)
from .delays import Dcls, delay_layers, sigma_at  # noqa: E402,F401 - a built package has its copy beside this file
