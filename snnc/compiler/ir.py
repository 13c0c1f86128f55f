"""The checked model: frozen Pydantic models, no behaviour.

Expressions and layers are discriminated unions. Source spans ride along but
are excluded from serialisation and equality-sensitive uses should go through
`same_expr`.
"""
from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from .source import Span


class Node(BaseModel):
    # infinities and NaN survive a JSON round trip (the plan cache, kernel specs) as Infinity and NaN, not null
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True, ser_json_inf_nan="constants")
    span: Optional[Span] = Field(default=None, exclude=True, repr=False)


# ---------------------------------------------------------------- expressions
class Num(Node):
    kind: Literal["num"] = "num"
    value: float


class Bool(Node):
    kind: Literal["bool"] = "bool"
    value: bool


class Var(Node):
    kind: Literal["var"] = "var"
    name: str


class Unary(Node):
    kind: Literal["unary"] = "unary"
    op: Literal["-", "not"]
    operand: "Expr"


BinOpName = Literal["+", "-", "*", "/", "^", "<", "<=", ">", ">=", "==", "!=", "and", "or"]


class BinOp(Node):
    kind: Literal["binop"] = "binop"
    op: BinOpName
    left: "Expr"
    right: "Expr"


class Call(Node):
    kind: Literal["call"] = "call"
    func: str
    args: tuple["Expr", ...]


Expr = Annotated[Union[Num, Bool, Var, Unary, BinOp, Call], Field(discriminator="kind")]
for _cls in (Unary, BinOp, Call):
    _cls.model_rebuild()

# Functions an expression may call, with their arity.
FUNCTIONS: dict[str, int] = {
    "exp": 1, "log": 1, "sqrt": 1, "abs": 1, "tanh": 1, "sigmoid": 1, "atan": 1,
    "erf": 1, "sign": 1, "heaviside": 1, "min": 2, "max": 2, "clamp": 3, "where": 3,
}


def same_expr(a: Expr, b: Expr) -> bool:
    """Structural equality, ignoring spans."""
    return a.model_dump() == b.model_dump()


def walk(e: Expr):
    """Every node of an expression, parents first, left to right (without recursion: expressions nest deep)."""
    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        match node:
            case Unary(operand=a):
                stack.append(a)
            case BinOp(left=a, right=b):
                stack += [b, a]
            case Call(args=args):
                stack += reversed(args)


# ---------------------------------------------------------------- neurons
class Param(Node):
    name: str
    type: Literal["float", "bool"]
    optional: bool = False  # may be `none` (only v_reset uses this today)
    default: Optional[Expr] = None  # None means `none`


class Learnable(Node):
    name: str
    init: Expr


class State(Node):
    name: str
    init: Expr


class Assign(Node):
    """`target = value`, `target += value`, or a differential equation d target / dt = value ("d/dt")."""

    target: str
    op: Literal["=", "+=", "d/dt"]
    value: Expr


class Require(Node):
    cond: Expr


class Surrogate(Node):
    name: str  # a built-in surrogate, or "custom"
    args: tuple[tuple[str, float], ...] = ()
    grad: Optional[Expr] = None  # custom: d spike / d x as an expression of x and args


class Neuron(Node):
    name: str
    file: str
    params: tuple[Param, ...]
    learnables: tuple[Learnable, ...] = ()
    states: tuple[State, ...]
    charge: tuple[Assign, ...]
    on_spike: tuple[Assign, ...] = ()
    requires: tuple[Require, ...] = ()
    surrogate: Surrogate
    output: Literal["spike", "membrane"] = "spike"  # membrane: a non-spiking neuron (never fires, emits v)
    integrate: Literal["euler", "rk2", "exponential_euler", "exact"] = "euler"  # for differential equations
    written_charge: tuple[Assign, ...] = ()  # the charge as written, where `ode` lowered it to difference equations

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)


# ---------------------------------------------------------------- networks
class Lit(Node):
    kind: Literal["lit"] = "lit"
    value: Union[bool, float, str, None]


class ListValue(Node):
    kind: Literal["list"] = "list"
    items: tuple["Value", ...]


class CallValue(Node):
    """`name(arg, key=value)` in a setting or layer argument (e.g. a surrogate)."""

    kind: Literal["callvalue"] = "callvalue"
    func: str
    args: tuple["Value", ...] = ()
    kwargs: tuple[tuple[str, "Value"], ...] = ()


Value = Annotated[Union[Lit, ListValue, CallValue], Field(discriminator="kind")]
ListValue.model_rebuild()
CallValue.model_rebuild()


class Flatten(Node):
    kind: Literal["flatten"] = "flatten"


class Linear(Node):
    kind: Literal["linear"] = "linear"
    out_features: int
    bias: bool = True


class Conv2d(Node):
    kind: Literal["conv2d"] = "conv2d"
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    bias: bool = True


class MaxPool2d(Node):
    kind: Literal["maxpool2d"] = "maxpool2d"
    kernel_size: int
    stride: Optional[int] = None


class AvgPool2d(Node):
    kind: Literal["avgpool2d"] = "avgpool2d"
    kernel_size: int
    stride: Optional[int] = None


class BatchNorm1d(Node):
    kind: Literal["batchnorm1d"] = "batchnorm1d"


class BatchNorm2d(Node):
    kind: Literal["batchnorm2d"] = "batchnorm2d"


class Dropout(Node):
    kind: Literal["dropout"] = "dropout"
    p: float = 0.5


class NeuronLayer(Node):
    kind: Literal["neuron"] = "neuron"
    neuron: str
    overrides: tuple[tuple[str, Value], ...] = ()
    override_spans: tuple[Optional[Span], ...] = Field(default=(), exclude=True, repr=False)  # `key = value`


class Merge(Node):
    """Element-wise merge of two inputs (SpikingJelly's SEW connect functions): add a + b, mul a * b,
    and a * b (for spikes: a AND b), iand a * (1 - b) (a AND NOT b)."""

    kind: Literal["add", "mul", "and", "iand"]


class Concat(Node):
    """Inputs joined along the channel (first per-sample) dimension."""

    kind: Literal["concat"] = "concat"


class Delay(Node):
    """A fixed synaptic delay in steps: one for all channels, or one per channel."""

    kind: Literal["delay"] = "delay"
    steps: Union[int, tuple[int, ...]]


class Dcls(Node):
    """A linear layer with a learnable delay per synapse (DCLS): each synapse's delay a continuous position in
    [0, max_delay] steps, spread over the time axis by a `kernel` whose width the train block anneals
    (`delay_sigma`), rounded to whole steps for inference. `init` places the positions: uniform over the range,
    all at 0, or all at max_delay / 2."""

    kind: Literal["dcls"] = "dcls"
    out_features: int
    max_delay: int = 25
    kernel: Literal["gaussian", "triangle"] = "gaussian"
    init: Literal["uniform", "zero", "half"] = "uniform"
    bias: bool = False


class Conv1d(Node):
    """1-d convolution over [C, L] (NIR's Conv1d)."""

    kind: Literal["conv1d"] = "conv1d"
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    bias: bool = True


class SumPool2d(Node):
    """Sum (not mean) over each window (NIR's SumPool2d)."""

    kind: Literal["sumpool2d"] = "sumpool2d"
    kernel_size: int
    stride: Optional[int] = None


class Scale(Node):
    """Element-wise product with a learned weight of the input's shape (NIR's Scale)."""

    kind: Literal["scale"] = "scale"


class Vote(Node):
    """The mean of each group of `size` outputs (SpikingJelly's VotingLayer): [C] -> [C / size]."""

    kind: Literal["vote"] = "vote"
    size: int = 10


class Tokens(Node):
    """A feature map as tokens: [C, H, W] -> [H*W, C] (one token per position; Spikformer's patch flattening)."""

    kind: Literal["tokens"] = "tokens"


class Matmul(Node):
    """The matrix product of two nodes over their last two axes, each optionally transposed, times `scale`:
    [..., L, M] x [..., M, K] -> [..., L, K] (the leading axes, e.g. heads, must agree)."""

    kind: Literal["matmul"] = "matmul"
    transpose_a: bool = False
    transpose_b: bool = False
    scale: float = 1.0


class Heads(Node):
    """Split the channels of tokens into heads: [L, C] -> [heads, L, C / heads]."""

    kind: Literal["heads"] = "heads"
    heads: int


class MergeHeads(Node):
    """Join heads back into channels: [heads, L, D] -> [L, heads * D]."""

    kind: Literal["merge_heads"] = "merge_heads"


class Reduce(Node):
    """The sum or mean over one named axis (`tokens`: the second to last, `channels`: the last)."""

    kind: Literal["sum", "mean"]
    axis: Literal["tokens", "channels"] = "tokens"
    keepdim: bool = True


class LayerNorm(Node):
    """Layer normalisation over the channel (last) axis, with a learned scale and shift."""

    kind: Literal["layernorm"] = "layernorm"


Op = Annotated[
    Union[Flatten, Linear, Conv2d, MaxPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Dropout, NeuronLayer, Merge,
          Concat, Delay, Conv1d, SumPool2d, Scale, Vote, Dcls, Tokens, Matmul, Heads, MergeHeads,
          Reduce, LayerNorm],
    Field(discriminator="kind"),
]

INPUT = "in"  # the name of a network's (or block's) input in a graph


class Layer(Node):
    """One node of a network graph. `name` is its path ('3', 'fc', 'stage1.conv'), unique in the network;
    `inputs` name the nodes it reads, in order ('in' is the network input). An input defined after this
    node is a feedback connection: a neuron's output of the previous step, or a delay's output."""

    name: str
    op: Op
    inputs: tuple[str, ...]
    label: Optional[str] = None  # the name the user gave it, if any


class Step(Node):
    """A data step of a train block: a binning (`frames = time_window(us = 10000)`), a preprocessing step
    (`transform = [downsample(2)]`) or an augmentation (`augment = [flip]`), by name, with its arguments. The
    tables of `datasets` say which names exist and what their arguments are."""

    name: str
    args: tuple[tuple[str, Union[float, tuple[float, ...]]], ...] = ()


class Train(Node):
    dataset: Optional[str] = None  # a row of the dataset table (compiler/datasets.py); None: not said (MNIST)
    frames: Optional[Step] = None  # how events become frames (None: the dataset's default)
    transform: tuple[Step, ...] = ()  # deterministic preprocessing (cached with the frames)
    augment: tuple[Step, ...] = ()  # random, per sample and epoch, training only
    epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-3
    opt: Literal["adam", "sgd"] = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_schedule: Literal["none", "cosine"] = "none"
    loss: Literal["mse", "ce"] = "mse"
    seed: int = 0
    amp: bool = False
    val_split: float = 0.1  # the share of training images held out to choose best.pt
    memory: Literal["fast", "balanced", "min"] = "fast"  # what backward keeps (compiler/memory.py)
    gradient: Literal["bptt", "sltt"] = "bptt"  # through time, or online (runtime/online.py)
    # learnable delays (dcls layers): the kernel width annealed from delay_sigma[0] to delay_sigma[1] (steps)
    # over delay_epochs epochs (None: a quarter of the epochs, as DCLS); the positions' learning rate delay_lr
    # (None: 100 x lr, as DCLS); () for sigma: from max_delay / 2 down to 0.5
    delay_sigma: tuple[float, ...] = ()
    delay_epochs: Optional[int] = None
    delay_lr: Optional[float] = None


class Network(Node):
    name: str
    file: str
    input_shape: tuple[int, ...]
    T: int
    encoder: str = "poisson"  # a row of the encoder table (compiler/encoders.py); default: the dataset's
    readout: Literal["rate", "mean", "max", "last", "membrane"] = "rate"
    step_mode: Literal["s", "m"] = "m"
    layers: tuple[Layer, ...]  # in definition order; the last one is the output
    train: Train = Train()
    # where each setting was written ('T', 'input_shape', 'train.dataset', 'train.augment.1', ...), for messages
    setting_spans: tuple[tuple[str, Span], ...] = Field(default=(), exclude=True, repr=False)


class Module(Node):
    """One `.snn` file with its imports resolved: every neuron it can see, its own networks."""

    file: str
    neurons: tuple[Neuron, ...]
    networks: tuple[Network, ...] = ()

    def neuron(self, name: str) -> Neuron | None:
        return next((n for n in self.neurons if n.name == name), None)
