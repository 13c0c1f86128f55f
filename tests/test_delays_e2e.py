"""The SHD / SSC models end to end on small files in the published HDF5 layout (tests/formats.py): check,
train a few batches, resume exactly, export the trained delays to NIR and import them back."""
from __future__ import annotations

import csv

import pytest
import torch

from snnc import cli
from snnc.train import data

import formats
from conftest import MODELS

RUNS = {  # model: (dataset, classes)
    "shd_delays": ("shd", 20),
    "ssc_delays": ("ssc", 35),
    "shd_adaptive_rsnn": ("shd", 20),
}


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNC_CACHE_DIR", str(tmp_path / "cache"))
    data._binned.cache_clear()
    yield
    data._binned.cache_clear()


def _metrics(out):
    with open(out / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in ("seconds", "train_images_per_s")} for row in csv.DictReader(f)]


@pytest.mark.slow
@pytest.mark.parametrize("model", list(RUNS))
def test_model_trains_resumes_and_exports(tmp_path, private_cache, model, capsys):
    dataset, classes = RUNS[model]
    folder = formats.write_hsd(tmp_path / "data", dataset, per_split=8, classes=classes)
    path = MODELS / f"{model}.snn"
    assert cli.main(["check", str(path)]) == 0
    common = ["train", str(path), "--data-dir", str(folder), "--subset", "8", "--test-subset", "4", "-b", "4",
              "--no-plots", "--quiet", "--lr-schedule", "none"]  # cosine with a growing --epochs is not a resume
    assert cli.main([*common, "--epochs", "2", "--out-dir", str(tmp_path / "straight")]) == 0
    assert cli.main([*common, "--epochs", "1", "--out-dir", str(tmp_path / "halves")]) == 0
    assert cli.main(["train", str(path), "--data-dir", str(folder), "--resume", str(tmp_path / "halves" / "last.pt"),
                     "--epochs", "2", "--no-plots", "--quiet"]) == 0
    assert _metrics(tmp_path / "straight") == _metrics(tmp_path / "halves")
    state = torch.load(tmp_path / "straight" / "last.pt", weights_only=False)
    weights = state["model"]
    positions = [k for k in weights if k.endswith(".position")]
    assert bool(positions) == ("delays" in model)
    for key in positions:  # the positions learned and stayed in range; the width annealed
        sigma = weights[key.replace("position", "sigma")]
        assert 0.0 <= float(weights[key].min()) and float(weights[key].max()) <= 24.0
        assert 0.5 < float(sigma) < 12.27


@pytest.mark.slow
def test_trained_delays_export_to_nir_and_import_back(tmp_path, private_cache, capsys):
    """NIR has no batch normalisation: the SHD recipe without it trains, exports its rounded delays and comes
    back as fixed delays whose outputs equal the trained network's in eval."""
    import snnc

    folder = formats.write_hsd(tmp_path / "data", "shd", per_split=8)
    text = (MODELS / "shd_delays.snn").read_text().replace("    batchnorm1d\n", "")
    path = tmp_path / "shd_nobn.snn"
    path.write_text(text.replace("DelayedHidden(256)", "DelayedHidden(32)"))
    assert cli.main(["train", str(path), "--data-dir", str(folder), "--subset", "8", "--test-subset", "4", "-b", "4",
                     "--epochs", "1", "--no-plots", "--quiet", "--out-dir", str(tmp_path / "run")]) == 0
    ckpt = tmp_path / "run" / "last.pt"
    assert cli.main(["export", str(path), "--nir", str(tmp_path / "m.nir"), "--checkpoint", str(ckpt)]) == 0
    assert cli.main(["import", str(tmp_path / "m.nir"), "-o", str(tmp_path / "back.snn")]) == 0
    net = snnc.load(path).network("ShdDelays", backend="torch")
    net.load_state_dict(torch.load(ckpt, weights_only=False)["model"])
    back = snnc.load(tmp_path / "back.snn").network("ShdDelays", backend="torch")
    back.load_state_dict(torch.load(tmp_path / "back.pt", weights_only=False)["model"])
    net.eval(), back.eval()
    x = (torch.rand(100, 2, 140) < 0.05).float()
    with torch.no_grad():
        assert (net(x) - back(x)).abs().max() < 1e-4
    assert "delay(" in (tmp_path / "back.snn").read_text()
