"""Start-up: how long each command takes to reach its first result, beside the floor PyTorch sets.

Every row is the wall time of a fresh process (median of --repeat runs, after one warm-up run so that
snnc's cache holds the generated code, compiled kernels, derived plans and decoded MNIST):

* `import torch`: the floor for anything that uses PyTorch;
* torch + one optimizer step: a Linear layer's first Adam step. torch.optim imports TorchDynamo (and with
  it SymPy) on first use, so this is the floor for any PyTorch training loop;
* snnc check / simulate / train --dry-run: whole commands;
* snnc train: seconds from process start to the end of the first training batch (the runner prints it);
* SpikingJelly 2.0.0's `lif_fc_mnist` example, run as published (`-device cpu -b 64 -T 100 -opt adam
  -j 2`, torchvision's MNIST from the same files), stopped at the end of its first optimizer step.

    python benchmarks/startup.py --data-dir ../shared/data/mnist
"""
from __future__ import annotations

import argparse
import gzip
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

# Seconds from process start to now, from /proc (the same clock snnc's runner uses).
SINCE_START = """
def _since_start():
    import os
    with open("/proc/self/stat") as f:
        started = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        return float(f.read().split()[0]) - started / os.sysconf("SC_CLK_TCK")
"""

IMPORT_TORCH = SINCE_START + """
import torch
print(f"READY {_since_start():.3f}")
"""

TORCH_STEP = SINCE_START + """
import torch
m = torch.nn.Linear(784, 10)
opt = torch.optim.Adam(m.parameters(), lr=1e-3)
m(torch.rand(64, 784)).square().mean().backward()
opt.step()
print(f"READY {_since_start():.3f}")
"""

SJ_NEURON = """
import torch
from spikingjelly.activation_based import neuron
cell = neuron.LIFNode(step_mode="m")
with torch.no_grad():
    print(int(cell(torch.full((100, 1), 1.5)).sum()))
"""

# SpikingJelly's example, unchanged, stopped after its first optimizer step (end of the first batch).
SPIKINGJELLY = SINCE_START + """
import os, runpy, sys
import torch
step = torch.optim.Adam.step
def first_step(self, *a, **k):
    out = step(self, *a, **k)
    print(f"FIRST_BATCH {_since_start():.3f}", flush=True)
    os._exit(0)
torch.optim.Adam.step = first_step
sys.argv = ["lif_fc_mnist", "-T", "100", "-device", "cpu", "-b", "64", "-epochs", "1", "-data-dir", sys.argv[1],
            "-out-dir", sys.argv[2], "-opt", "adam", "-lr", "1e-3", "-j", "2"]
runpy.run_module("spikingjelly.activation_based.examples.lif_fc_mnist", run_name="__main__")
"""


def wall(cmd: list[str], env: dict, marker: str | None = None) -> float:
    """Wall seconds of a command, or the seconds its output reports after `marker`."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    if marker is not None:
        found = re.search(marker, proc.stdout)
        if found is None:
            raise SystemExit(f"{' '.join(cmd)}: no {marker!r} in its output:\n{proc.stdout[-2000:]}")
        return float(found.group(1))
    return seconds


def torchvision_layout(data_dir: Path, into: Path) -> Path:
    """torchvision's MNIST folder (MNIST/raw/ with the files decompressed) from an IDX folder."""
    raw = into / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in data_dir.iterdir():
        if path.name.endswith("-ubyte.gz"):
            with gzip.open(path) as src, open(raw / path.name[:-3], "wb") as dst:
                shutil.copyfileobj(src, dst)
        elif path.name.endswith("-ubyte"):
            shutil.copy(path, raw / path.name)
    return into


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("SNNC_DATA_DIR"), required=not os.environ.get("SNNC_DATA_DIR"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--model", default="models/fc2_mnist.snn")
    ap.add_argument("--no-spikingjelly", action="store_true")
    args = ap.parse_args()
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    data_dir = Path(args.data_dir).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        snnc = [PY, "-m", "snnc"]
        train = [*snnc, "train", args.model, "--data-dir", str(data_dir), "--max-steps", "1", "--test-subset", "64",
                 "--no-plots", "--overwrite", "--out-dir", str(tmp / "run")]
        ready = r"READY ([0-9.]+)"
        first = [  # seconds from process start to the moment named
            ("import torch done", [PY, "-c", IMPORT_TORCH], ready),
            ("torch: first optimizer step done (training floor)", [PY, "-c", TORCH_STEP], ready),
            ("snnc train: first batch done", train, r"first batch done ([0-9.]+) s"),
        ]
        if not args.no_spikingjelly:
            tv = torchvision_layout(data_dir, tmp / "tv")
            first.append(("SpikingJelly lif_fc_mnist example: first batch done",
                          [PY, "-c", SPIKINGJELLY, str(tv), str(tmp / "sj")], r"FIRST_BATCH ([0-9.]+)"))
        whole = [  # wall seconds of the whole process, exit included
            ("python -c 'import torch'", [PY, "-c", "import torch"], None),
            ("snnc check", [*snnc, "check", args.model], None),
            ("snnc simulate (LIF, 100 steps)", [*snnc, "simulate", "models/neurons.snn", "--neuron", "LIF",
                                                "--input", "1.5", "-T", "100"], None),
            ("snnc train --dry-run", [*snnc, "train", args.model, "--dry-run"], None),
        ]
        if not args.no_spikingjelly:
            whole.append(("SpikingJelly: import, one LIFNode for 100 steps", [PY, "-c", SJ_NEURON], None))
        results = {}
        for name, cmd, marker in first + whole:
            wall(cmd, env, marker)  # warm-up: caches filled, files in the page cache
            results[name] = statistics.median(wall(cmd, env, marker) for _ in range(args.repeat))
    version = subprocess.run([PY, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
    print(f"start-up, median of {args.repeat} fresh processes each ({os.cpu_count()} cores, "
          f"torch {version.stdout.strip()})")
    for title, rows, base in (("seconds from process start", first, "import torch done"),
                              ("seconds for the whole command", whole, "python -c 'import torch'")):
        print(f"\n  {title:56s} {'seconds':>8s} {'vs ' + base:>28s}")
        for name, _, _ in rows:
            print(f"  {name:56s} {results[name]:8.2f} {results[name] - results[base]:+28.2f}")
    floor = results["torch: first optimizer step done (training floor)"]
    print(f"\n  snnc train reaches its first batch {results['snnc train: first batch done'] - floor:+.2f} s after "
          f"PyTorch's training floor (torch.optim imports TorchDynamo at first use: "
          f"{floor - results['import torch done']:.2f} s after import torch)")


if __name__ == "__main__":
    main()
