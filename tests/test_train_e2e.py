"""End to end: `snnc train` / `snnc eval` on the compiled demo model and real MNIST (CI has ../shared/data/mnist)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from snnc.cli import main

from conftest import MNIST, ROOT, needs_mnist


def _train(out: Path, *extra: str) -> int:
    return main(["train", str(ROOT / "models" / "lif_fc_mnist.snn"), "--data-dir", str(MNIST), "--out-dir", str(out),
                 "--subset", "6400", "--test-subset", "2000", "-T", "20", "--quiet", *extra])


@pytest.mark.slow
@needs_mnist
def test_train_resume_and_eval_compiled_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out, "--epochs", "1") == 0
    assert _train(out, "--epochs", "2", "--resume", str(out / "last.pt")) == 0
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                             "train_images_per_s", "seconds"]
    # 6,400 images, T = 20: measured 0.80-0.84 after one epoch; the floor leaves room for other seeds
    assert float(rows[-1]["test_acc"]) >= 0.78
    for name in ("last.pt", "best.pt", "accuracy.png", "loss.png"):
        assert (out / name).stat().st_size > 0
    capsys.readouterr()
    assert main(["eval", str(ROOT / "models" / "lif_fc_mnist.snn"), "--checkpoint", str(out / "best.pt"),
                 "--data-dir", str(MNIST), "--test-subset", "2000", "-T", "20", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["test_acc"] >= 0.78


@pytest.mark.slow
@needs_mnist
def test_torch_and_cpp_backends_train_identically(tmp_path):
    accs = []
    for backend in ("torch", "cpp"):
        out = tmp_path / backend
        assert main(["train", str(ROOT / "models" / "lif_fc_mnist.snn"), "--data-dir", str(MNIST), "--out-dir",
                     str(out), "--subset", "640", "--test-subset", "500", "-T", "10", "--quiet",
                     "--backend", backend, "--no-fuse-input"]) == 0
        with open(out / "metrics.csv") as f:
            row = next(csv.DictReader(f))
        accs.append((row["train_loss"], row["train_acc"], row["test_acc"]))
    assert accs[0] == accs[1]


@pytest.mark.slow
@needs_mnist
def test_fused_input_layer_trains_like_the_unfused_one(tmp_path):
    rows = []
    for flag in ((), ("--no-fuse-input",)):
        out = tmp_path / ("fused" if not flag else "unfused")
        assert _train(out, "--epochs", "1", *flag) == 0
        with open(out / "metrics.csv") as f:
            rows.append(next(csv.DictReader(f)))
    # same spikes, float sums in another order: training follows the same path within rounding
    for key in ("train_loss", "test_loss"):
        assert float(rows[0][key]) == pytest.approx(float(rows[1][key]), rel=2e-3)
    assert abs(float(rows[0]["test_acc"]) - float(rows[1]["test_acc"])) <= 0.01


def test_bad_data_dir_is_a_clean_error(tmp_path, capsys):
    code = main(["train", str(ROOT / "models" / "lif_fc_mnist.snn"), "--data-dir", str(tmp_path / "nowhere"),
                 "--out-dir", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "SNNC_DATA_DIR" in err
