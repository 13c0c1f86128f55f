"""Spiking self-attention, side by side: snnc's SSA block (snnc.transformers: Q, K, V = LIF(BN(linear(x))),
Q (K^T V) * scale, LIF, projection) on its torch and cpp backends against SpikingJelly 2.0.0's
SpikingSelfAttention (layer.attention, multi-step, its torch LIF), on the same shapes. Reported: one training
step (forward + backward, best of --repeat, median in brackets) and the bytes autograd keeps for backward
(deduplicated by storage, parameters left out), with the ratios to SpikingJelly.

The default shapes are Spikformer-4-384's on CIFAR-10 (T = 4, 64 tokens of 384 channels, 12 heads), batch 8:

    python benchmarks/attention_speed.py
    python benchmarks/attention_speed.py --tokens 16 --dim 64 --heads 4 --batch 4 --repeat 2   # quick
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

THREADS = int(os.environ.get("SNNC_BENCH_THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import snnc  # noqa: E402

MODEL = """import snnc.transformers

network Attention {{
    input = [{tokens}, {dim}]
    T = {T}
    encoder = direct
    layers {{ SSA({dim}, {heads})  flatten }}
}}
"""


class Kept:
    """The bytes autograd saves for backward inside the block (one count per storage; parameters left out)."""

    def __init__(self, params):
        self.params = {p.untyped_storage().data_ptr() for p in params}
        self.storages: dict[int, int] = {}

    def __enter__(self):
        def pack(t):
            s = t.untyped_storage()
            if s.data_ptr() not in self.params:
                self.storages[s.data_ptr()] = s.nbytes()
            return t

        self.hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self.hooks.__exit__(*exc)

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())


def _time(step, repeat: int) -> tuple[float, float, int]:
    step()  # warm-up: kernels compiled, allocator primed
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        kept = step()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times), kept


def snnc_step(args, backend):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "attention.snn"
        path.write_text(MODEL.format(**vars(args)))
        net = snnc.load(path).network("Attention", backend=backend).train()
    x = (torch.rand(args.T, args.batch, args.tokens, args.dim) < 0.2).float()
    params = list(net.parameters())

    def step():
        net.reset()
        with Kept(params) as kept:
            out = net(x)
        out.sum().backward()
        return kept.bytes

    return step


def spikingjelly_step(args):
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.layer.attention import SpikingSelfAttention

    ref = SpikingSelfAttention(args.dim, num_heads=args.heads).train()
    functional.set_step_mode(ref, "m")
    x = (torch.rand(args.T, args.batch, args.dim, args.tokens) < 0.2).float()  # SpikingJelly's [T, N, C, L]
    params = list(ref.parameters())

    def step():
        functional.reset_net(ref)
        with Kept(params) as kept:
            out = ref(x)
        out.sum().backward()
        return kept.bytes

    return step


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-T", type=int, default=4)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    print(f"SSA, T = {args.T}, batch {args.batch}, {args.tokens} tokens x {args.dim} channels, {args.heads} heads; "
          f"{THREADS} threads; one training step (forward + backward)")
    rows = []
    try:
        rows.append(("SpikingJelly SpikingSelfAttention", *_time(spikingjelly_step(args), args.repeat)))
    except ImportError as exc:
        print(f"SpikingJelly not importable ({exc}): snnc alone")
    from snnc.runtime.backends import available

    for backend in available("cpu"):
        rows.append((f"snnc SSA ({backend})", *_time(snnc_step(args, backend), args.repeat)))
    ref = rows[0] if rows[0][0].startswith("SpikingJelly") else None
    print(f"{'':36}{'best s':>9}{'(median)':>11}{'kept MiB':>10}{'speed x SJ':>12}{'kept x SJ':>11}")
    for name, best, median, kept in rows:
        ratios = (f"{ref[1] / best:>12.2f}{kept / ref[3]:>11.2f}" if ref else "")
        print(f"{name:36}{best:>9.3f}{f'({median:.3f})':>11}{kept / 2**20:>10.1f}{ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
