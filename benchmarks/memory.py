"""Training memory of one step: snnc under each memory policy and gradient mode, SpikingJelly 2.0.0's plain BPTT
and its memopt (level 1: checkpointed blocks with compressed spikes), side by side, on a VGG-style conv SNN
(4 x conv-BN-LIF-maxpool, then linear; input [T, N, 2, 48, 48]); then memory against T for BPTT and SLTT.

Each configuration runs in its own process: "kept" is what autograd keeps for backward after the forward
pass (tensors deduplicated by storage, packed spikes by their bytes, parameters not counted; measured with
saved_tensors_hooks, the same counter for both libraries; memopt's checkpoints keep theirs behind their own
hooks, so only its peak is shown); for SLTT, the most one step keeps; "peak" is the rise of the process's peak resident
memory (VmHWM, reset before the step) over its resident memory before it, after a warm-up step on one sample; "step" is the median
wall time of a training step (forward, backward). Processes run with a fixed malloc mmap threshold, so that
freed tensors leave the resident set.

    python benchmarks/memory.py                # T = 8, N = 4, and T in 4 8 16 32
    python benchmarks/memory.py --T 8 --N 4 --sweep 4 8 16 32 64
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = 64

NET = """
import snnc.neurons
network Vgg {{
    input = [2, 48, 48]
    T = {T}
    encoder = direct
    layers {{
{blocks}
        flatten
        linear(10)
    }}
}}
"""
BLOCK = """        conv2d({c}, kernel_size = 3, padding = 1, bias = false)
        batchnorm2d
        LIF(tau = 2.0, detach_reset = true)
        maxpool2d(2)"""


def _snnc_net(T: int, tmp: str):
    import snnc

    path = Path(tmp) / "vgg.snn"
    path.write_text(NET.format(T=T, blocks="\n".join(BLOCK.format(c=CHANNELS) for _ in range(4))))
    return snnc.load(path).network_class()()


def _sj_net(memopt: bool, example):
    import torch.nn as nn
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    class Block(nn.Sequential):
        pass

    blocks, c_in = [], 2
    for _ in range(4):
        blocks.append(Block(layer.Conv2d(c_in, CHANNELS, 3, padding=1, bias=False), layer.BatchNorm2d(CHANNELS),
                            neuron.LIFNode(tau=2.0, detach_reset=True, surrogate_function=surrogate.Sigmoid()),
                            layer.MaxPool2d(2)))
        c_in = CHANNELS
    net = nn.Sequential(*blocks, layer.Flatten(), layer.Linear(CHANNELS * 3 * 3, 10))
    functional.set_step_mode(net, "m")
    if memopt:
        from spikingjelly.activation_based import memopt as mo

        def forward(m):
            functional.reset_net(m)
            return m(example)

        net = mo.optimize_memory(net, (Block,), forward, level=1)
    return net, functional.reset_net


def one(config: str, T: int, N: int) -> dict:
    """Measure one configuration (in this process): kept bytes, peak RSS rise, step time."""
    import torch
    import torch.nn.functional as F

    from snnc.runtime import memory, online, ops

    torch.manual_seed(0)
    x = torch.rand(T, N, 2, 48, 48)
    lib, _, mode = config.partition(":")
    with tempfile.TemporaryDirectory() as tmp:
        if lib == "snnc":
            ops.install()
            net = _snnc_net(T, tmp)
            policy, gradient = mode.split("+")
            memory.apply(net, memory.policy_actions(net, policy))
            reset = None
        else:
            net, reset = _sj_net(mode == "memopt", x)
            gradient = "bptt"
        net.train()
        sizes = []

        def step(inputs):
            if gradient == "sltt":
                original = net.forward

                def forward(xt):
                    with memory.Kept() as k:
                        out = original(xt.clone())  # this step's input: the sequence lives anyway
                    sizes.append(k.bytes)
                    return out

                net.forward = forward
                try:
                    online.train_step(net, inputs, lambda o, t: o.square().mean() / T)
                finally:
                    del net.forward
                return
            if reset is not None:
                reset(net)
            with memory.Kept() as k:
                out = net(inputs)
            sizes.append(k.bytes)
            F.mse_loss(out.mean(0), torch.zeros_like(out[0])).backward()

        step(x[:, :1].clone())  # warm-up: kernels built and loaded, allocator primed
        net.zero_grad(set_to_none=True)
        sizes.clear()
        before = _reset_peak()
        step(x)
        peak = _status("VmHWM") - before
        kept = max(sizes)
        times = []
        for _ in range(3):
            net.zero_grad(set_to_none=True)
            start = time.perf_counter()
            step(x)
            times.append(time.perf_counter() - start)
    return {"kept_mib": kept / 2 ** 20, "peak_mib": peak / 1024, "step_s": statistics.median(times)}


def _status(key: str) -> int:
    """A /proc/self/status figure in KiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def _reset_peak() -> int:
    """Reset the process's peak resident memory to its current one (Linux clear_refs 5); the current, KiB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status("VmRSS")


def _run(config: str, T: int, N: int) -> dict | str:
    # a fixed mmap threshold: glibc's sliding one keeps freed tensors in the heap, counted as resident
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run([sys.executable, __file__, "--one", config, "--T", str(T), "--N", str(N)], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    if done.returncode:
        return (done.stderr.strip().splitlines() or ["failed"])[-1][:90]
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--T", type=int, default=8)
    ap.add_argument("--N", type=int, default=4)
    ap.add_argument("--sweep", type=int, nargs="*", default=[4, 8, 16, 32], help="T values for memory against T")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.T, args.N)))
        return
    configs = ["sj:bptt", "sj:memopt", "snnc:fast+bptt", "snnc:balanced+bptt", "snnc:min+bptt", "snnc:fast+sltt",
               "snnc:min+sltt"]
    print(f"one training step, VGG-style conv SNN (4 x conv{CHANNELS}-BN-LIF-maxpool, linear), "
          f"input [T={args.T}, N={args.N}, 2, 48, 48], {os.cpu_count()} CPUs")
    results = {c: _run(c, args.T, args.N) for c in configs}
    base = results["sj:bptt"]
    print(f"{'configuration':22} {'kept MiB':>9} {'x SJ':>6} {'peak MiB':>9} {'x SJ':>6} {'step s':>7} {'x fast':>7}")
    fast = results["snnc:fast+bptt"]
    for c, r in results.items():
        if isinstance(r, str):
            print(f"{c:22} did not run: {r}")
            continue
        ratio = (lambda k: f"{r[k] / base[k]:6.2f}") if isinstance(base, dict) else (lambda k: "     -")
        speed = f"{r['step_s'] / fast['step_s']:7.2f}" if isinstance(fast, dict) else "      -"
        kept = f"{r['kept_mib']:9.1f} {ratio('kept_mib')}" if c != "sj:memopt" else f"{'n/a':>9} {'':6}"
        print(f"{c:22} {kept} {r['peak_mib']:9.1f} {ratio('peak_mib')} "
              f"{r['step_s']:7.2f} {speed}")
    if args.sweep:
        print(f"\nmemory against T (N={args.N}): kept MiB / peak MiB")
        print(f"{'T':>4} " + " ".join(f"{c:>22}" for c in ("snnc:fast+bptt", "snnc:fast+sltt", "sj:bptt")))
        for T in args.sweep:
            row = []
            for c in ("snnc:fast+bptt", "snnc:fast+sltt", "sj:bptt"):
                r = _run(c, T, args.N)
                row.append(f"{r['kept_mib']:9.1f} / {r['peak_mib']:8.1f}" if isinstance(r, dict) else "failed")
            print(f"{T:>4} " + " ".join(f"{v:>22}" for v in row))


if __name__ == "__main__":
    main()
