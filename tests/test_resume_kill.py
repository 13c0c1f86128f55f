"""A run killed (SIGKILL, injected at each write of last.pt, best.pt and metrics.csv, before and after the write
lands) resumes to exactly the uninterrupted run: same metrics, same last.pt and best.pt weights, no
temporary files left."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from snnc.train.logs import read_metrics

from conftest import ROOT, write_mnist

TIMING = ("train_images_per_s", "seconds")
MODEL = """
import snnc.neurons
network Tiny {
    input = [1, 28, 28]
    T = 4
    encoder = poisson
    layers {
        flatten
        linear(10, bias = false)
        LIF(tau = 2.0, surrogate = atan(alpha = 2.0))
    }
    train { epochs = 2  batch_size = 32  lr = 0.005  opt = adam  loss = mse  val_split = 0.2 }
}
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    data = root / "data"
    write_mnist(data, 320, 64, images="blocks")
    model = root / "tiny.snn"
    model.write_text(MODEL)
    straight = root / "straight"
    assert _train(model, data, straight).returncode == 0
    return model, data, straight


def _train(model, data, out, kill=None, resume=False):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("SNNC_KILL_AT", None)
    if kill:
        env["SNNC_KILL_AT"] = kill
    args = [sys.executable, "-m", "snnc", "train", str(model), "--data-dir", str(data), "--out-dir", str(out),
            "--quiet", "--no-plots", "--workers", "1"]
    if resume:
        args += ["--resume", str(out / "last.pt")]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _rows(path):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(path)]


POINTS = [f"{name}:{n}:{when}" for name in ("last.pt", "best.pt", "metrics.csv") for n in (1, 2)
          for when in ("before", "after")]


@pytest.mark.slow
@pytest.mark.parametrize("kill", POINTS)
def test_kill_at_a_write_then_resume_is_exact(setup, tmp_path, kill):
    model, data, straight = setup
    out = tmp_path / "run"
    first = _train(model, data, out, kill=kill)
    assert first.returncode == -9, f"not killed at {kill}: {first.stderr}"  # every point happens: val improves twice
    # killed before the first checkpoint landed: nothing to resume, the same command starts afresh
    resumed = _train(model, data, out, resume=(out / "last.pt").exists())
    assert resumed.returncode == 0, resumed.stderr
    assert _rows(out / "metrics.csv") == _rows(straight / "metrics.csv")
    for name in ("last.pt", "best.pt"):
        for key, value in _weights(straight / name).items():
            assert torch.equal(_weights(out / name)[key], value), (name, key)
    assert not list(out.glob(".*.tmp")), "temporary files left behind"
