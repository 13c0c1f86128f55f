"""Runtime support for generated snnc modules. Imports only torch.

`snnc build` copies this file verbatim into every generated package as
`_snnc_runtime.py`, so built packages run with PyTorch alone; `snnc.load`
points generated code at this module instead, so every loaded model shares one
set of base classes.

Conventions (SpikingJelly's): step_mode 's' takes [N, ...] per call, 'm' takes
[T, N, ...]; stateless layers fold [T, N, ...] into [T*N, ...] in 'm' mode;
neuron state lives on the module between calls until `reset()`.
"""
from __future__ import annotations

import torch
from torch import nn

# Fused multi-step implementations, filled in by snnc (`snnc.runtime.fused`): name -> fn(module, x_seq, states).
FUSED: dict = {}


class StateError(RuntimeError):
    """Neuron state used wrongly (not reset between batches)."""


class ParameterError(ValueError):
    """A neuron parameter outside its declared constraints."""


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


# ------------------------------------------------------------------ helpers for generated code
def as_float(neuron: str, name: str, value, optional: bool = False):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(f"{neuron}: parameter '{name}' must be a number, not {value!r}")
    return float(value)


def require(ok: bool, neuron: str, text: str, values: dict):
    if not ok:
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        raise ParameterError(f"{neuron}: requirement '{text}' does not hold ({shown})")


# ------------------------------------------------------------------ neurons
class NeuronBase(nn.Module):
    """Charge -> fire -> reset over one step (`single_step`, generated) or T steps."""

    STATES: tuple[str, ...] = ()
    FLOAT_PARAMS: tuple[str, ...] = ()
    BOOL_PARAMS: tuple[str, ...] = ()
    SPEC_JSON = "{}"
    snnc_stateful = True
    output = "spike"  # "v": emit the membrane potential instead (a network's membrane readout)

    def __init__(self, surrogate_function, step_mode="s", backend="torch", store_v_seq=False):
        super().__init__()
        if step_mode not in ("s", "m"):
            raise ValueError(f"step_mode must be 's' or 'm', not {step_mode!r}")
        self.step_mode = step_mode
        self.backend = backend
        self.surrogate_function = surrogate_function
        self.store_v_seq = store_v_seq
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

    def _keep(self, spike, states):
        self._state = tuple(states)
        if spike.requires_grad:
            spike.register_hook(self._mark_consumed)

    def detach(self):
        if self._state is not None:
            self._state = tuple(s.detach() for s in self._state)
            self._consumed = False

    @property
    def v(self):
        return None if self._state is None else self._state[0]

    def forward(self, x):
        if self.step_mode == "s":
            spike, states = self.single_step(x, *self._states_for(x))
            self._keep(spike, states)
            if self.store_v_seq:
                v = states[0].detach().unsqueeze(0)
                self.v_seq = v if self.v_seq is None else torch.cat((self.v_seq, v))
            return states[0] if self.output == "v" else spike
        return self.multi_step(x)

    def multi_step(self, x_seq):
        states = self._states_for(x_seq[0])
        if self.backend != "torch" and self.output == "spike":
            if self.backend not in FUSED:
                raise RuntimeError(f"backend {self.backend!r} is not available here; it needs snnc installed "
                                   "(import snnc) and, for 'cupy', a CUDA device")
            spike_seq, states = FUSED[self.backend](self, x_seq, tuple(states))
            self._keep(spike_seq, states)
            return spike_seq
        spikes, vs = [], []
        for t in range(x_seq.shape[0]):
            spike, states = self.single_step(x_seq[t], *states)
            spikes.append(states[0] if self.output == "v" else spike)
            if self.store_v_seq:
                vs.append(states[0].detach())
        spike_seq = torch.stack(spikes)
        self._keep(spike_seq, states)
        if self.store_v_seq:
            self.v_seq = torch.stack(vs)
        return spike_seq

    # for the fused backends (they need snnc itself)
    @property
    def snnc_neuron(self):
        from snnc.compiler.ir import Neuron

        cls = type(self)
        if "_snnc_neuron" not in cls.__dict__:
            cls._snnc_neuron = Neuron.model_validate_json(cls.SPEC_JSON)
        return cls._snnc_neuron

    def snnc_config(self):
        from snnc.compiler.derive import Config
        from snnc.compiler.ir import Surrogate as SurrogateIR

        spec = getattr(self.surrogate_function, "spec", None)
        if spec is None:
            raise RuntimeError(f"{type(self).__name__}: the fused backends need an snnc surrogate "
                               "(snnc.surrogate(name, ...)), not an arbitrary Python function")
        return Config(soft_reset=self.v_reset is None, detach_reset=bool(self.detach_reset),
                      bools=tuple((b, bool(getattr(self, b))) for b in self.BOOL_PARAMS if b != "detach_reset"),
                      surrogate=SurrogateIR.model_validate_json(spec))

    def scalar_values(self) -> dict:
        return {p: getattr(self, p) for p in self.FLOAT_PARAMS if getattr(self, p) is not None}

    def extra_repr(self):
        params = ", ".join(f"{p}={getattr(self, p)!r}" for p in (*self.FLOAT_PARAMS, *self.BOOL_PARAMS))
        return f"{params}, surrogate={self.surrogate_function!r}, step_mode={self.step_mode!r}, backend={self.backend!r}"


# ------------------------------------------------------------------ stateless layers
class _Folded:
    """In multi-step mode, run the layer once over the folded [T*N, ...] batch."""

    step_mode = "s"

    def forward(self, x):
        if self.step_mode == "m":
            T, N = x.shape[:2]
            y = super().forward(x.flatten(0, 1))
            return y.reshape(T, N, *y.shape[1:])
        return super().forward(x)


class Flatten(_Folded, nn.Flatten):
    pass


class Linear(_Folded, nn.Linear):
    def forward(self, x):  # a matmul over the last dim needs no folding
        return nn.functional.linear(x, self.weight, self.bias)


class Conv2d(_Folded, nn.Conv2d):
    pass


class MaxPool2d(_Folded, nn.MaxPool2d):
    pass


class AvgPool2d(_Folded, nn.AvgPool2d):
    pass


class BatchNorm1d(_Folded, nn.BatchNorm1d):
    pass


class BatchNorm2d(_Folded, nn.BatchNorm2d):
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

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        if self.step_mode == "m":
            return x * self._new_mask(x[0]).unsqueeze(0)
        if self._mask is None or self._mask.shape != x.shape:
            self._mask = self._new_mask(x)
        return x * self._mask

    def extra_repr(self):
        return f"p={self.p}"


# ------------------------------------------------------------------ networks and functional helpers
def reset_net(net: nn.Module):
    for m in net.modules():
        if getattr(m, "snnc_stateful", False):
            m.reset()


def detach_net(net: nn.Module):
    for m in net.modules():
        if isinstance(m, NeuronBase):
            m.detach()


def set_step_mode(net: nn.Module, step_mode: str):
    if step_mode not in ("s", "m"):
        raise ValueError(f"step_mode must be 's' or 'm', not {step_mode!r}")
    for m in net.modules():
        if hasattr(m, "step_mode"):
            m.step_mode = step_mode


def set_backend(net: nn.Module, backend: str):
    if backend not in ("torch", "cpp", "cupy"):
        raise ValueError(f"backend must be 'torch', 'cpp' or 'cupy', not {backend!r}")
    for m in net.modules():
        if isinstance(m, NeuronBase):
            m.backend = backend


def set_readout(net: nn.Module, readout: str):
    """'rate': the network emits the last neuron layer's spikes; 'membrane': its membrane potential."""
    if readout not in ("rate", "membrane"):
        raise ValueError(f"readout must be 'rate' or 'membrane', not {readout!r}")
    neurons = [m for m in net.modules() if isinstance(m, NeuronBase)]
    if neurons:
        neurons[-1].output = "v" if readout == "membrane" else "spike"


class Network(nn.Module):
    """A generated network. In multi-step mode each call is a whole sample sequence, so state is reset first."""

    T = 1
    INPUT_SHAPE: tuple = ()
    NUM_CLASSES = 0
    ENCODER = "direct"
    READOUT = "rate"
    auto_reset = True
    step_mode = "m"

    def forward(self, x):
        if self.step_mode == "m" and self.auto_reset:
            reset_net(self.layers)
        return self.layers(x)

    def reset(self):
        reset_net(self.layers)

    def readout_layer(self):
        """The last neuron layer (its v_seq gives output voltages when store_v_seq is set)."""
        neurons = [m for m in self.layers if isinstance(m, NeuronBase)]
        return neurons[-1] if neurons else None
