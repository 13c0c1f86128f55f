"""`torch.compile` against eager: one training step (forward, backward, Adam step) of generated networks,
three ways side by side in one run, the same weights and batch:

  eager             the network as built;
  compiled network  `torch.compile(net)`, the loss and the optimizer step eager;
  compiled step     PyTorch's recipe for a compiled training step: one compiled function from the batch to the
                    loss (network, readout over time, loss) and `torch.compile(optimizer.step)`; `backward` runs
                    the compiled backward.

Dynamo traces each network whole (0 graph breaks): the fused `cpp`/`cupy` neurons as custom operators, with
Inductor compiling what surrounds them; the `torch` backend's steps (up to TRACED_STEPS) traced through, which
Inductor fuses too. Steps are interleaved (eager, network, step, eager, ...) so that a drift in the machine's
speed falls on all three alike. Reported per network and backend: the median step time of each, the compiled ones
over eager (below 1: faster), and the first compiled step (tracing and compilation, Inductor's on-disk cache
empty: a fresh temporary folder).

    python benchmarks/compile_speed.py --repeat 50                       # CPU: fc2_mnist, lif_fc_mnist, sew_resnet_mnist
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
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import snnc  # noqa: E402
from snnc.runtime import backends  # noqa: E402

WAYS = ("eager", "compiled network", "compiled step")


def training_step(net, way: str, mode: str | None, x, y):
    """One training step of `net` (forward, backward, Adam) the given way, as a function of no arguments."""
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    model = torch.compile(net, mode=mode) if way == "compiled network" else net

    def loss_of(x, y):
        return F.mse_loss(model(x).float().mean(0), y)

    forward = torch.compile(loss_of, mode=mode) if way == "compiled step" else loss_of
    update = torch.compile(optimizer.step, mode=mode) if way == "compiled step" else optimizer.step

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = forward(x, y)
        loss.backward()
        update()  # multi-step networks reset their neurons at each call

    return step


def timed(step, device: str) -> float:
    t0 = time.perf_counter()
    step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def compare(lib, backend: str, args) -> tuple[dict, dict]:
    """{way: median step seconds}, {way: first step seconds} for one network on one backend."""
    torch.manual_seed(0)
    first_net = lib.network(backend=backend).to(args.device)
    nets = {way: first_net if way == "eager" else lib.network(backend=backend).to(args.device) for way in WAYS}
    for net in nets.values():
        net.load_state_dict(first_net.state_dict())
    x = torch.rand(first_net.T, args.batch, *first_net.INPUT_SHAPE, generator=torch.Generator().manual_seed(1))
    x = (x < 0.3).float().to(args.device)
    y = F.one_hot(torch.arange(args.batch) % first_net.NUM_CLASSES, first_net.NUM_CLASSES).float().to(args.device)
    torch._dynamo.reset()
    steps = {way: training_step(nets[way], way, args.mode, x, y) for way in WAYS}
    first = {way: timed(steps[way], args.device) for way in WAYS}
    for _ in range(2):
        for way in WAYS:
            timed(steps[way], args.device)
    times: dict = {way: [] for way in WAYS}
    for _ in range(args.repeat):
        for way in WAYS:
            times[way].append(timed(steps[way], args.device))
    return {way: statistics.median(ts) for way, ts in times.items()}, first


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="fc2_mnist,lif_fc_mnist,sew_resnet_mnist")
    ap.add_argument("--backends", default=None, help="comma-separated (default: every backend available)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=20, help="interleaved steps timed each way (default 20)")
    ap.add_argument("--mode", default=None, help="torch.compile mode (default, reduce-overhead, max-autotune)")
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    names = args.backends.split(",") if args.backends else backends.available(args.device)
    print(f"torch {torch.__version__}, {args.device}, {THREADS} threads, batch {args.batch}, "
          f"torch.compile(mode={args.mode!r}); median of {args.repeat} interleaved training steps each way")
    print(f"  {'network':18s} {'backend':8s} {'eager':>9s} {'compiled network':>20s} {'compiled step':>20s}"
          f" {'first compiled step (network, step)':>38s}")
    for model in args.models.split(","):
        lib = snnc.load(ROOT / "models" / f"{model}.snn")
        for backend in names:
            median, first = compare(lib, backend, args)
            e = median["eager"]
            cells = [f"{median[w] * 1e3:9.2f} ms {median[w] / e:5.2f}x" for w in WAYS[1:]]
            print(f"  {model:18s} {backend:8s} {e * 1e3:6.2f} ms {cells[0]:>20s} {cells[1]:>20s}"
                  f" {first['compiled network']:27.1f} s, {first['compiled step']:.1f} s")
    print("  (x: compiled time over eager time; below 1 the compiled way is faster)")


if __name__ == "__main__":
    main()
