"""The layer table: every layer kind a network can use, and everything the compiler knows about it.

One row per kind, read by `assemble` (argument schema: the IR class's fields, in order), `check` (arity,
shape and parameter-count rules, validation), `codegen` (the constructor it emits) and the CLI (`snnc
check` prints the graph from it). Adding a layer kind is one row here, its IR class in `ir`, and its
runtime module in `runtime/support.py`; nothing else branches on a kind's name.

Shapes are per sample, without T and N. A rule raises `LayerError(message, hint)` for input it cannot
take; `check` reports it at the node.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from . import ir

Shape = tuple[int, ...]


class LayerError(Exception):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


@dataclass(frozen=True)
class Kind:
    """One row. `arity`: (fewest, most) inputs, most None for any number."""

    name: str
    ir_class: type
    doc: str
    shape: Callable[[object, list[Shape]], Shape]
    emit: Callable[[object, list[Shape], "EmitContext"], str]
    params: Callable[[object, list[Shape]], int] = lambda op, shapes: 0
    arity: tuple[int, int | None] = (1, 1)
    feedback: Callable[[object], bool] = lambda op: False  # may close a loop (read before it is computed)
    stateful: bool = False  # keeps state between steps (reset by reset_net)
    fixed: dict = field(default_factory=dict)  # IR fields the kind fixes (e.g. a merge's kind)
    shown: tuple[str, ...] = ()  # arguments `snnc check` shows even at their default (dropout's p)

    @property
    def arguments(self) -> tuple[str, ...]:
        """The user-facing arguments, in positional order: the IR class's fields."""
        return tuple(f for f in self.ir_class.model_fields if f not in ("span", "kind", *self.fixed))


class EmitContext:
    """What a constructor needs beyond its layer: the surrogate table of the generated module."""

    def __init__(self, surrogate_name: Callable[[ir.CallValue], str]):
        self.surrogate_name = surrogate_name


# ------------------------------------------------------------------ shape helpers
def _flat(kind: str, shape: Shape, hint: str) -> int:
    if len(shape) != 1:
        raise LayerError(f"{kind} needs a flat input, but the input here is {list(shape)}", hint)
    return shape[0]


def _image(kind: str, shape: Shape) -> Shape:
    if len(shape) != 3:
        raise LayerError(f"{kind} needs a [C, H, W] input, but the input here is {list(shape)}",
                         "put it before 'flatten', and give the network an image input like [1, 28, 28]")
    return shape


def _window(kind: str, shape: Shape, k: int, s: int, pad: int = 0) -> tuple[int, int]:
    if k < 1:
        raise LayerError(f"{kind} kernel size must be at least 1, not {k}")
    if s < 1:
        raise LayerError(f"{kind} stride must be at least 1, not {s}")
    if pad < 0:
        raise LayerError(f"{kind} padding must not be negative, not {pad}")
    _, h, w = shape
    oh, ow = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    if oh < 1 or ow < 1:
        raise LayerError(f"{kind} window {k} does not fit the input {list(shape)}",
                         "use padding, a smaller kernel, or remove a pooling layer")
    return oh, ow


def _positive(kind: str, what: str, n: int) -> int:
    if n < 1:
        raise LayerError(f"{kind} {what} must be at least 1, not {n}")
    return n


def _same(kind: str, shapes: list[Shape]) -> Shape:
    first = shapes[0]
    for other in shapes[1:]:
        if other != first:
            raise LayerError(f"{kind} needs inputs of one shape, but they are "
                             f"{' and '.join(str(list(s)) for s in shapes)}",
                             "make both branches produce the same shape (e.g. a 1x1 conv2d on the shortcut)")
    return first


# ------------------------------------------------------------------ rules per kind
def _linear_shape(op: ir.Linear, shapes):
    _flat("linear", shapes[0], "add 'flatten' before it")
    return (_positive("linear", "out_features", op.out_features),)


def _conv_shape(op: ir.Conv2d, shapes):
    c, _, _ = _image("conv2d", shapes[0])
    _positive("conv2d", "out_channels", op.out_channels)
    return (op.out_channels, *_window("conv2d", shapes[0], op.kernel_size, op.stride, op.padding))


def _pool_shape(op, shapes):
    c, _, _ = _image(op.kind, shapes[0])
    if op.stride is not None and op.stride < 1:  # not 'stride or kernel_size': a stride of 0 is a mistake
        raise LayerError(f"{op.kind} stride must be at least 1, not {op.stride}",
                         "leave it out for a stride equal to the kernel size")
    return (c, *_window(op.kind, shapes[0], op.kernel_size, op.stride or op.kernel_size))


def _bn1d_shape(op, shapes):
    _flat("batchnorm1d", shapes[0], "use batchnorm2d for [C, H, W] inputs")
    return shapes[0]


def _dropout_shape(op: ir.Dropout, shapes):
    if not 0.0 <= op.p < 1.0:
        raise LayerError(f"dropout probability must be in [0, 1), not {op.p}")
    return shapes[0]


def _concat_shape(op, shapes):
    rest = {s[1:] for s in shapes}
    if len(rest) != 1:
        raise LayerError(f"concat joins along the first (channel) dimension; the other dimensions must agree, "
                         f"but the inputs are {' and '.join(str(list(s)) for s in shapes)}")
    return (sum(s[0] for s in shapes), *shapes[0][1:])


def delay_steps(op: ir.Delay, channels: int | None = None) -> tuple[int, ...]:
    return op.steps if isinstance(op.steps, tuple) else (op.steps,)


def _delay_shape(op: ir.Delay, shapes):
    steps = delay_steps(op)
    if not steps or any(d < 0 for d in steps):
        raise LayerError(f"delays must be non-negative whole steps, not {list(steps) if len(steps) > 1 else steps[0]}")
    if isinstance(op.steps, tuple) and (not shapes[0] or len(steps) != shapes[0][0]):
        raise LayerError(f"a per-channel delay needs one value per channel: {len(steps)} values for the input "
                         f"{list(shapes[0])}", "give as many delays as the input has channels (its first size)")
    return shapes[0]


def _neuron_params(op: ir.NeuronLayer, shapes) -> int:
    return 0  # learnables are added by `check`, which knows the neuron


# ------------------------------------------------------------------ constructors
def _neuron_emit(op: ir.NeuronLayer, shapes, ctx: EmitContext) -> str:
    args = []
    for key, value in op.overrides:
        if key == "surrogate":
            args.append(f"surrogate_function={ctx.surrogate_name(value)}")
        else:
            args.append(f"{key}={python_value(value)}")
    return f"neurons.{op.neuron}({', '.join(args)})"


def python_value(v: ir.Value) -> str:
    match v:
        case ir.Lit(value=x):
            return repr(x)
        case ir.ListValue(items=items):
            return "(" + "".join(python_value(i) + ", " for i in items) + ")"
    raise TypeError(f"no Python form for {v!r}")


_MERGE_DOC = {"add": "a + b", "mul": "a * b", "and": "a * b (spikes: a AND b)", "iand": "a * (1 - b) (a AND NOT b)"}

KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("flatten", ir.Flatten, "[C, H, W] -> [C*H*W]",
         shape=lambda op, s: (math.prod(s[0]),), emit=lambda op, s, c: "rt.Flatten()"),
    Kind("linear", ir.Linear, "fully connected layer; in_features inferred",
         shape=_linear_shape, params=lambda op, s: s[0][0] * op.out_features + (op.out_features if op.bias else 0),
         emit=lambda op, s, c: f"rt.Linear({s[0][0]}, {op.out_features}, bias={op.bias})"),
    Kind("conv2d", ir.Conv2d, "2-d convolution; in_channels inferred",
         shape=_conv_shape,
         params=lambda op, s: s[0][0] * op.out_channels * op.kernel_size ** 2 + (op.out_channels if op.bias else 0),
         emit=lambda op, s, c: f"rt.Conv2d({s[0][0]}, {op.out_channels}, kernel_size={op.kernel_size}, "
                               f"stride={op.stride}, padding={op.padding}, bias={op.bias})"),
    Kind("maxpool2d", ir.MaxPool2d, "max pooling (stride defaults to the kernel size)",
         shape=_pool_shape, emit=lambda op, s, c: f"rt.MaxPool2d({op.kernel_size}, stride={op.stride or op.kernel_size})"),
    Kind("avgpool2d", ir.AvgPool2d, "average pooling (stride defaults to the kernel size)",
         shape=_pool_shape, emit=lambda op, s, c: f"rt.AvgPool2d({op.kernel_size}, stride={op.stride or op.kernel_size})"),
    Kind("batchnorm1d", ir.BatchNorm1d, "batch normalisation of a flat input, over T*N",
         shape=_bn1d_shape, params=lambda op, s: 2 * s[0][0], emit=lambda op, s, c: f"rt.BatchNorm1d({s[0][0]})"),
    Kind("batchnorm2d", ir.BatchNorm2d, "batch normalisation of [C, H, W], over T*N",
         shape=lambda op, s: _image("batchnorm2d", s[0]), params=lambda op, s: 2 * s[0][0],
         emit=lambda op, s, c: f"rt.BatchNorm2d({s[0][0]})"),
    Kind("dropout", ir.Dropout, "dropout with one mask for all T steps", shape=_dropout_shape, stateful=True,
         shown=("p",),
         emit=lambda op, s, c: f"rt.Dropout({op.p!r})"),
    Kind("neuron", ir.NeuronLayer, "a spiking neuron layer (any neuron, by its name)", shape=lambda op, s: s[0],
         params=_neuron_params, emit=_neuron_emit, feedback=lambda op: True, stateful=True),
    *(Kind(m, ir.Merge, f"element-wise merge: {_MERGE_DOC[m]}", shape=lambda op, s, m=m: _same(m, s),
           emit=lambda op, s, c, m=m: f"rt.Merge({m!r})", arity=(2, 2), fixed={"kind": m})
      for m in ("add", "mul", "and", "iand")),
    Kind("concat", ir.Concat, "join inputs along the channel dimension", shape=_concat_shape, arity=(2, None),
         emit=lambda op, s, c: "rt.Concat()"),
    Kind("delay", ir.Delay, "a fixed delay in steps (one value, or one per channel)", shape=_delay_shape,
         feedback=lambda op: min(delay_steps(op)) >= 1, stateful=True,
         emit=lambda op, s, c: f"rt.Delay({python_steps(op)})"),
)}


def python_steps(op: ir.Delay) -> str:
    return repr(op.steps) if isinstance(op.steps, int) else "(" + "".join(f"{d}, " for d in op.steps) + ")"


def kind_of(op) -> Kind:
    return KINDS["neuron" if isinstance(op, ir.NeuronLayer) else op.kind]


def call_text(op) -> str:
    """A node's layer as it reads in `.snn` syntax, with the arguments that differ from their defaults."""
    from .printers import value_text

    if isinstance(op, ir.NeuronLayer):
        args = [f"{k} = {value_text(v)}" for k, v in op.overrides]
    else:
        kind = kind_of(op)
        fields = type(op).model_fields
        args = []
        for name in kind.arguments:
            value, default = getattr(op, name), fields[name].default
            if value != default or name in kind.shown:
                text = str(value).lower() if isinstance(value, bool) else (
                    "[" + ", ".join(map(str, value)) + "]" if isinstance(value, tuple) else str(value))
                args.append(text if fields[name].is_required() else f"{name} = {text}")
    return describe(op) + (f"({', '.join(args)})" if args else "")


def describe(op) -> str:
    """How a node's layer reads in messages and in `snnc check`: 'linear', 'LIF', 'add'."""
    return op.neuron if isinstance(op, ir.NeuronLayer) else op.kind


# ------------------------------------------------------------------ kinds NIR has (snnc import reads them)
def _conv1d_shape(op: ir.Conv1d, shapes):
    if len(shapes[0]) != 2:
        raise LayerError(f"conv1d needs a [C, L] input, but the input here is {list(shapes[0])}",
                         "give the network a sequence input like [2, 100]")
    _positive("conv1d", "out_channels", op.out_channels)
    k, s, pad = _positive("conv1d", "kernel size", op.kernel_size), _positive("conv1d", "stride", op.stride), op.padding
    if pad < 0:
        raise LayerError(f"conv1d padding must not be negative, not {pad}")
    length = (shapes[0][1] + 2 * pad - k) // s + 1
    if length < 1:
        raise LayerError(f"conv1d kernel {k} does not fit the input {list(shapes[0])}", "use padding or a smaller kernel")
    return (op.out_channels, length)


KINDS.update({k.name: k for k in (
    Kind("conv1d", ir.Conv1d, "1-d convolution over [C, L]; in_channels inferred", shape=_conv1d_shape,
         params=lambda op, s: s[0][0] * op.out_channels * op.kernel_size + (op.out_channels if op.bias else 0),
         emit=lambda op, s, c: f"rt.Conv1d({s[0][0]}, {op.out_channels}, kernel_size={op.kernel_size}, "
                               f"stride={op.stride}, padding={op.padding}, bias={op.bias})"),
    Kind("sumpool2d", ir.SumPool2d, "sum pooling (stride defaults to the kernel size)", shape=_pool_shape,
         emit=lambda op, s, c: f"rt.SumPool2d({op.kernel_size}, stride={op.stride or op.kernel_size})"),
    Kind("scale", ir.Scale, "element-wise product with a learned weight of the input's shape (starts at 1)",
         shape=lambda op, s: s[0], params=lambda op, s: math.prod(s[0]),
         emit=lambda op, s, c: f"rt.Scale({tuple(s[0])!r})"),
)})


def _vote_shape(op: ir.Vote, shapes):
    n = _flat("vote", shapes[0], "add 'flatten' before it")
    size = _positive("vote", "size", op.size)
    if n % size:
        raise LayerError(f"vote averages groups of {size}, but its input has {n} values",
                         f"give the layer before it a multiple of {size} outputs, e.g. linear({size * 10})")
    return (n // size,)


KINDS["vote"] = Kind("vote", ir.Vote, "the mean of each group of `size` outputs (SpikingJelly's VotingLayer)",
                     shape=_vote_shape, emit=lambda op, s, c: f"rt.Vote({op.size})")


# Names a user may reach for that are not layers of snnc yet: what to write instead, or what is coming. Checked
# before "did you mean", so that `matmul` is not taken for `mul`.
NOT_YET = {
    "matmul": "matmul is not a layer of snnc yet: spiking attention (Q K^T products) is being built; for a "
              "weighted sum of one input write linear(n)",
    "attention": "attention is not a layer of snnc yet (spiking self-attention is being built)",
    "softmax": "softmax is not a layer: a network's readout (readout = rate | mean | max | last | membrane) and "
               "loss = ce take the place of a softmax output",
    "layernorm": "layer norm is not a layer of snnc yet: batchnorm1d and batchnorm2d are",
    "embedding": "embedding is not a layer of snnc yet: encode the input with an encoder (encoder = ...)",
    "conv3d": "conv3d is not a layer of snnc yet: conv1d and conv2d are",
    "lstm": "an LSTM is not a layer: write the recurrence as a graph (a node may read one defined later) or use "
            "the Recurrent block of import snnc.blocks",
    "rnn": "write the recurrence as a graph (a node may read one defined later) or use the Recurrent block of "
           "import snnc.blocks",
}
