"""Training throughput: SpikingJelly 2.0.0's lif_fc_mnist vs the snnc runner, side by side.

Config (SpikingJelly's example): Flatten -> Linear(784, 10, bias=False) -> LIF(tau=2,
ATan surrogate), Poisson input, T=100, batch 64, Adam lr 1e-3, MSE(firing rate, one-hot),
network reset after every batch.

Both sides read the same in-memory MNIST tensors (SpikingJelly is spared its
DataLoader, so its number here is if anything optimistic). The snnc side trains
`models/lif_fc_mnist.snn` through `snnc.train.runner.train` on the fused host backend.

    python benchmarks/train_speed.py --data-dir ../shared/data/mnist            # one epoch each
    python benchmarks/train_speed.py --batches 300 --repeat 3 --profile          # quick, with a breakdown
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from snnc.runtime import backends  # noqa: E402
from snnc.train import data as datasets  # noqa: E402
from snnc.train.encode import poisson  # noqa: E402
from snnc.train.experiment import from_library  # noqa: E402
from snnc.train.runner import TrainOptions, train  # noqa: E402


def snnc_experiment(model: str, backend: str):
    import snnc

    return from_library(snnc.load(model)), f"{Path(model).name} (backend {backend})"


def run_spikingjelly(ds, T: int, batches: int | None, test: bool, seed: int = 0) -> dict:
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    torch.manual_seed(seed)
    net = nn.Sequential(layer.Flatten(), layer.Linear(784, 10, bias=False),
                        neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan()))
    functional.set_step_mode(net, "m")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    order = torch.randperm(len(ds.train))
    order = order[: batches * 64] if batches else order
    count, start = 0, time.perf_counter()
    for idx in order.split(64):
        x, y = ds.train.batch(idx)[:2]
        spikes = (torch.rand(T, *x.shape) <= x).float()
        rate = net(spikes).mean(0)
        loss = F.mse_loss(rate, F.one_hot(y, 10).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
        functional.reset_net(net)
        count += len(idx)
    result = {"images_per_s": count / (time.perf_counter() - start), "images": count}
    if test:
        correct = 0
        with torch.no_grad():
            for idx in torch.arange(len(ds.test)).split(256):
                x, y = ds.test.batch(idx)[:2]
                correct += int((net((torch.rand(T, *x.shape) <= x).float()).mean(0).argmax(1) == y).sum())
                functional.reset_net(net)
        result["test_acc"] = correct / len(ds.test)
    return result


def run_snnc(exp, backend, data_dir: str, batches: int | None, test_subset: int | None, seed: int = 0) -> dict:
    with tempfile.TemporaryDirectory() as out:
        options = TrainOptions(T=exp.T, epochs=1, batch_size=64, lr=1e-3, opt="adam", loss="mse", seed=seed,
                               val_split=0.0,  # all 60,000 training images, as SpikingJelly's side
                               subset=batches * 64 if batches else None, test_subset=test_subset,
                               backend=backend, data_dir=data_dir, out_dir=out, device="cpu", quiet=True, plots=False)
        row = train(exp, options)["metrics"][-1]
    return {"images_per_s": row["train_images_per_s"], "test_acc": row["test_acc"], "train_acc": row["train_acc"]}


def profile_snnc(exp, backend, ds, T: int, batches: int = 100) -> dict:
    """Milliseconds per batch in each stage of the runner's training step."""
    torch.manual_seed(0)
    net = exp.make_net()
    if backend:
        exp.set_backend(net, backend)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    buf = torch.empty(T, 64, 1, 28, 28)
    stages = dict.fromkeys(("data", "poisson", "forward", "backward", "step+reset"), 0.0)
    for b in range(batches):
        idx = torch.arange(b * 64, (b + 1) * 64)
        t0 = time.perf_counter()
        x, y = ds.train.batch(idx)[:2]
        t1 = time.perf_counter()
        spikes = poisson(x, T, 0, idx, 0, dtype=torch.float32, out=buf)
        t2 = time.perf_counter()
        loss = F.mse_loss(net(spikes).mean(0), F.one_hot(y, 10).float())
        t3 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t4 = time.perf_counter()
        opt.step()
        exp.reset(net)
        t5 = time.perf_counter()
        for key, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            stages[key] += dt * 1e3 / batches
    return stages


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("-T", type=int, default=100)
    parser.add_argument("--batches", type=int, default=None, help="train K batches instead of one epoch")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--test-subset", type=int, default=None, help="test images for snnc's accuracy")
    parser.add_argument("--sj-test", action="store_true", help="also measure SpikingJelly's test accuracy")
    parser.add_argument("--profile", action="store_true", help="print where snnc's step spends its time")
    parser.add_argument("--model", default=str(ROOT / "models" / "lif_fc_mnist.snn"))
    parser.add_argument("--backend", choices=backends.on("cpu"), default=None,
                        help="a CPU backend of the table (default: the fastest available one)")
    parser.add_argument("--repeat", type=int, default=1, help="run each side R times, report the fastest")
    parser.add_argument("--skip-sj", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = datasets.load("mnist", args.data_dir)
    backend = args.backend or backends.default("cpu")
    exp, label = snnc_experiment(args.model, backend)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, T={args.T}, batch 64, "
          f"{args.batches * 64 if args.batches else len(ds.train)} training images each")
    if args.profile:
        stages = profile_snnc(exp, backend, ds, args.T)
        print("snnc step, ms/batch: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
              + f" (total {sum(stages.values()):.2f})")
    runs = {"snnc": lambda: run_snnc(exp, backend, args.data_dir, args.batches, args.test_subset)}
    if not args.skip_sj:
        runs["sj"] = lambda: run_spikingjelly(ds, args.T, args.batches, args.sj_test)
    best = best_of(args.repeat, runs)
    ours = best["snnc"]
    print(f"snnc runner [{label}]: {ours['images_per_s']:,.0f} images/s, test acc {ours['test_acc']:.2%}")
    if args.skip_sj:
        return
    sj = best["sj"]
    acc = f", test acc {sj['test_acc']:.2%}" if "test_acc" in sj else ""
    print(f"SpikingJelly 2.0.0 (torch backend, multi-step): {sj['images_per_s']:,.0f} images/s{acc}")
    print(f"speed-up: {ours['images_per_s'] / sj['images_per_s']:.2f}x"
          + (f" (best of {args.repeat} interleaved runs each)" if args.repeat > 1 else ""))


def best_of(repeat: int, runs: dict) -> dict:
    """Each side's fastest of `repeat` runs, the sides taking turns (other load on a shared
    machine only ever slows a run down, and taking turns spreads it over both sides)."""
    best = {}
    for _ in range(repeat):
        for name, run in runs.items():
            result = run()
            if name not in best or result["images_per_s"] > best[name]["images_per_s"]:
                best[name] = result
    return best


if __name__ == "__main__":
    main()
