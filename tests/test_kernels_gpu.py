"""CUDA fused kernels (CuPy + NVRTC) against eager autograd on the GPU, fp32 and fp16. Skipped without CUDA."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from snnc.compiler.assemble import load_module
from snnc.compiler.derive import default_config, plan
from snnc.compiler.source import SnncError
from snnc.runtime.verify import compare, default_values, learnable_defaults, random_input, reference_multi_step

from conftest import MODELS

LIB = load_module(MODELS / "neurons.snn")[0]
# T = 1; N off the four lanes (lanes a block apart); N a multiple of them (vector accesses), with T past one
# chunk of steps and not a multiple of it, and with T = 100 over a small layer (64-thread blocks)
SHAPES = ((1, 7), (6, 3, 37), (5, 4099), (9, 2, 1024), (100, 16, 64))


def _cases():
    for n in LIB.neurons:
        base = default_config(n)
        for soft in (False, True):
            for detach in (False, True):
                yield n.name, dataclasses.replace(base, soft_reset=soft, detach_reset=detach)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("name, cfg", list(_cases()), ids=lambda v: v if isinstance(v, str) else v.key())
@pytest.mark.gpu
def test_cupy_matches_eager(name, cfg, dtype):
    n = LIB.neuron(name)
    p = plan(n, cfg)
    scalars = default_values(n, cfg)
    learn = learnable_defaults(n, scalars)
    for i, shape in enumerate(SHAPES):
        x, inits = random_input(p, shape, scalars, learn, seed=i)
        if dtype == "float16":
            x = x.half().float()  # the reference sees the same rounded input
        res = compare("cupy", p, x, inits, scalars, learn, dtype=dtype, device="cuda", seed=i)
        assert res.status == "ok", f"{name} {cfg.key()} {dtype} {shape}: {res.reason}"


@pytest.mark.gpu
def test_runs_on_the_current_stream_and_under_autocast():
    from snnc.runtime.ops import run_plan

    n = LIB.neuron("PLIF")
    p = plan(n)
    scalars = default_values(n, p.config)
    x = torch.rand(8, 64, 100, device="cuda") * 2
    w = torch.tensor(learnable_defaults(n, scalars)["w"], device="cuda", requires_grad=True)
    ref_s, (ref_v,), _ = reference_multi_step(p, x, (torch.zeros(64, 100, device="cuda"),), scalars, (w,))
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        s, (v,) = run_plan(p, "cupy", x, (torch.zeros(64, 100, device="cuda"),), scalars, (w,))
        s.sum().backward()
    torch.cuda.synchronize()
    assert torch.equal(s, ref_s) and torch.equal(v, ref_v) and w.grad is not None
    lin = torch.nn.Linear(100, 100).cuda()
    with torch.autocast("cuda", dtype=torch.float16):
        h = lin(x)
        assert h.dtype == torch.float16
        s16, _ = run_plan(p, "cupy", h, (torch.zeros(64, 100, device="cuda"),), scalars, (w,))
    assert s16.dtype == torch.float16
    s16.float().sum().backward()
    assert lin.weight.grad is not None and torch.isfinite(lin.weight.grad).all()


def test_cpu_tensors_are_an_snnc_error():
    from snnc.runtime.ops import kernels
    from snnc.runtime.plans import spec_for

    p = plan(LIB.neuron("LIF"))
    with pytest.raises(SnncError, match="runs on CUDA tensors"):
        kernels(spec_for(p), "cupy", torch.device("cpu"), torch.float32)


@pytest.mark.gpu
@pytest.mark.parametrize("offset", [0, 1])
def test_cupy_misaligned_views_and_reproducible_learnable_gradient(offset):
    """A view one element into its storage cannot take the vector entry point: the other one gives the same
    spikes; and the learnable gradient (per-thread partial sums, one torch.sum) is the same bits run to run."""
    from snnc.runtime.ops import run_plan

    n = LIB.neuron("PLIF")
    p = plan(n)
    scalars = default_values(n, p.config)
    x0, inits = random_input(p, (7, 4096), scalars, learnable_defaults(n, scalars), seed=4)
    base = torch.empty(x0.numel() + offset, device="cuda")
    x = base[offset:].view(x0.shape).copy_(x0.cuda())
    grads, outs = [], []
    for _ in range(2):
        w = torch.tensor(learnable_defaults(n, scalars)["w"], device="cuda", requires_grad=True)
        s, _ = run_plan(p, "cupy", x, tuple(i.cuda() for i in inits), scalars, (w,))
        s.sum().backward()
        grads.append(w.grad.clone())
        outs.append(s)
    ref_s, _, _ = reference_multi_step(p, x0.cuda(), tuple(i.cuda() for i in inits), scalars,
                                       (torch.tensor(learnable_defaults(n, scalars)["w"], device="cuda"),))
    assert torch.equal(outs[0], ref_s) and torch.equal(outs[1], ref_s)
    assert torch.equal(grads[0], grads[1])
