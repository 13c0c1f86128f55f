"""`torch.compile` against eager: one training step (forward, backward, Adam step) of generated networks,
side by side in one run. The fused neurons are custom operators, so Dynamo traces each network whole
(0 graph breaks); Inductor compiles the layers around them.

Reported per network and backend: the first compiled step (tracing and compilation, Inductor's on-disk cache
empty: a fresh temporary folder), then the best (median) of --repeat steps each way, and compiled / eager
(below 1: the compiled step is faster).

    python benchmarks/compile_speed.py                                   # CPU, fc2_mnist and lif_fc_mnist
    python benchmarks/compile_speed.py --device cuda --backends cupy --mode reduce-overhead
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
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="snnc-bench-inductor-"))

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import snnc  # noqa: E402
from snnc.runtime import backends  # noqa: E402


def step_fn(net, x, y, optimizer):
    def step():
        optimizer.zero_grad(set_to_none=True)
        out = net(x)
        loss = torch.nn.functional.mse_loss(out.float().mean(0), y)
        loss.backward()
        optimizer.step()
        return loss
    return step


def sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def measure(step, repeat: int, device: str) -> tuple[float, float, float]:
    """(first call, best, median) seconds."""
    t0 = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - t0
    for _ in range(2):
        step()
    sync(device)
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        sync(device)
        ts.append(time.perf_counter() - t0)
    return first, min(ts), statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="fc2_mnist,lif_fc_mnist")
    ap.add_argument("--backends", default=None, help="comma-separated (default: every backend available)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--mode", default=None, help="torch.compile mode (default, reduce-overhead, max-autotune)")
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    names = args.backends.split(",") if args.backends else backends.available(args.device)
    print(f"torch {torch.__version__}, {args.device}, {THREADS} threads, batch {args.batch}, "
          f"torch.compile(mode={args.mode!r}), best (median) of {args.repeat} steps")
    print(f"  {'network':16s} {'backend':8s} {'eager step':>18s} {'compiled step':>18s} {'compiled/eager':>15s} "
          f"{'first compiled step':>20s}")
    for model in args.models.split(","):
        lib = snnc.load(ROOT / "models" / f"{model}.snn")
        for backend in names:
            torch.manual_seed(0)
            eager_net = lib.network(backend=backend).to(args.device)
            compiled_net = lib.network(backend=backend).to(args.device)
            compiled_net.load_state_dict(eager_net.state_dict())
            T = eager_net.T
            x = (torch.rand(T, args.batch, *eager_net.INPUT_SHAPE, generator=torch.Generator().manual_seed(1)) < 0.3)
            x = x.float().to(args.device)
            y = torch.nn.functional.one_hot(torch.arange(args.batch) % 10, 10).float().to(args.device)
            eager = step_fn(eager_net, x, y, torch.optim.Adam(eager_net.parameters(), lr=1e-3))
            torch._dynamo.reset()
            compiled = step_fn(torch.compile(compiled_net, mode=args.mode), x, y,
                               torch.optim.Adam(compiled_net.parameters(), lr=1e-3))
            _, e_best, e_med = measure(eager, args.repeat, args.device)
            c_first, c_best, c_med = measure(compiled, args.repeat, args.device)
            print(f"  {model:16s} {backend:8s} {e_best * 1e3:8.2f} ({e_med * 1e3:6.2f}) ms "
                  f"{c_best * 1e3:8.2f} ({c_med * 1e3:6.2f}) ms {c_best / e_best:14.2f}x {c_first:19.1f} s")


if __name__ == "__main__":
    main()
