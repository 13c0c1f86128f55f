"""A checkpoint fits its model by content: the same `.snn` file (and imports) by any path, from any folder or
as a copy elsewhere is the same model; a changed one, here or in an import, is refused with a hint."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from snnc import cli

from conftest import write_mnist

MODEL = """import snnc.neurons
import "cells.snn"

network Tiny {
    input = [1, 28, 28]
    T = 2
    layers {
        flatten
        linear(10)
        Cell()
    }
    train { dataset = mnist  batch_size = 8 }
}
"""
CELLS = """import snnc.neurons

neuron Cell {
    param tau = 2.0
    state v = v_reset
    charge v = v + (x - v) / tau
    surrogate atan(alpha = 2.0)
}
"""


class Planted:
    """An object a checkpoint must not hold (unpickling it could run code)."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model folder (model.snn importing cells.snn), fake MNIST, and a run of one batch trained by
    a relative path from the model's folder."""
    root = tmp_path_factory.mktemp("identity")
    (root / "model").mkdir()
    (root / "model" / "model.snn").write_text(MODEL)
    (root / "model" / "cells.snn").write_text(CELLS)
    write_mnist(root / "mnist", n_train=40, n_test=16)
    mp = pytest.MonkeyPatch()
    mp.chdir(root / "model")
    try:
        assert cli.main(["train", "model.snn", "--data-dir", str(root / "mnist"), "--max-steps", "1",
                         "--val-split", "0.2", "--out-dir", str(root / "run"), "--no-plots", "--quiet"]) == 0
    finally:
        mp.undo()
    return root


def _eval(root: Path, model: str, *extra: str) -> int:
    return cli.main(["eval", model, "--checkpoint", str(root / "run" / "last.pt"), "--data-dir",
                     str(root / "mnist"), "--json", *extra])


def test_the_same_model_by_absolute_path_from_another_folder(trained, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    assert _eval(trained, str(trained / "model" / "model.snn")) == 0
    monkeypatch.chdir(trained)
    assert _eval(trained, "model/model.snn") == 0
    assert "test_acc" in capsys.readouterr().out


def test_a_copy_in_another_folder_evaluates_and_resumes(trained, monkeypatch, tmp_path, capsys):
    copy = tmp_path / "elsewhere"
    shutil.copytree(trained / "model", copy)
    monkeypatch.chdir(tmp_path)
    assert _eval(trained, "elsewhere/model.snn") == 0
    assert cli.main(["train", str(copy / "model.snn"), "--data-dir", str(trained / "mnist"), "--max-steps", "1",
                     "--val-split", "0.2", "--epochs", "2", "--resume", str(trained / "run" / "last.pt"),
                     "--out-dir", str(tmp_path / "resumed"), "--no-plots", "--quiet"]) == 0


@pytest.mark.parametrize("file, old, new", [("model.snn", "linear(10)", "linear(10, bias = false)"),
                                            ("cells.snn", "/ tau", "/ tau * 0.5")])
def test_a_changed_model_or_import_is_refused_with_a_hint(trained, tmp_path, capsys, file, old, new):
    copy = tmp_path / "changed"
    shutil.copytree(trained / "model", copy)
    (copy / file).write_text((copy / file).read_text().replace(old, new))
    assert _eval(trained, str(copy / "model.snn")) == 1
    err = capsys.readouterr().err
    assert "was trained for a different model" in err and "hint:" in err and "Traceback" not in err


def test_a_comment_or_another_network_leaves_the_identity(trained, tmp_path):
    copy = tmp_path / "commented"
    shutil.copytree(trained / "model", copy)
    text = (copy / "model.snn").read_text()
    (copy / "model.snn").write_text("# a note\n" + text + "\nnetwork Other {\n  input = [4]\n  T = 1\n"
                                    "  layers {\n    linear(2)\n    LIF()\n  }\n}\n")
    assert _eval(trained, str(copy / "model.snn"), "--network", "Tiny") == 0


def test_a_checkpoint_holding_objects_is_refused_without_pytorchs_advice(trained, tmp_path, capsys):
    """PyTorch's message for such a file advises weights_only=False (which would run the file's code): snnc says
    what the file holds instead and never passes the advice on."""
    import torch

    planted = tmp_path / "planted.pt"
    torch.save({"format": 1, "model": Planted()}, planted)
    assert cli.main(["eval", str(trained / "model" / "model.snn"), "--checkpoint", str(planted)]) == 1
    err = capsys.readouterr().err
    assert "weights_only" not in err and "snnc loads weights only, never code" in err
