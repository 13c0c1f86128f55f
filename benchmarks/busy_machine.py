"""Host kernels on a busy machine: `snnc train` images/s alone and beside a competing process, with OpenMP
threads that wait passively (snnc's default) and that spin (OpenMP's usual default), side by side.

A spinning OpenMP thread holds its core while it waits for the others; when another process wants that
core, the team's barriers stall for whole scheduler slices. snnc sets OMP_WAIT_POLICY=PASSIVE unless the
user chose otherwise.

    python benchmarks/busy_machine.py --data-dir ../shared/data/mnist
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def images_per_s(model: str, data_dir: str, steps: int, policy: str, out: Path) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "snnc", "train", model, "--data-dir", data_dir, "--max-steps", str(steps),
                    "--test-subset", "64", "--val-split", "0.001", "--no-plots", "--quiet", "--overwrite",
                    "--out-dir", str(out)], cwd=ROOT, env=env, check=True, capture_output=True)
    with open(out / "metrics.csv") as f:
        return float(next(csv.DictReader(f))["train_images_per_s"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("SNNC_DATA_DIR"), required=not os.environ.get("SNNC_DATA_DIR"))
    ap.add_argument("--model", default="models/fc2_mnist.snn")
    ap.add_argument("--steps", type=int, default=100, help="training batches per measurement")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for busy in (False, True):
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
            try:
                for policy in ("PASSIVE", "ACTIVE"):
                    runs = [images_per_s(args.model, args.data_dir, args.steps, policy, Path(tmp) / "run")
                            for _ in range(args.repeat)]
                    results[(busy, policy)] = max(runs)
            finally:
                if hog is not None:
                    hog.kill()
    print(f"{args.model}: training images/s, best of {args.repeat} runs of {args.steps} batches, "
          f"{os.cpu_count()} cores")
    print(f"  {'':40s} {'alone':>10s} {'beside a busy process':>22s}")
    for policy, label in (("PASSIVE", "OMP_WAIT_POLICY=PASSIVE (snnc default)"), ("ACTIVE", "OMP_WAIT_POLICY=ACTIVE")):
        print(f"  {label:40s} {results[(False, policy)]:10,.0f} {results[(True, policy)]:22,.0f}")
    print(f"  busy: passive waiting keeps {results[(True, 'PASSIVE')] / results[(True, 'ACTIVE')]:.1f}x the images/s "
          "of spinning")


if __name__ == "__main__":
    main()
