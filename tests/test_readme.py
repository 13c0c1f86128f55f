"""The README's commands run as written (training commands as smoke runs: `--max-steps` appended), its `.snn`
examples check, its Python example runs, and its benchmark commands take the options shown."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MNIST, ROOT, needs_mnist

README = (ROOT / "README.md").read_text()
SMOKE = ["--max-steps", "2", "--test-subset", "128"]


def _blocks(language: str = "") -> list[str]:
    """The fenced blocks of one language ("" for unlabelled ones), in order."""
    fences = re.findall(r"^```(\w*)\n(.*?)^```$", README, flags=re.S | re.M)
    return [text for lang, text in fences if lang == language]


def _commands(text: str, program: str) -> list[list[str]]:
    out = []
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words and Path(words[0]).name == program:
            out.append(words)
    return out


def _run(words: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "snnc", *words[1:]]
    if "--max-steps" in argv:  # briefer still
        argv[argv.index("--max-steps") + 1] = "2"
    if words[1] == "train" and "--dry-run" not in words and "--max-steps" not in words:
        argv += SMOKE  # the whole loop, briefly: the README's figures come from the full runs
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _env(**extra) -> dict:
    return {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT), **extra}


USING_IT = next(b for b in _blocks() if "source .venv/bin/activate" in b)

# `snnc` as the activated venv has it, except that a training command without --dry-run or --max-steps runs as a
# smoke run (the README's figures come from the full runs, with the commands in its tables).
SHIM = f"""#!/usr/bin/env bash
args=("$@")
if [ "$1" = train ] && [[ " $* " != *" --dry-run "* && " $* " != *" --max-steps "* ]]; then
    args+=({' '.join(SMOKE)})
fi
exec {sys.executable} -m snnc "${{args[@]}}"
"""


@pytest.mark.slow
@needs_mnist
def test_using_it_block_runs_as_written(tmp_path):
    """The 'Using it' block, line by line in bash, from a checkout whose ../shared/data/mnist is the data."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "models").symlink_to(ROOT / "models")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "shared" / "data" / "mnist").symlink_to(MNIST)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "snnc").write_text(SHIM)
    (bin_dir / "snnc").chmod(0o755)
    script = "\n".join(line for line in USING_IT.splitlines() if not line.startswith("source "))
    env = _env(PATH=f"{bin_dir}:{os.environ['PATH']}")
    env.pop("SNNC_DATA_DIR", None)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=checkout, env=env, capture_output=True,
                            text=True, timeout=1800)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
    assert (checkout / "runs" / "lif.png").is_file() and (checkout / "runs" / "imported.snn").is_file()


def _inline_train_commands() -> list[list[str]]:
    found = re.findall(r"`(snnc train [^`]+)`", README)
    return [shlex.split(c) for c in found if ".snn" in c and not any(m in c for m in ("MODEL", "...", "<"))]


@pytest.mark.slow
@needs_mnist
@pytest.mark.parametrize("words", _inline_train_commands(), ids=shlex.join)
def test_inline_train_commands_start(words, tmp_path):
    """Every `snnc train ...` in the text and tables (the accuracy figures' commands) takes its options."""
    result = _run([*words, "--out-dir", str(tmp_path / "run")], ROOT, _env(SNNC_DATA_DIR=str(MNIST)))
    assert result.returncode == 0, result.stderr[-2000:]


@needs_mnist
def test_quickstart_training_command_starts(tmp_path):
    quick = next(b for b in _blocks() if "scripts/setup.sh" in b)
    train = next(line.split("&&", 1)[1] for line in quick.splitlines() if " train " in line)
    words = shlex.split(train)
    assert Path(words[0]).name == "snnc" and "--data-dir" in words
    result = _run([*words, "--out-dir", str(tmp_path / "run")], ROOT, _env())
    assert result.returncode == 0, result.stderr[-2000:]


def _snn_examples() -> list[str]:
    return [b for b in _blocks() if re.search(r"^(neuron|network|import snnc)", b, flags=re.M)
            and "source .venv" not in b]


@pytest.mark.parametrize("index", range(len(_snn_examples())))
def test_snn_examples_check(index, tmp_path):
    path = tmp_path / f"example{index}.snn"
    path.write_text(_snn_examples()[index])
    result = subprocess.run([sys.executable, "-m", "snnc", "check", str(path)], cwd=ROOT, env=_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_error_example_is_what_check_prints(tmp_path):
    shown = next(b for b in _blocks() if "error: unknown name" in b)
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "bad.snn").write_text("neuron LIF {\n  param tau = 2.0\n  state v = 0.0\n"
                                    "  charge v = v + (x - v) / tua\n}\n")
    result = subprocess.run([sys.executable, "-m", "snnc", "check", "models/bad.snn"], cwd=tmp_path, env=_env(),
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == shown.strip()


def test_python_example_runs():
    code = next(b for b in _blocks("python"))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rate = float(re.search(r"firing rate ([0-9.]+)", result.stdout)[1])
    assert 0.1 < rate < 0.4, rate  # the example's neurons fire


def _benchmark_commands() -> list[list[str]]:
    return [shlex.split(c) for c in re.findall(r"`(python benchmarks/[^`]+)`", README)]


@pytest.mark.parametrize("words", _benchmark_commands(), ids=shlex.join)
def test_benchmark_commands_take_their_options(words):
    result = subprocess.run([sys.executable, words[1], "--help"], cwd=ROOT, env=_env(), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for option in (w for w in words[2:] if w.startswith("--")):
        assert option in result.stdout, f"{words[1]} has no {option}"
