"""torch.compile over generated networks: the fused neurons are custom operators (fake implementations and a
registered autograd formula), so dynamo traces every network in models/ without a graph break, and compiled
outputs and gradients equal eager ones."""
from __future__ import annotations

import pytest
import torch

import snnc
from snnc.runtime.backends import available

from conftest import MODELS

MODEL_FILES = sorted(p for p in MODELS.glob("*.snn") if p.stem != "neurons")
BACKENDS = [b for b in ("torch", "cpp") if b in available("cpu")]


def _net(path, backend, network=None):
    torch.manual_seed(0)
    return snnc.load(path).network(network, backend=backend)


def _input(net, n=3):
    return torch.rand(net.T if net.T <= 32 else 32, n, *net.INPUT_SHAPE, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_no_graph_breaks(path, backend):
    net = _net(path, backend)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(net)(_input(net))
    reasons = [b.reason for b in explanation.break_reasons]
    assert explanation.graph_break_count == 0, reasons
    assert explanation.graph_count == 1


def _run(net, x):
    out = net(x)
    loss = (out.float() ** 2).sum()
    params = [p for p in net.parameters() if p.requires_grad]
    return out.detach(), torch.autograd.grad(loss, params)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_compiled_outputs_and_gradients_equal_eager(path, backend):
    eager = _net(path, backend).eval()
    compiled_net = _net(path, backend).eval()
    compiled_net.load_state_dict(eager.state_dict())
    x = _input(eager)
    ref, ref_grads = _run(eager, x)
    torch._dynamo.reset()
    compiled = torch.compile(compiled_net, backend="aot_eager", fullgraph=True)
    out, grads = _run(compiled, x)
    assert torch.equal(out, ref)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_inductor_trains_fc2_like_eager():
    """The issue's example, compiled by inductor (C++ codegen on the CPU): one training step each."""
    path = MODELS / "fc2_mnist.snn"
    eager, compiled_net = _net(path, "cpp"), _net(path, "cpp")
    compiled_net.load_state_dict(eager.state_dict())
    x = _input(eager, 8)
    ref, ref_grads = _run(eager, x)
    torch._dynamo.reset()
    out, grads = _run(torch.compile(compiled_net, fullgraph=True), x)
    assert torch.equal(out, ref)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_signature_is_marked_constant_as_the_public_decorator_marks():
    """ops marks its signature lookup constant by hand (importing Dynamo at start-up costs over a second):
    the public decorator must still do exactly that."""
    from snnc.runtime import ops

    def probe(spec):
        return spec

    marked = torch.compiler.assume_constant_result(probe)
    assert set(vars(marked)) == set(vars(ops._signature)) == {"_dynamo_marked_constant"}
    assert marked._dynamo_marked_constant is ops._signature._dynamo_marked_constant is True

