"""Learnable-delay layer speed and memory, side by side: snnc's dcls layer (runtime/delays.py: one matrix
product per tap on shifted views of the [T, N, in] input) against the dcls package's Dcls1d as the SNN-delays
code runs it (permute to [N, in, T], pad (K - 1, (K - 1) // 2), construct the kernel, conv1d, permute back).

The shapes are the SHD network's (shd_delays.snn): T = 100 steps, 140 -> 256 -> 256 -> 20, 25 taps (delays
0 .. 24). Reported per layer and mode: forward + backward time (best of --repeat, median in brackets) and the
peak memory the step allocates beyond its input (CPU: tracked by torch's profiler; CUDA: max_memory_allocated).
"train" is the soft gaussian kernel (gradients to weights and positions); "eval" is inference at the rounded
delays (snnc skips the taps no synapse uses; Dcls1d has no rounded mode and runs its gaussian at SIG = 0).

    python benchmarks/delay_speed.py                      # CPU, batch 32
    python benchmarks/delay_speed.py --device cuda --batch 256
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

THREADS = int(os.environ.get("SNNC_BENCH_THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from snnc.runtime.delays import Dcls  # noqa: E402

LAYERS = ((140, 256), (256, 256), (256, 20))  # the SHD network's three delay layers


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak(fn, device):
    """Bytes allocated at the peak of fn() beyond what was allocated before."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.time_range.start, e.cpu_memory_usage) for e in prof.events() if e.cpu_memory_usage)
    now = peak = 0
    for _, b in events:
        now += b
        peak = max(peak, now)
    return peak


def _time(fn, device, repeat):
    fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def _pair(n_in, n_out, K, device):
    try:
        from DCLS.construct.modules import Dcls1d
    except ImportError:
        raise SystemExit("delay_speed.py compares against the dcls package: pip install --no-deps dcls==0.1.1") from None

    ref = Dcls1d(n_in, n_out, kernel_count=1, groups=1, dilated_kernel_size=K, bias=False, version="gauss").to(device)
    ours = Dcls(n_in, n_out, max_delay=K - 1).to(device)
    with torch.no_grad():
        torch.nn.init.uniform_(ref.P, -(K // 2), K // 2)
        ref.SIG.fill_(K // 2)
        ours.weight.copy_(ref.weight[:, :, 0])
        ours.position.copy_(K // 2 - ref.P[0, :, :, 0])
        ours.set_sigma(K // 2 + 0.27)
    ours.step_mode = "m"
    return ref, ours


def _cases(T, N, K, device, train):
    for n_in, n_out in LAYERS:
        ref, ours = _pair(n_in, n_out, K, device)
        x = (torch.rand(T, N, n_in, device=device) < 0.1).float().requires_grad_(train)
        g = torch.randn(T, N, n_out, device=device)
        ours.train(train)
        if not train:
            with torch.no_grad():
                ref.SIG.fill_(0.0)

        def run_ours():
            with torch.set_grad_enabled(train):
                y = ours(x)
                if train:
                    y.backward(g)

        def run_ref():
            with torch.set_grad_enabled(train):
                xp = torch.nn.functional.pad(x.permute(1, 2, 0), (K - 1, (K - 1) // 2))
                y = ref(xp).permute(2, 0, 1)[:T]
                if train:
                    y.backward(g)

        yield f"{n_in}->{n_out}", run_ours, run_ref


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("-T", type=int, default=100)
    p.add_argument("--taps", type=int, default=25)
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args(argv)
    device = torch.device(a.device)
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    print(f"learnable delays, SHD shapes: T = {a.T}, batch {a.batch}, {a.taps} taps, {device}"
          f"{f', {THREADS} threads' if device.type == 'cpu' else ''}, torch {torch.__version__}")
    print(f"{'mode':6} {'layer':9} {'snnc ms':>16} {'dcls ms':>16} {'speed-up':>8} {'snnc MiB':>9} {'dcls MiB':>9}")
    for train in (True, False):
        for name, ours, ref in _cases(a.T, a.batch, a.taps, device, train):
            t_ours, t_ref = _time(ours, device, a.repeat), _time(ref, device, a.repeat)
            m_ours, m_ref = _peak(ours, device) / 2**20, _peak(ref, device) / 2**20
            print(f"{'train' if train else 'eval':6} {name:9} {t_ours[0] * 1e3:7.2f} ({t_ours[1] * 1e3:6.2f}) "
                  f"{t_ref[0] * 1e3:7.2f} ({t_ref[1] * 1e3:6.2f}) {t_ref[0] / t_ours[0]:7.2f}x "
                  f"{m_ours:9.1f} {m_ref:9.1f}")


if __name__ == "__main__":
    main()
