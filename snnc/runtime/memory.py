"""Carrying out a network's memory plan (compiler/memory.py): outputs kept as bits, or recomputed in backward.

While a planned network runs forward with gradients, `saved_tensors_hooks` see every tensor autograd keeps.
A node's output is registered as it is made (a forward hook on its module); a kept tensor that lies in a
registered output's storage (the output, or a view of it such as its [T*N, ...] fold) is replaced by a
handle on that output: 'bits' packs it once, 1 bit per element, 'recompute' keeps the node's inputs (as
handles again) and reruns the module in backward, under the autocast state of the forward pass. Unpacking
gives the same values in the same geometry, so gradients are bit-identical to autograd's own (tests check
this). An output read by several kept tensors is packed once and unpacked once per backward. Batch norm
is rerun on its batch statistics without touching its running statistics; a parameter changed in place
between forward and backward is an error, as autograd's own check would make it.
"""
from __future__ import annotations

import weakref

import torch
from torch import nn

from . import support

ACTIONS = ("bits", "recompute")


def apply(net: nn.Module, actions: dict[str, str]) -> None:
    """Plan `net` (a generated network): node -> 'bits' | 'recompute'; an empty plan is autograd's way."""
    for handle in getattr(net, "_snnc_memory_hooks", ()):
        handle.remove()
    net._snnc_memory_hooks = []
    net.saving = None
    if not actions:
        return
    session = Session()
    for name, action in actions.items():
        if action not in ACTIONS:
            raise ValueError(f"memory action must be one of {', '.join(ACTIONS)}, not {action!r}")
        hook = session.hook(action)
        net._snnc_memory_hooks.append(net.node(name).register_forward_hook(hook))
    net.saving = session


def policy_actions(net: nn.Module, policy: str) -> dict[str, str]:
    """The node actions a generated network carries for `policy` ('fast': none)."""
    if policy == "fast":
        return {}
    plans = getattr(net, "MEMORY", {})
    if policy not in plans:
        raise ValueError(f"memory policy must be one of fast, {', '.join(plans)}, not {policy!r}")
    return dict(plans[policy])


# ------------------------------------------------------------------ bits
_SHIFTS = {}


def _shifts(device) -> torch.Tensor:
    s = _SHIFTS.get(device)
    if s is None:
        s = _SHIFTS[device] = torch.arange(7, -1, -1, dtype=torch.uint8, device=device)
    return s


def pack_bits(t: torch.Tensor) -> torch.Tensor:
    """A binary tensor's elements (0 or non-zero), 8 to a byte, most significant first."""
    flat = (t.reshape(-1) != 0).to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat((flat, flat.new_zeros(pad)))
    return (flat.view(-1, 8) << _shifts(t.device)).sum(1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, shape, dtype) -> torch.Tensor:
    n = 1
    for d in shape:
        n *= d
    bits = (packed.unsqueeze(1) >> _shifts(packed.device)) & 1
    return bits.view(-1)[:n].to(dtype).view(shape)


# ------------------------------------------------------------------ registered outputs
class _Output:
    """A registered node output: how to have its values again in backward, and how often it is kept."""

    def __init__(self, tensor: torch.Tensor):
        self.ref = weakref.ref(tensor)
        self.shape, self.dtype, self.offset = tuple(tensor.shape), tensor.dtype, tensor.storage_offset()
        self.uses = 0
        self.cache = None
        self.stored = False

    def covers(self, t: torch.Tensor) -> bool:
        base = self.ref()
        if base is None or t.dtype != self.dtype:
            return False
        start = t.storage_offset() - self.offset
        end = start + sum((n - 1) * s for n, s in zip(t.shape, t.stride()) if n > 0)
        return start >= 0 and end < base.numel() and all(s >= 0 for s in t.stride())

    def store(self, session: "Session") -> None:
        raise NotImplementedError

    def compute(self) -> torch.Tensor:
        raise NotImplementedError

    def value(self) -> torch.Tensor:
        if self.cache is not None:
            v = self.cache
        else:
            v = self.compute()
        self.uses -= 1
        self.cache = v if self.uses > 0 else None
        return v


class _Bits(_Output):
    def store(self, session):
        self.packed = pack_bits(self.ref())

    def compute(self):
        return unpack_bits(self.packed, self.shape, self.dtype)


class _Recompute(_Output):
    def __init__(self, tensor, module, inputs):
        super().__init__(tensor)
        self.module, self.inputs = module, inputs
        self.device = tensor.device.type
        self.autocast = (torch.is_autocast_enabled(self.device), torch.get_autocast_dtype(self.device))
        self.versions = [p._version for p in module.parameters()]

    def store(self, session):
        self.inputs = tuple(session.pack(x) if isinstance(x, torch.Tensor) else x for x in self.inputs)

    def compute(self):
        if [p._version for p in self.module.parameters()] != self.versions:
            raise RuntimeError(f"{type(self.module).__name__}: a parameter was changed in place between forward and "
                               "backward; the output recomputed in backward would not be the one used")
        inputs = [Session.unpack(x) if isinstance(x, _Handle) else x for x in self.inputs]
        enabled, dtype = self.autocast
        with torch.no_grad(), torch.autocast(self.device, dtype=dtype, enabled=enabled):
            out = rerun(self.module, inputs)
        return out.reshape(self.shape) if out.shape != self.shape else out


def rerun(module: nn.Module, inputs):
    """The module's output again; batch norm in training mode on the batch statistics, running ones untouched."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
        (x,) = inputs
        folded = x.flatten(0, 1) if module.step_mode == "m" else x
        y = nn.functional.batch_norm(folded, None, None, module.weight, module.bias, True, 0.0, module.eps)
        return y.reshape(x.shape)
    return module(*inputs)


class _Handle:
    """What autograd keeps instead of a tensor: a registered output and the geometry of the kept view."""

    __slots__ = ("output", "size", "stride", "offset")

    def __init__(self, output: _Output, t: torch.Tensor):
        self.output, self.size, self.stride = output, tuple(t.shape), tuple(t.stride())
        self.offset = t.storage_offset() - output.offset


class Session:
    """One planned network's registry of outputs, and the hooks that use it (`support.Network` enters it
    around each multi-step forward pass with gradients)."""

    def __init__(self):
        self.outputs: dict[int, _Output] = {}
        self.active = 0

    def hook(self, action: str):
        def registered(module, inputs, output):
            if not self.active or not isinstance(output, torch.Tensor) or not output.requires_grad:
                return
            if not output.is_contiguous() or any(
                    isinstance(x, torch.Tensor) and _storage(x) == _storage(output) for x in inputs):
                return  # a view of an input: that input's entry covers it
            if action == "bits":
                if isinstance(module, support.NeuronBase) and module.output != "spike":
                    return
                entry = _Bits(output)
            else:
                entry = _Recompute(output, module, inputs)
            self.outputs[_storage(output)] = entry
        return registered

    def pack(self, t: torch.Tensor):
        kept = self._pack(t)
        for observer in _OBSERVERS:
            observer.saw(kept)
        return kept

    def _pack(self, t: torch.Tensor):
        if not self.active:
            return t
        entry = self.outputs.get(_storage(t))
        if entry is None or not entry.covers(t):
            return t
        if not entry.stored:
            entry.store(self)
            entry.stored = True
        entry.uses += 1
        return _Handle(entry, t)

    @staticmethod
    def unpack(h):
        if not isinstance(h, _Handle):
            return h
        base = h.output.value()
        return base.as_strided(h.size, h.stride, base.storage_offset() + h.offset)

    def __enter__(self):
        self.active += 1
        if self.active == 1:
            self._hooks = torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)
            self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self.active -= 1
        if self.active == 0:
            self._hooks.__exit__(*exc)
            for entry in self.outputs.values():
                if not entry.stored and isinstance(entry, _Recompute):
                    entry.inputs = ()  # never kept: drop what it held
            self.outputs = {}
        return False


_OBSERVERS: list = []


class Kept:
    """What autograd keeps for backward while this is entered, in bytes (parameters, which live anyway, not
    counted): tensors deduplicated by storage, an
    output kept as bits by its packed bytes (once), a recomputed one by nothing but what it keeps of its inputs.
    Planned networks report what they keep; anything else is seen through saved_tensors_hooks."""

    def __init__(self):
        self.storages: dict[int, int] = {}
        self.packed: dict[int, int] = {}

    @property
    def bytes(self) -> int:
        return sum(self.storages.values()) + sum(self.packed.values())

    def saw(self, kept) -> None:
        if isinstance(kept, _Handle):
            if isinstance(kept.output, _Bits):
                self.packed[id(kept.output)] = kept.output.packed.nbytes
        elif isinstance(kept, torch.Tensor) and not isinstance(kept, nn.Parameter) and not isinstance(
                kept._base, nn.Parameter):  # parameters (and views of them, a transposed weight) live anyway
            self.storages[_storage(kept)] = kept.untyped_storage().nbytes()

    def _plain(self, t):
        self.saw(t)
        return t

    def __enter__(self):
        _OBSERVERS.append(self)
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._plain, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)
        _OBSERVERS.remove(self)
        return False


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()
