"""What the tests share: the repository's places, golden files, skip markers (defined here once), a fake
MNIST writer, the kernel test neurons, and SIGINT as a terminal delivers it."""
from __future__ import annotations

import gzip
import hashlib
import importlib
import os
import signal
from pathlib import Path

import numpy as np
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
needs_mnist_sums = pytest.mark.skipif(not (MNIST / "SHA256SUMS").is_file(),
                                      reason="real MNIST with its SHA256SUMS not found (set SNNC_DATA_DIR)")


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
HAS_CXX = not NO_CXX
needs_cxx = pytest.mark.skipif(bool(NO_CXX), reason=NO_CXX or "no C++ compiler")


def optional_import(name: str):
    """The module, or None where it does not import here (a reference implementation the tests compare with)."""
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a peer can fail to import in many ways
        return None


def _not_importable(name: str) -> str:
    try:
        importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001
        return f"{name} not importable: {exc}"
    return ""


NO_SJ = _not_importable("spikingjelly.activation_based")
needs_sj = pytest.mark.skipif(bool(NO_SJ), reason=NO_SJ or "SpikingJelly not importable")


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.gpu` tests are skipped where there is no CUDA device (the marker is the skip marker)."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        import torch

        if not torch.cuda.is_available():
            for item in gpu:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


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


# ------------------------------------------------------------------ data
IDX_MAGIC = {"images": 0x803, "labels": 0x801}


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An array in the IDX format MNIST's files use (unsigned bytes)."""
    header = magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _blocks(labels: np.ndarray, rng) -> np.ndarray:
    """Class c lights a 6x6 block at its own place, with grey levels and a little noise: learnable in a few
    batches."""
    images = np.zeros((len(labels), 28, 28))
    for i, c in enumerate(labels):
        r, q = 3 + 12 * (c // 5), 1 + 5 * (c % 5)
        images[i, r:r + 6, q:q + 6] = rng.uniform(120, 255, (6, 6))
    noise = rng.uniform(0, 80, images.shape) * (rng.random(images.shape) < 0.05)
    return np.clip(images + noise, 0, 255)


IMAGES = {
    "noise": lambda labels, rng: rng.integers(0, 256, (len(labels), 28, 28)),
    "sparse": lambda labels, rng: rng.integers(0, 256, (len(labels), 28, 28)) * (rng.random((len(labels), 28, 28)) < 0.3),
    "blocks": _blocks,
}


def write_mnist(folder: Path, n_train: int = 30, n_test: int = 10, images: str = "noise", seed: int = 0,
                gz: bool = False, sums: bool = False) -> dict[str, np.ndarray]:
    """A fake MNIST: the four IDX files (gzipped with `gz`, with a SHA256SUMS beside them with `sums`) of
    random labels and `images` ("noise", "sparse" or the learnable "blocks"). Returns the arrays by file name."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays, lines = {}, []
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n)
        arrays[f"{split}-images-idx3-ubyte"] = IMAGES[images](labels, rng)
        arrays[f"{split}-labels-idx1-ubyte"] = labels
    for name, array in arrays.items():
        payload = idx_bytes(array, IDX_MAGIC["images" if "images" in name else "labels"])
        path = folder / (name + ".gz" if gz else name)
        path.write_bytes(gzip.compress(payload) if gz else payload)
        lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}")
    if sums:
        (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return arrays


# ------------------------------------------------------------------ kernels
@pytest.fixture(scope="session")
def kernel_test_neurons():
    """tests/kernel_test_neurons.snn: neurons that stress the kernel printers (names that would break C,
    scalar / tensor division, powers, learnables in loop invariants, a custom surrogate)."""
    from snnc.compiler.assemble import load_module

    return load_module(TESTS / "kernel_test_neurons.snn")[0]


# ------------------------------------------------------------------ signals
@pytest.fixture
def sigint_at_a_terminal():
    """SIGINT handled as in a command started at a terminal (Python's KeyboardInterrupt), whatever this process
    inherited: a background job of a script, nohup and some CI runners start with SIGINT ignored. The
    inherited disposition is put back afterwards."""
    found = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, found)


def as_at_a_terminal() -> None:
    """`preexec_fn` of a child process that should get Ctrl-C as a foreground command does, whatever this
    process inherited."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
