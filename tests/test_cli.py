"""The command line: check, --json, build (a package that needs only torch), simulate, and clean errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from snnc import cli
from snnc.compiler import ir

from conftest import MODELS, ROOT

MODEL_FILES = sorted(p.relative_to(ROOT).as_posix() for p in MODELS.glob("*.snn"))


@pytest.mark.parametrize("model", MODEL_FILES)
def test_check_ok(model, in_repo_root, capsys):
    assert cli.main(["check", model]) == 0
    out = capsys.readouterr().out
    assert f"{model}: ok" in out
    if "mnist" in model:
        assert "shape" in out and "[10]" in out and "parameters" in out


@pytest.mark.parametrize("model", MODEL_FILES)
def test_check_json_round_trips(model, in_repo_root, capsys):
    assert cli.main(["check", model, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    module = ir.Module.model_validate(data)
    assert module.model_dump(mode="json") == data


def test_build_imports_with_only_torch(tmp_path, in_repo_root, capsys):
    out = tmp_path / "out"
    assert cli.main(["build", "models/lif_fc_mnist.snn", "-o", str(out)]) == 0
    assert (out / "lif_fc_mnist" / "__init__.py").is_file()
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(out)!r})\n"
        "import torch, lif_fc_mnist\n"
        "net = lif_fc_mnist.LifFcMnist()\n"
        "y = net(torch.rand(3, 2, 1, 28, 28))\n"
        "assert tuple(y.shape) == (3, 2, 10), y.shape\n"
        "assert not any(m == 'snnc' or m.startswith('snnc.') for m in sys.modules), 'snnc was imported'\n"
        "print('ok')\n"
    )
    # run outside the repository so the source tree's snnc is not importable by accident
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_simulate_writes_png(tmp_path, in_repo_root, capsys):
    png = tmp_path / "v.png"
    assert cli.main(["simulate", "models/neurons.snn", "--neuron", "LIF", "--input", "0.6", "-T", "50",
                     "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "spikes" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["check", "no/such/file.snn"],
    ["check", "models"],
    ["build", "no_such.snn", "-o", "x"],
    ["simulate", "models/neurons.snn", "--neuron", "NoSuch"],
    ["simulate", "models/neurons.snn", "--neuron", "LIF", "--param", "tau=0.5"],
])
def test_bad_input_exits_1_without_traceback(argv, in_repo_root, capsys):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "error" in err


def test_non_utf8_file(tmp_path, capsys):
    f = tmp_path / "bin.snn"
    f.write_bytes(b"\xff\xfe\x00neuron")
    assert cli.main(["check", str(f)]) == 1
    assert "UTF-8" in capsys.readouterr().err


def test_build_never_replaces_a_folder_it_did_not_write(tmp_path, capsys):
    main = cli.main
    mine = tmp_path / "lif_fc_mnist"
    mine.mkdir()
    (mine / "notes.txt").write_text("my own work")
    model = str(MODELS / "lif_fc_mnist.snn")
    assert main(["build", model, "-o", str(tmp_path)]) == 1
    assert "not a package snnc built" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "my own work"
    other = tmp_path / "out"
    assert main(["build", model, "-o", str(other)]) == 0
    assert main(["build", model, "-o", str(other)]) == 0  # rebuilding over its own output is fine


def test_a_train_setting_has_one_default():
    """The train block's defaults (ir.Train: what `snnc check` fills into every network) are the runner's (and
    what `snnc train --help` prints: test_cli_runs); building the parser loads neither the IR nor pydantic."""
    from snnc.train.recipe import DEFAULTS

    assert DEFAULTS == ir.Train().model_dump() and DEFAULTS["epochs"] == 1
    code = "import sys, snnc.cli; snnc.cli.parser(); print('pydantic' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.stdout.split() == ["False"], r.stderr


@pytest.mark.parametrize("model", sorted(p.name for p in MODELS.glob("*.snn")))
def test_check_prints_within_100_columns_and_counts_own_neurons(model, in_repo_root, capsys):
    assert cli.main(["check", f"models/{model}"]) == 0
    out = capsys.readouterr().out
    tables = out[out.find("\nnetwork "):] if "\nnetwork " in out else ""
    assert all(len(line) <= 100 for line in tables.splitlines()), max(tables.splitlines(), key=len)
    first = out.splitlines()[0]
    assert ("10 neurons, 0 networks" in first) if model == "neurons.snn" else ("0 neurons, 10 imported" in first)


def test_check_table_keeps_dropout_p(tmp_path, capsys):
    path = tmp_path / "d.snn"
    path.write_text("import snnc.neurons\nnetwork D {\n  input = [8]\n  T = 2\n  layers {\n    linear(4)\n"
                    "    dropout\n    LIF()\n    dropout(0.2)\n  }\n}\n")
    assert cli.main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "dropout(p = 0.5)" in out and "dropout(p = 0.2)" in out


def test_verify_one_neuron(in_repo_root, capsys):
    assert cli.main(["verify", "models/neurons.snn", "--neuron", "LIF", "-q"]) == 0
    assert "over 1 neurons" in capsys.readouterr().out
    assert cli.main(["verify", "models/neurons.snn", "--neuron", "LIFF"]) == 1
    assert "did you mean 'LIF'?" in capsys.readouterr().err


@pytest.mark.parametrize("T", [3, 5, 150])
def test_time_axes_tick_whole_steps(T, tmp_path, monkeypatch):
    import numpy as np

    from snnc.train import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_output(np.random.rand(T, 4), np.random.rand(T, 4) > 0.5, tmp_path / "o.png")
    plots.plot_neuron(np.random.rand(T), np.random.rand(T) > 0.5, tmp_path / "n.png")
    for fig in figures:
        fig.canvas.draw()  # a figure without pyplot: the Agg canvas matplotlib gives it
        for ax in fig.axes[:2] if len(fig.axes) > 2 else fig.axes:
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_simulate_input_kinds_and_chosen_states(tmp_path, in_repo_root, capsys):
    from snnc.cli.simulate import input_signal

    assert input_signal("1.5", 3).tolist() == [1.5, 1.5, 1.5]
    assert input_signal("step:2:2", 4).tolist() == [0, 0, 2, 2]
    assert input_signal("pulse:3:1:2", 5).tolist() == [0, 3, 3, 0, 0]
    assert input_signal("sine:1:4", 4).round(decimals=6).tolist() == [0, 1, 0, -1]
    assert set(input_signal("poisson:0.5", 200).tolist()) == {0.0, 1.0}
    png = tmp_path / "alif.png"
    assert cli.main(["simulate", "models/neurons.snn", "--neuron", "AdaptiveLIF", "--input", "pulse:3.0:10:40",
                     "--state", "v", "--state", "w", "-T", "80", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "first at t=10" in out and "w=" in out and png.is_file()
    for bad, hint in ((["--input", "poison:0.3"], "did you mean 'poisson'?"),
                      (["--input", "step:1"], "e.g. --input step:1.5:20"), (["--state", "q"], "its states: v")):
        assert cli.main(["simulate", "models/neurons.snn", "--neuron", "LIF", *bad]) == 1
        assert hint in capsys.readouterr().err
