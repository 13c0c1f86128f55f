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
    if len(shapes[0]) == 2:  # tokens [L, C]: the same weights on every token
        return (shapes[0][0], _positive("linear", "out_features", op.out_features))
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
    if len(shapes[0]) == 2:  # tokens [L, C]: over the channels, statistics over T*N*L
        return shapes[0]
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
         shape=_linear_shape, params=lambda op, s: s[0][-1] * op.out_features + (op.out_features if op.bias else 0),
         emit=lambda op, s, c: f"rt.Linear({s[0][-1]}, {op.out_features}, bias={op.bias})"),
    Kind("conv2d", ir.Conv2d, "2-d convolution; in_channels inferred",
         shape=_conv_shape,
         params=lambda op, s: s[0][0] * op.out_channels * op.kernel_size ** 2 + (op.out_channels if op.bias else 0),
         emit=lambda op, s, c: f"rt.Conv2d({s[0][0]}, {op.out_channels}, kernel_size={op.kernel_size}, "
                               f"stride={op.stride}, padding={op.padding}, bias={op.bias})"),
    Kind("maxpool2d", ir.MaxPool2d, "max pooling (stride defaults to the kernel size)",
         shape=_pool_shape, emit=lambda op, s, c: f"rt.MaxPool2d({op.kernel_size}, stride={op.stride or op.kernel_size})"),
    Kind("avgpool2d", ir.AvgPool2d, "average pooling (stride defaults to the kernel size)",
         shape=_pool_shape, emit=lambda op, s, c: f"rt.AvgPool2d({op.kernel_size}, stride={op.stride or op.kernel_size})"),
    Kind("batchnorm1d", ir.BatchNorm1d, "batch normalisation of a flat input, over T*N (of tokens: per channel)",
         shape=_bn1d_shape, params=lambda op, s: 2 * s[0][-1],
         emit=lambda op, s, c: f"rt.{'TokenBatchNorm1d' if len(s[0]) == 2 else 'BatchNorm1d'}({s[0][-1]})"),
    Kind("batchnorm2d", ir.BatchNorm2d, "batch normalisation of [C, H, W], over T*N",
         shape=lambda op, s: _image("batchnorm2d", s[0]), params=lambda op, s: 2 * s[0][0],
         emit=lambda op, s, c: f"rt.BatchNorm2d({s[0][0]})"),
    Kind("dropout", ir.Dropout, "dropout with one mask for all T steps", shape=_dropout_shape, stateful=True,
         shown=("p",),
         emit=lambda op, s, c: f"rt.Dropout({op.p!r})"),
    Kind("neuron", ir.NeuronLayer, "a spiking neuron layer (any neuron, by its name)", shape=lambda op, s: s[0],
         params=_neuron_params, emit=_neuron_emit, feedback=lambda op: True, stateful=True),
    *(Kind(m, ir.Merge, f"element-wise merge: {_MERGE_DOC[m]}",
           shape=lambda op, s, m=m: _broadcast(m, s) if m == "mul" else _same(m, s),
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


# ------------------------------------------------------------------ learnable delays (runtime/delays.py)
def _dcls_shape(op: ir.Dcls, shapes):
    _flat("dcls", shapes[0], "add 'flatten' before it")
    if op.max_delay < 0:
        raise LayerError(f"dcls max_delay must be a whole number of steps >= 0, not {op.max_delay}",
                         "e.g. max_delay = 25")
    return (_positive("dcls", "out_features", op.out_features),)


def dcls_memory(op: ir.Dcls, shapes) -> int:
    """The values a dcls layer keeps per sample beyond a linear layer's: its time-axis receptive field, the last
    max_delay inputs (single steps), and its [out, in, max_delay + 1] kernel of taps (shared by the batch)."""
    return op.max_delay * shapes[0][0]


KINDS["dcls"] = Kind(
    "dcls", ir.Dcls, "linear layer with a learnable delay per synapse (DCLS; rounded to steps for inference)",
    shape=_dcls_shape, stateful=True,
    params=lambda op, s: 2 * s[0][0] * op.out_features + (op.out_features if op.bias else 0),
    emit=lambda op, s, c: f"rt.Dcls({s[0][0]}, {op.out_features}, max_delay={op.max_delay}, "
                          f"kernel={op.kernel!r}, init={op.init!r}, bias={op.bias})")


def delay_report(op, shapes: list[Shape], T: int) -> str | None:
    """`snnc check`'s line for a delay layer (fixed or learnable): its maximum delay, its parameters and the extra
    memory it needs (its time-axis receptive field); None for other kinds."""
    if isinstance(op, ir.Dcls):
        n_in = shapes[0][0]
        synapses = n_in * op.out_features
        taps = synapses * (op.max_delay + 1)
        return (f"max delay {op.max_delay} steps (receptive field {op.max_delay + 1} of T = {T}), "
                f"{synapses:,} weights + {synapses:,} positions ({op.kernel} kernel, rounded for inference); "
                f"extra memory: {dcls_memory(op, shapes):,} values per sample ({op.max_delay} past steps x {n_in} "
                f"inputs), {taps:,} kernel taps")
    if isinstance(op, ir.Delay):
        steps = delay_steps(op)
        per_sample = max(steps) * math.prod(shapes[0])
        return (f"max delay {max(steps)} steps (fixed), 0 parameters; extra memory: {per_sample:,} values per "
                f"sample ({max(steps)} past steps x {math.prod(shapes[0])} values)")
    return None


# Names a user may reach for that are not layers of snnc yet: what to write instead, or what is coming. Checked
# before "did you mean", so that `matmul` is not taken for `mul`.
NOT_YET = {
    "attention": "attention is written from its parts (matmul, heads, neurons): import snnc.transformers has "
                 "Spikformer's SSA and the Spike-driven Transformer's SDSA as blocks",
    "softmax": "softmax is not a layer: a network's readout (readout = rate | mean | max | last | membrane) and "
               "loss = ce take the place of a softmax output",
    "embedding": "embedding is not a layer of snnc yet: encode the input with an encoder (encoder = ...)",
    "conv3d": "conv3d is not a layer of snnc yet: conv1d and conv2d are",
    "lstm": "an LSTM is not a layer: write the recurrence as a graph (a node may read one defined later) or use "
            "the Recurrent block of import snnc.blocks",
    "rnn": "write the recurrence as a graph (a node may read one defined later) or use the Recurrent block of "
           "import snnc.blocks",
}


# ------------------------------------------------------------------ tokens and attention
# Tokens are [L, C] per sample: L tokens (positions) of C channels, channels last (as SpikingJelly's Spikformer
# models hold them after `flatten(-2).transpose(-1, -2)`); heads make it [H, L, C / H]. A linear layer or
# batchnorm1d on tokens acts on the channels of every token.
def _tokens_of(kind: str, shape: Shape, hint: str = "turn a feature map into tokens with 'tokens'") -> Shape:
    if len(shape) != 2:
        raise LayerError(f"{kind} needs tokens [L, C], but the input here is {list(shape)}", hint)
    return shape


def _tokens_shape(op, shapes):
    c, h, w = _image("tokens", shapes[0])
    return (h * w, c)


def _shapes_text(shapes) -> str:
    return " and ".join(str(list(s)) for s in shapes)


def _matmul_shape(op: ir.Matmul, shapes):
    a, b = shapes
    if len(a) < 2 or len(b) < 2:
        raise LayerError(f"matmul multiplies matrices (the last two axes), but the inputs are {_shapes_text(shapes)}",
                         "give it tokens [L, C] or heads [H, L, D]")
    if a[:-2] != b[:-2]:
        raise LayerError(f"matmul needs the same leading axes (e.g. heads), but the inputs are {_shapes_text(shapes)}",
                         "split both inputs into the same number of heads")
    (l, m), (m2, k) = (a[-1:-3:-1] if op.transpose_a else a[-2:]), (b[-1:-3:-1] if op.transpose_b else b[-2:])
    if m != m2:
        ta, tb = (" (transposed)" if op.transpose_a else ""), (" (transposed)" if op.transpose_b else "")
        raise LayerError(f"matmul needs the first input's columns to match the second's rows, but the inputs are "
                         f"{list(a)}{ta} and {list(b)}{tb}: {m} columns against {m2} rows",
                         "transpose one input (transpose_a = true or transpose_b = true), e.g. Q K^T is "
                         "matmul(q, k, transpose_b = true)")
    return (*a[:-2], l, k)


def _heads_shape(op: ir.Heads, shapes):
    l, c = _tokens_of("heads", shapes[0])
    n = _positive("heads", "number of heads", op.heads)
    if c % n:
        raise LayerError(f"heads({n}) must divide the width, but the input {list(shapes[0])} has {c} channels",
                         f"use a width that is a multiple of {n}, or a number of heads that divides {c}")
    return (n, l, c // n)


def _merge_heads_shape(op, shapes):
    if len(shapes[0]) != 3:
        raise LayerError(f"merge_heads needs heads [H, L, D], but the input here is {list(shapes[0])}",
                         "split tokens into heads first, with heads(n)")
    h, l, d = shapes[0]
    return (l, h * d)


def _reduce_shape(op: ir.Reduce, shapes):
    shape = shapes[0]
    need = 2 if op.axis == "tokens" else 1
    if len(shape) < need or len(shape) > 3:
        raise LayerError(f"{op.kind} over {op.axis} needs tokens [L, C] or heads [H, L, D], but the input here is "
                         f"{list(shape)}", "turn a feature map into tokens with 'tokens'")
    axis = len(shape) - (2 if op.axis == "tokens" else 1)
    return tuple(1 if i == axis else n for i, n in enumerate(shape)) if op.keepdim else shape[:axis] + shape[axis + 1:]


def _broadcast(kind: str, shapes: list[Shape]) -> Shape:
    """Element-wise shapes that agree, or where one of them is 1 (a mask over all tokens, as in SDSA)."""
    a, b = shapes
    if len(a) != len(b) or any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        raise LayerError(f"{kind} needs inputs of one shape (or size 1 where they differ), but they are "
                         f"{_shapes_text(shapes)}", "make both branches produce the same shape, or reduce one "
                         "with sum(tokens) to broadcast it over the tokens")
    return tuple(max(x, y) for x, y in zip(a, b))


def _reduce_emit(op: ir.Reduce, s, c) -> str:
    return f"rt.Reduce({op.kind!r}, axis={op.axis!r}, keepdim={op.keepdim})"


KINDS.update({k.name: k for k in (
    Kind("tokens", ir.Tokens, "a feature map as tokens: [C, H, W] -> [H*W, C]", shape=_tokens_shape,
         emit=lambda op, s, c: "rt.Tokens()"),
    Kind("matmul", ir.Matmul, "matrix product of two nodes over their last two axes (optionally transposed), "
         "times scale", shape=_matmul_shape, arity=(2, 2),
         emit=lambda op, s, c: f"rt.Matmul(transpose_a={op.transpose_a}, transpose_b={op.transpose_b}, "
                               f"scale={op.scale!r})"),
    Kind("heads", ir.Heads, "split the channels of tokens into heads: [L, C] -> [H, L, C/H]", shape=_heads_shape,
         emit=lambda op, s, c: f"rt.Heads({op.heads})"),
    Kind("merge_heads", ir.MergeHeads, "join heads into channels: [H, L, D] -> [L, H*D]", shape=_merge_heads_shape,
         emit=lambda op, s, c: "rt.MergeHeads()"),
    *(Kind(r, ir.Reduce, f"the {r} over the tokens or channels axis (keepdim: keep it as size 1)",
           shape=_reduce_shape, emit=_reduce_emit, fixed={"kind": r}) for r in ("sum", "mean")),
    Kind("layernorm", ir.LayerNorm, "layer normalisation over the channel (last) axis",
         shape=lambda op, s: s[0] if s[0] else _tokens_of("layernorm", s[0]), params=lambda op, s: 2 * s[0][-1],
         emit=lambda op, s, c: f"rt.LayerNorm({s[0][-1]})"),
)})
