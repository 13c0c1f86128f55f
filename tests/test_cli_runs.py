"""The command line as a researcher meets it: help for every option, smoke and dry runs, a subset's epochs,
Ctrl-C (exit 130), the permissions of a run's files, and start-up without TorchDynamo or SymPy."""
from __future__ import annotations

import csv
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from snnc import cli

from conftest import MNIST, MODELS, ROOT, as_at_a_terminal, needs_mnist
COMMANDS = [c.name for c in cli.COMMANDS]


def _subparser(name: str):
    parser = cli.parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[name]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help_and_every_command_examples(name, capsys):
    p = _subparser(name)
    for action in p._actions:
        if action.dest != "help":
            assert action.help, f"snnc {name}: {action.option_strings or action.dest} has no help"
    assert p.description and p.epilog and p.epilog.startswith("examples:\n  snnc ")
    with pytest.raises(SystemExit) as exit_:
        cli.main([name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out


def test_train_help_names_where_defaults_come_from(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "passes over the training images (default: the model's train block, else 1;" in out  # ir.Train's
    assert "learning rate (default: the model's train block, else 0.001)" in out
    assert "--max-steps" in out and "--dry-run" in out and "--val-split" in out


def test_version(capsys):
    from snnc import __version__

    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"snnc {__version__}"


def test_dry_run_reads_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SNNC_DATA_DIR", raising=False)  # no data needed
    assert cli.main(["train", str(MODELS / "rsnn_smnist.snn"), "--dry-run", "-b", "8"]) == 0
    out = capsys.readouterr().out
    assert "trained one batch of 8 random mnist-shaped images" in out and "No files written" in out
    assert "loss " in out
    assert list(tmp_path.iterdir()) == []


def test_dry_run_reports_a_shape_mismatch(tmp_path, capsys):
    model = tmp_path / "wrong.snn"
    model.write_text("import snnc.neurons\nnetwork Wrong {\n    input = [1, 28, 27]\n    T = 2\n"
                     "    layers {\n        flatten\n        linear(10)\n        LIF\n    }\n}\n")
    assert cli.main(["train", str(model), "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "the network's input is [1, 28, 27]" in err and "MNIST" in err


def _rows(out: Path) -> list[dict]:
    with open(out / "metrics.csv") as f:
        return list(csv.DictReader(f))


@needs_mnist
def test_max_steps_is_a_smoke_run_of_the_whole_loop(tmp_path, capsys):
    out = tmp_path / "smoke"
    assert cli.main(["train", str(MODELS / "fc2_mnist.snn"), "--data-dir", str(MNIST), "--max-steps", "2",
                     "--out-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "smoke run: at most 2 training batches" in printed
    assert "first batch done" in printed
    rows = _rows(out)
    assert len(rows) == 1
    assert float(rows[0]["train_images_per_s"]) > 0
    for name in ("last.pt", "best.pt", "metrics.csv", "accuracy.png", "loss.png", "output.png"):
        assert (out / name).is_file(), name
    import torch

    state = torch.load(out / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["batch"] == 0


@needs_mnist
def test_subset_trains_one_epoch_unless_told(tmp_path, capsys):
    out = tmp_path / "subset"
    assert cli.main(["train", str(MODELS / "fc2_mnist.snn"), "--data-dir", str(MNIST), "--subset", "128",
                     "--test-subset", "64", "--val-split", "0.002", "--out-dir", str(out), "--no-plots"]) == 0
    assert "1 epoch," in capsys.readouterr().out
    assert len(_rows(out)) == 1  # the recipe says 30 epochs


@needs_mnist
def test_refusing_to_overwrite_names_the_option(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", str(MODELS / "fc2_mnist.snn"), "--data-dir", str(MNIST), "--max-steps", "1", "--out-dir",
            str(out), "--no-plots", "--quiet"]
    assert cli.main(argv) == 0
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "--overwrite" in err and f"--resume {out / 'last.pt'}" in err
    assert cli.main([*argv, "--overwrite"]) == 0


@needs_mnist
def test_run_outputs_have_the_users_usual_permissions(tmp_path):
    out = tmp_path / "perm"
    old = os.umask(0o022)
    try:
        assert cli.main(["train", str(MODELS / "fc2_mnist.snn"), "--data-dir", str(MNIST), "--max-steps", "1",
                         "--out-dir", str(out), "--quiet"]) == 0
    finally:
        os.umask(old)
    for path in out.rglob("*"):  # the run's files, and folders (TensorBoard's per-batch events)
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path.name


@pytest.mark.slow
@needs_mnist
def test_ctrl_c_saves_and_exits_130(tmp_path):
    out = tmp_path / "interrupted"
    env = {**os.environ, "SNNC_DATA_DIR": str(MNIST), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "snnc", "train", str(MODELS / "fc2_mnist.snn"), "--out-dir",
                             str(out), "--no-plots"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=as_at_a_terminal)
    try:
        for line in proc.stdout:
            if line.startswith("first batch done"):
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted at epoch 1" in err and "--resume" in err and "Traceback" not in err
    assert (out / "last.pt").is_file()


def test_simulate_example_spikes_and_writes_where_it_says(tmp_path, capsys):
    target = tmp_path / "new" / "lif.png"
    assert cli.main(["simulate", str(MODELS / "neurons.snn"), "--neuron", "LIF", "--input", "1.5",
                     "--plot", str(target)]) == 0
    out = capsys.readouterr().out
    assert " 0 spikes" not in out and "first at t=" in out
    assert target.is_file() and f"wrote {target}" in out


def test_a_network_runs_without_importing_dynamo_or_sympy(tmp_path):
    """The warm path (plans and kernels in the cache) needs neither: 1.4 s and 0.5 s of every start-up."""
    code = ("import sys, snnc, torch; net = snnc.load(sys.argv[1]).network(); "
            "net(torch.zeros(2, 1, *net.INPUT_SHAPE)); print('torch._dynamo' in sys.modules, 'sympy' in sys.modules)")
    path = str(MODELS / "rsnn_smnist.snn")
    subprocess.run([sys.executable, "-c", code, path], check=True, capture_output=True, cwd=ROOT)  # warm the caches
    out = subprocess.run([sys.executable, "-c", code, path], check=True, capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"]


def test_check_does_not_import_torch():
    code = "import sys; from snnc import cli; cli.main(['check', sys.argv[1]]); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code, str(MODELS / "fc2_mnist.snn")], check=True,
                         capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "False"


@needs_mnist
def test_trains_without_a_cpp_compiler(tmp_path):
    """No C++ compiler on PATH: the default backend is torch, and the Poisson encoder runs in torch too."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty), "SNNC_CACHE_DIR": str(tmp_path / "cache"), "MPLBACKEND": "Agg"}
    env.pop("CXX", None)
    result = subprocess.run([sys.executable, "-m", "snnc", "train", str(MODELS / "lif_fc_mnist.snn"), "--data-dir",
                             str(MNIST), "--max-steps", "2", "--test-subset", "64", "--out-dir", str(tmp_path / "run")],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "backend torch on cpu" in result.stdout
