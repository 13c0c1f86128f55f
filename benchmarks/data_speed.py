"""Data loading against training: samples per second of snnc's loader, of tonic's cached path and of
SpikingJelly's frame dataset, beside snnc training on the same frames, measured side by side in one run.

The data is N-MNIST in the publisher's format (one .bin file a sample, 5 bytes an event), generated here with
the event counts of the real set (about 4,000 events a sample; no event dataset is on this machine). All three
loaders bin it into T = 10 frames of equal event counts and serve batches of 64:

* snnc: `data.load` bins every sample once into memory-mapped counts in its cache (the first, cold load is
  timed apart); then an epoch of batches through `loader.batches`, with 0, 1 and 2 worker processes;
* tonic 1.7: `NMNIST(transform=ToFrame(n_event_bins=10))` in a `DiskCachedDataset` and a `DataLoader`: the
  first epoch fills the cache (timed apart), the second reads it — tonic's recommended fast path;
* SpikingJelly 2.0: `NMNIST(data_type='frame', frames_number=10, split_by='number')` from its events, through
  a `DataLoader` (its preprocessing timed apart), where it runs here;
* training: `models/nmnist_plif.snn` (the PLIF CSNN of the N-MNIST recipe) and a small dense network on the same
  frames, a few batches each, samples per second of forward, backward and optimizer step.

    python benchmarks/data_speed.py --samples 2000
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BATCH, T = 64, 10


def write_nmnist(root: Path, samples: int, seed: int = 0) -> None:
    """`root/Train/<digit>/NNNNN.bin` (and a small Test/): N-MNIST's byte layout, events sorted in time."""
    rng = np.random.default_rng(seed)
    for split, n in (("Train", samples), ("Test", max(10, samples // 10))):
        for k in range(n):
            digit = k % 10
            folder = root / split / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            count = int(np.clip(rng.normal(4000, 600), 500, 8000))
            t = np.sort(rng.integers(0, 300_000, count))
            x = np.clip(rng.normal(17, 6, count), 0, 33).astype(np.int64)
            y = np.clip(rng.normal(17, 6, count), 0, 33).astype(np.int64)
            p = rng.integers(0, 2, count)
            raw = np.stack([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF], axis=1).astype(np.uint8)
            (folder / f"{k:05d}.bin").write_bytes(raw.tobytes())


def rate(seconds: float, n: int) -> str:
    return f"{n / seconds:10,.0f}"


def snnc_loader(root: Path, workers_list) -> dict:
    from snnc.compiler import ir
    from snnc.train import data, loader

    binning = ir.Step(name="event_bins", args=(("n", float(T)),))
    start = time.perf_counter()
    ds = data.load("nmnist", root, T=T, frames=binning)
    cold = time.perf_counter() - start
    split = ds.train
    chunks = list(torch.randperm(len(split), generator=torch.Generator().manual_seed(0)).split(BATCH))
    out = {"cold": cold}
    for workers in workers_list:
        start = time.perf_counter()
        n = sum(len(b.y) for _, b in loader.batches(split, chunks, torch.device("cpu"), workers=workers))
        out[workers] = (time.perf_counter() - start, n)
    return out


def tonic_loader(root: Path, workers_list) -> dict | str:
    try:
        import tonic
        import tonic.transforms as TT
    except ImportError as exc:
        return f"not run: tonic is not importable ({exc})"
    parent = root.parent  # tonic reads <save_to>/NMNIST/Train
    tonic.datasets.NMNIST._check_exists = lambda self: True  # it wants the 60,000-file set and its zip
    frames = TT.ToFrame(sensor_size=tonic.datasets.NMNIST.sensor_size, n_event_bins=T)
    dataset = tonic.datasets.NMNIST(str(parent), train=True, transform=frames)
    cache = Path(tempfile.mkdtemp(prefix="tonic-cache-"))
    try:
        cached = tonic.DiskCachedDataset(dataset, cache_path=str(cache))
        out = {}
        for epoch, workers in enumerate([workers_list[0], *workers_list]):
            load = torch.utils.data.DataLoader(cached, batch_size=BATCH, shuffle=True, num_workers=workers)
            start = time.perf_counter()
            n = sum(len(y) for _, y in load)
            out["cold" if epoch == 0 else workers] = (time.perf_counter() - start, n)
        return out
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def spikingjelly_loader(root: Path, workers_list) -> dict | str:
    try:
        if "torchaudio" not in sys.modules:  # its datasets package imports torchaudio for a speech set only
            sys.modules["torchaudio"] = types.ModuleType("torchaudio")
        from spikingjelly.datasets.n_mnist import NMNIST
    except Exception as exc:  # noqa: BLE001
        return f"not run: spikingjelly.datasets is not importable ({type(exc).__name__}: {exc})"
    home = Path(tempfile.mkdtemp(prefix="sj-nmnist-"))
    try:
        from snnc.compiler.datasets import DATASETS
        from snnc.train.data import nmnist

        row = DATASETS["nmnist"]
        start = time.perf_counter()
        for split, name in (("train", "Train"), ("test", "Test")):  # its event format: one .npz a sample
            items, labels = nmnist.listing(root, row, split)
            for path, label in zip(items, labels):
                e = nmnist.events(path, row)
                target = home / "events_np" / split / str(label)
                target.mkdir(parents=True, exist_ok=True)
                np.savez(target / f"{path.stem}.npz", t=e.t, x=e.x, y=e.y, p=e.p)
        dataset = NMNIST(str(home), train=True, data_type="frame", frames_number=T, split_by="number")
        prepared = time.perf_counter() - start
        out = {"cold": (prepared, len(dataset))}
        for workers in workers_list:
            load = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers)
            start = time.perf_counter()
            n = sum(len(y) for _, y in load)
            out[workers] = (time.perf_counter() - start, n)
        return out
    except Exception as exc:  # noqa: BLE001 - its folder conventions change between releases
        return f"not run: {type(exc).__name__}: {str(exc)[:160]}"
    finally:
        shutil.rmtree(home, ignore_errors=True)


def training(root: Path, model: Path, batches: int, batch: int) -> float:
    import snnc
    from snnc.train import data, runner
    from snnc.train.batch import TRAIN_STREAM, loss_of, readout, run_net
    from snnc.train.experiment import from_library

    exp = from_library(snnc.load(model))
    s = runner._resolve(exp, runner.TrainOptions(batch_size=batch), None)
    ds = data.load("nmnist", root, T=T, frames=s["frames"])
    net = runner._build_net(exp, None, torch.device("cpu"), 0)
    opt = runner._optimizer(net, s)
    chunks = list(torch.arange(len(ds.train)).split(batch))[: batches + 1]
    seconds, n = 0.0, 0
    for k, index in enumerate(chunks):
        b = ds.train.batch(index)
        start = time.perf_counter()
        out = run_net(exp, net, b.x, s, index, 0, TRAIN_STREAM, {}, True)
        loss = loss_of(readout(exp, net, out, b.lengths), b.y, s["loss"], exp.num_classes)
        opt.zero_grad()
        loss.backward()
        opt.step()
        exp.reset(net)
        if k:  # the first batch compiles kernels
            seconds += time.perf_counter() - start
            n += len(index)
    return n / seconds


DENSE = """import snnc.neurons
network DenseNmnist {
    input = [2, 34, 34]
    T = 10
    encoder = frames
    layers { flatten linear(256) LIF(tau = 2.0) linear(10) LIF(tau = 2.0) }
    train { dataset = nmnist  frames = event_bins  batch_size = 64 }
}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2000, help="training samples to generate (default 2000)")
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="loader processes to try")
    ap.add_argument("--train-batches", type=int, default=5, help="timed training batches per model")
    args = ap.parse_args()
    os.environ.setdefault("SNNC_CACHE_DIR", tempfile.mkdtemp(prefix="snnc-cache-"))
    work = Path(tempfile.mkdtemp(prefix="data-speed-"))
    root = work / "NMNIST"
    try:
        start = time.perf_counter()
        write_nmnist(root, args.samples)
        print(f"N-MNIST format, {args.samples:,} training samples generated in {time.perf_counter() - start:.1f} s; "
              f"T = {T} frames of equal event counts, batch {BATCH}; torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, {os.cpu_count()} cores")
        rows = [("snnc (cached memory-mapped frames)", snnc_loader(root, args.workers)),
                ("tonic 1.7 (ToFrame + DiskCachedDataset)", tonic_loader(root, args.workers)),
                ("SpikingJelly 2.0 (NMNIST frames)", spikingjelly_loader(root, args.workers))]
        print(f"\n  {'loader':44}{'first pass (bins, caches)':>28}" + "".join(f"{f'{w} workers':>14}" for w in args.workers))
        best = {}
        for name, result in rows:
            if isinstance(result, str):
                print(f"  {name:44}{result}")
                continue
            cold = result["cold"]
            cold_text = f"{cold:.1f} s" if isinstance(cold, float) else f"{cold[0]:.1f} s ({rate(*cold).strip()}/s)"
            speeds = {w: result[w][1] / result[w][0] for w in args.workers if w in result}
            best[name] = max(speeds.values())
            print(f"  {name:44}{cold_text:>28}" + "".join(f"{speeds[w]:>10,.0f} /s " for w in args.workers))
        dense = work / "dense.snn"
        dense.write_text(DENSE)
        trained = {"models/nmnist_plif.snn (PLIF CSNN, batch 16)": training(root, ROOT / "models" / "nmnist_plif.snn",
                                                                          args.train_batches, 16),
                   "a dense 2-layer LIF network (batch 64)": training(root, dense, args.train_batches, 64)}
        print("\n  training on the same frames (forward, backward, Adam)      samples/s")
        for name, value in trained.items():
            print(f"  {name:56}{value:9,.0f}")
        ours = best.get(rows[0][0])
        if ours:
            fastest = max(trained.values())
            print(f"\n  snnc's loader / the fastest training: {ours / fastest:.1f}x; "
                  + "; ".join(f"snnc / {name.split(' (')[0]}: {ours / v:.1f}x" for name, v in best.items()
                              if name != rows[0][0]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
