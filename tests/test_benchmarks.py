"""The benchmark scripts the README quotes still run (a few repeats, small sizes) and print their ratios.

They time nothing here: the figures come from running them whole on a quiet machine (README, Performance)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MNIST, NO_SJ, needs_mnist

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

RUNS = {
    "neuron_speed": (["--repeat", "2", "--shapes", "4x2048"], "x SpikingJelly"),
    "train_speed": (["--batches", "2", "--test-subset", "64"], "speed-up:"),
    "startup": (["--repeat", "1", "--no-spikingjelly"], "snnc train"),
    "compile_speed": (["--repeat", "2", "--models", "lif_fc_mnist", "--backends", "torch", "--batch", "4"], "eager"),
    "busy_machine": (["--steps", "2", "--repeat", "1"], "images/s"),
    "attention_speed": (["--tokens", "16", "--dim", "32", "--heads", "4", "--batch", "2", "--repeat", "1"],
                        "snnc SSA"),
}


@needs_mnist
@pytest.mark.parametrize("script", sorted(RUNS))
def test_benchmark_runs(script, tmp_path):
    args, expected = RUNS[script]
    if NO_SJ and script in ("neuron_speed", "train_speed"):  # they time SpikingJelly beside snnc
        pytest.skip(NO_SJ)
    if script in ("train_speed", "startup", "busy_machine"):
        args = [*args, "--data-dir", str(MNIST)]
    env = {**os.environ, "SNNC_CACHE_DIR": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{script}.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert expected in done.stdout, done.stdout
