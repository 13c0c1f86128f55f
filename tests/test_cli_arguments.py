"""Command-line mistakes as snnc reports any mistake: exit 1, one error line and a hint ("did you mean" for a
misspelt command, option or choice), no usage dump, decided before torch is imported; and the start-up figure
counted from the start of snnc's own process."""
from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from snnc import cli

from conftest import MODELS, ROOT, write_mnist

FC2 = str(MODELS / "fc2_mnist.snn")


@pytest.mark.parametrize("argv, error, hint", [
    (["trian", FC2], "snnc: unknown command 'trian'", "did you mean 'train'?"),
    ([], "snnc: missing COMMAND", "one of check, build, train"),
    (["train"], "snnc train: missing MODEL.snn", "e.g. snnc train models/fc2_mnist.snn"),
    (["train", FC2, "--epohcs", "3"], "snnc train: unknown option '--epohcs'", "did you mean '--epochs'?"),
    (["train", FC2, "--epoch", "3"], "snnc train: unknown option '--epoch'", "did you mean '--epochs'?"),
    (["check", FC2, "--jsn"], "snnc check: unknown option '--jsn'", "did you mean '--json'?"),
    (["train", FC2, "--opt", "adamw"], "snnc train: unknown --opt value 'adamw'", "did you mean 'adam'?"),
    (["train", FC2, "--epochs", "abc"], "snnc train: --epochs takes a whole number, not 'abc'", "--help"),
    (["train", FC2, "--max-steps", "0"], "snnc train: --max-steps takes a whole number of at least 1, not 0",
     "--help"),
    (["train", FC2, "extra"], "snnc train: unexpected argument 'extra'", "--help"),
    (["train", str(MODELS / "fc2_mnist.sn")], "no such file:", "did you mean 'fc2_mnist.snn'?"),
    (["eval", FC2, "--checkpoint", "no/such.pt"], "no such file: no/such.pt", "check the path"),
])
def test_a_mistake_is_one_error_and_a_hint_exit_1(argv, error, hint, capsys):
    assert cli.main(argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: " + error) and lines[1].startswith("= hint: "), lines
    assert hint in lines[1]


def test_mistakes_are_reported_before_torch_is_imported(tmp_path):
    """Each of these used to take 3-5 s: torch was imported before the arguments were looked at."""
    bad = tmp_path / "bad.snn"
    bad.write_text("network N {\n  input = [4]\n  T = 1\n  layers { linaer(2) }\n}\n")
    cases = [["trian"], ["train", "no_such.snn"], ["train", FC2, "--max-steps", "0"],
             ["eval", FC2, "--checkpoint", "no_such.pt"], ["train", str(bad)], ["simulate", FC2, "-T", "0",
                                                                            "--neuron", "LIF"]]
    code = ("import sys; from snnc import cli\n"
            f"for argv in {cases!r}:\n"
            "    assert cli.main(argv) == 1, argv\n"
            "    assert 'torch' not in sys.modules, argv\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_first_batch_counts_from_snnc_s_own_process(tmp_path):
    """A shell runs the last command of `bash -c "...; snnc train"` in its own process: /proc then dates the
    process from the shell's start. The figure must not count the shell's 6 s."""
    write_mnist(tmp_path / "mnist", n_train=40, n_test=10)
    train = [sys.executable, "-m", "snnc", "train", FC2, "--data-dir", str(tmp_path / "mnist"), "--max-steps", "1",
             "--val-split", "0.25", "--out-dir", str(tmp_path / "run"), "--no-plots"]
    started = time.monotonic()
    done = subprocess.run(["bash", "-c", "sleep 6; exec " + " ".join(f"'{a}'" for a in train)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    seconds = float(re.search(r"first batch done ([0-9.]+) s after start", done.stdout)[1])
    assert 0 < seconds < wall - 6, (seconds, wall)
