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


def _train(model, data, out, kill=None, resume=False, extra=(), signal=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("SNNC_KILL_AT", None)
    env.pop("SNNC_KILL_SIGNAL", None)
    if kill:
        env["SNNC_KILL_AT"] = kill
    if signal:
        env["SNNC_KILL_SIGNAL"] = signal
    args = [sys.executable, "-m", "snnc", "train", str(model), "--data-dir", str(data), "--out-dir", str(out),
            "--quiet", "--no-plots", "--workers", "1", *extra]
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


# ------------------------------------------------------------------ --max-steps runs, and SIGTERM at each stage
STEPS = ["--epochs", "3", "--max-steps", "12"]  # 8 batches an epoch: epoch 1, then 4 batches of epoch 2


@pytest.fixture(scope="module")
def smoke(setup, tmp_path_factory):
    model, data, _ = setup
    straight = tmp_path_factory.mktemp("smoke") / "straight"
    assert _train(model, data, straight, extra=STEPS).returncode == 0
    assert [r["epoch"] for r in _rows(straight / "metrics.csv")] == [1, 2]
    return model, data, straight


def _same_run(out, straight):
    assert _rows(out / "metrics.csv") == _rows(straight / "metrics.csv")
    for name in ("last.pt", "best.pt"):
        for key, value in _weights(straight / name).items():
            assert torch.equal(_weights(out / name)[key], value), (name, key)
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


@pytest.mark.slow
@pytest.mark.parametrize("kill,again", [("last.pt:1:after", "with --max-steps"), ("last.pt:2:after", "without it")])
def test_a_killed_max_steps_run_resumes_to_its_budget(smoke, tmp_path, kill, again):
    """The step budget rides in last.pt: resumed, with or without --max-steps repeated, the run stops where
    the uninterrupted one did (it ran an extra epoch when only the options held the budget)."""
    model, data, straight = smoke
    out = tmp_path / "run"
    assert _train(model, data, out, kill=kill, extra=STEPS).returncode == -9
    resumed = _train(model, data, out, resume=True, extra=STEPS if again == "with --max-steps" else ["--epochs", "3"])
    assert resumed.returncode == 0, resumed.stderr
    _same_run(out, straight)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["run:1:before", "last.pt:1:after", "run:1:after"],
                         ids=["during setup", "after an epoch's checkpoint", "after the training loop"])
def test_sigterm_at_each_stage_stops_with_130_and_resumes_exactly(smoke, tmp_path, point):
    model, data, straight = smoke
    out = tmp_path / "run"
    first = _train(model, data, out, kill=point, extra=STEPS, signal="TERM")
    assert first.returncode == 130, (first.returncode, first.stderr)
    assert "interrupted" in first.stderr and "Traceback" not in first.stderr
    if point == "run:1:before":  # stopped before anything was written: the same command is a fresh run
        assert not (out / "last.pt").exists()
        return
    resumed = _train(model, data, out, resume=True, extra=STEPS)
    assert resumed.returncode == 0, resumed.stderr
    _same_run(out, straight)


def test_a_changed_step_budget_on_resume_is_refused(tmp_path):
    from snnc.compiler.source import SnncError
    from snnc.train.runner import _max_steps

    assert _max_steps(None, {"max_steps": 12}, True) == 12 and _max_steps(5, {}, True) == 5
    assert _max_steps(None, {"max_steps": None}, True) is None  # a full run stays one
    with pytest.raises(SnncError, match="--max-steps 5 differs from the resumed run's 12"):
        _max_steps(5, {"max_steps": 12}, True)
