"""TensorBoard: per-epoch metrics and lr, per-batch loss, accuracy, lr and each spiking layer's firing rate, read
back with TensorBoard's own EventAccumulator; --overwrite leaves one run's events, not two merged."""
from __future__ import annotations

import pytest

from snnc import cli

from conftest import MODELS, write_mnist

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _scalars(folder) -> dict:
    events = event_accumulator.EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_epochs_batches_firing_rates_and_overwrite(tmp_path):
    write_mnist(tmp_path / "mnist", n_train=100, n_test=20)
    out = tmp_path / "run"
    argv = ["train", str(MODELS / "fc2_mnist.snn"), "--data-dir", str(tmp_path / "mnist"), "--epochs", "2",
            "-b", "30", "--val-split", "0.1", "-T", "2", "--out-dir", str(out), "--no-plots", "--quiet"]
    assert cli.main(argv) == 0
    epochs = _scalars(out)
    for tag in ("train_loss", "train_acc", "val_acc", "test_loss", "test_acc", "lr"):
        assert [step for step, _ in epochs[tag]] == [1, 2], tag
    batches = _scalars(out / "batches")
    assert set(batches) == {"batch/loss", "batch/accuracy", "batch/lr", "firing_rate/2", "firing_rate/4"}
    assert [step for step, _ in batches["batch/loss"]] == list(range(6))  # 90 images in batches of 30, twice
    assert all(0.0 <= v <= 1.0 for tag in ("firing_rate/2", "batch/accuracy") for _, v in batches[tag])
    assert batches["batch/lr"][0][1] == pytest.approx(1e-3)

    assert cli.main([*argv, "--overwrite", "--epochs", "1"]) == 0
    for folder in (out, out / "batches"):
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1, folder
    assert [step for step, _ in _scalars(out)["train_loss"]] == [1]
    assert [step for step, _ in _scalars(out / "batches")["batch/loss"]] == [0, 1, 2]
