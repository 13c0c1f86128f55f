"""Shared helpers for the compiler tests."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI explores the same examples every run (no flaky red builds); locally each run explores new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

TESTS = Path(__file__).parent
ROOT = TESTS.parent
MODELS = ROOT / "models"
UPDATE_GOLDEN = os.environ.get("SNNC_UPDATE_GOLDEN") == "1"
# the real MNIST files: SNNC_DATA_DIR, or the shared folder beside the checkout (CI has it)
MNIST = Path(os.environ.get("SNNC_DATA_DIR") or ROOT.parent / "shared" / "data" / "mnist")
needs_mnist = pytest.mark.skipif(not (MNIST / "train-images-idx3-ubyte.gz").exists(),
                                 reason="real MNIST not found (set SNNC_DATA_DIR)")


def _no_cxx() -> str:
    """Why the host C++ kernels cannot be built here, or ''."""
    from snnc.compiler.source import SnncError
    from snnc.runtime.cc import find_compiler

    try:
        find_compiler()
    except SnncError as exc:  # pragma: no cover - depends on the environment
        return f"no C++ compiler: {exc}"
    return ""


NO_CXX = _no_cxx()
needs_cxx = pytest.mark.skipif(bool(NO_CXX), reason=NO_CXX or "no C++ compiler")


@pytest.fixture
def in_repo_root(monkeypatch):
    """Run with the repository root as the working directory, so reported file names are relative."""
    monkeypatch.chdir(ROOT)
    return ROOT


def write_or_compare(path: Path, actual: str, what: str) -> None:
    """Compare with a golden file; with SNNC_UPDATE_GOLDEN=1, rewrite it instead."""
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    assert path.exists(), f"missing golden file {path.relative_to(ROOT)}; run with SNNC_UPDATE_GOLDEN=1 to create it"
    expected = path.read_text()
    assert actual == expected, (
        f"{what} differs from {path.relative_to(ROOT)}; if the change is intended, regenerate with "
        f"SNNC_UPDATE_GOLDEN=1 python -m pytest {Path(__import__('inspect').stack()[1].filename).name}")
