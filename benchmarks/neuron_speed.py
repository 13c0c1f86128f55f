"""LIF forward + backward speed, side by side: eager snnc, host-fused snnc, SpikingJelly 2.0.0.

Shapes: T=100, N=64x784 (SpikingJelly's lif_fc_mnist layer) and T=32, N=2^20. Every contender runs the
same neuron (tau=2, v_threshold=1, hard reset to 0, decay_input, Sigmoid(alpha=4) surrogate), the same
input and the same output gradient, with 2 threads. Reported: the best of `--repeat` runs (median in
brackets), this machine's copy bandwidth (a large torch copy, read + write bytes per second), the bytes the
fused kernels move, the achieved bandwidth and the ratio to the copy floor, and the speed-up over
SpikingJelly.

    python benchmarks/neuron_speed.py            # --repeat 20 --threads 2
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

THREADS = int(os.environ.get("SNNC_BENCH_THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from snnc.compiler.assemble import load_module  # noqa: E402
from snnc.compiler.derive import plan  # noqa: E402
from snnc.runtime import host  # noqa: E402
from snnc.runtime.verify import default_values, reference_multi_step  # noqa: E402

SHAPES = ((100, (64, 784)), (32, (2**20,)))


def timed(fn, repeat: int) -> tuple[float, float]:
    fn()
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return ts[0], ts[len(ts) // 2]


def copy_bandwidth(repeat: int) -> float:
    """Bytes read + written per second by a 512 MiB torch copy (well past the caches)."""
    src = torch.rand(2**27)
    dst = torch.empty_like(src)
    best, _ = timed(lambda: dst.copy_(src), repeat)
    return 2 * src.numel() * 4 / best


def fused_bytes(p, T: int, N: int) -> int:
    """What the fused forward + backward read and write in DRAM, fp32."""
    k = host.host_kernels(p).spec
    S, saved = len(p.states), len(p.saved)
    fwd = T * N * (1 + 1 + saved) + 2 * S * N  # x in; spikes, H out; states in and out
    bwd = T * N * (1 + saved + 1 + int(p.needs_x)) + (2 * S + len(k.prev_states)) * N  # gS, H, (x) in; gX out
    return 4 * (fwd + bwd)


def contenders(T: int, shape: tuple):
    """name -> (setup, step): step() runs forward + backward once."""
    lib = load_module(ROOT / "models" / "neurons.snn")[0]
    p = plan(lib.neuron("LIF"))
    scalars = default_values(p.neuron, p.config)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand((T, *shape), generator=g) * 1.5
    grad = torch.rand((T, *shape), generator=g)
    v0 = torch.zeros(shape)
    out = {}

    def leaf():  # one input leaf per contender; its .grad is dropped before each step, as zero_grad() does
        x = x0.clone().requires_grad_(True)

        def fresh():
            x.grad = None
            return x
        return fresh

    # eager snnc: the generated torch module when the compiler can load the library, else the plan's reference
    try:
        import snnc

        cell = snnc.load(ROOT / "models" / "neurons.snn").neurons["LIF"](step_mode="m", backend="torch")

        x_eager = leaf()

        def eager():
            cell.reset()
            cell(x_eager()).backward(grad)
        out["snnc eager (generated torch module)"] = eager
    except Exception:
        x_ref = leaf()

        def eager():
            reference_multi_step(p, x_ref(), (v0,), scalars)[0].backward(grad)
        out["snnc eager (plan reference)"] = eager

    x_fused = leaf()

    def fused():
        host.multi_step(p, x_fused(), (v0,), scalars)[0].backward(grad)
    out["snnc host-fused (cpp)"] = fused

    try:
        from spikingjelly.activation_based import functional, neuron

        node = neuron.LIFNode(tau=2.0, step_mode="m")

        x_sj = leaf()

        def sj():
            functional.reset_net(node)
            node(x_sj()).backward(grad)
        out["SpikingJelly 2.0.0 LIFNode (m)"] = sj
    except Exception as exc:  # pragma: no cover - depends on the environment
        print(f"  (SpikingJelly skipped: {exc})")
    return p, x0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    bw = copy_bandwidth(args.repeat)
    print(f"threads: {THREADS}; copy bandwidth (512 MiB torch copy, read + write): {bw / 1e9:.1f} GB/s")
    for T, shape in SHAPES:
        N = 1
        for d in shape:
            N *= d
        print(f"\nLIF forward + backward, T={T}, N={'x'.join(map(str, shape))} ({N}), fp32")
        p, x0, runs = contenders(T, shape)
        results = {}
        for name, fn in runs.items():
            results[name] = timed(fn, args.repeat if N * T <= 2**23 else max(3, args.repeat // 4))
        sj = next((v[0] for k, v in results.items() if k.startswith("SpikingJelly")), None)
        for name, (best, median) in results.items():
            extra = f"   {sj / best:5.1f}x vs SpikingJelly" if sj else ""
            print(f"  {name:38s} {best * 1e3:9.2f} ms  (median {median * 1e3:8.2f}){extra}")
        moved = fused_bytes(p, T, N)
        fused = results["snnc host-fused (cpp)"][0]
        floor = moved / bw
        print(f"  fused kernels move {moved / 1e6:.0f} MB: {moved / fused / 1e9:.1f} GB/s achieved, "
              f"copy floor {floor * 1e3:.2f} ms, {fused / floor:.2f}x the floor")


if __name__ == "__main__":
    main()
