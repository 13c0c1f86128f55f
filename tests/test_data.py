"""Loading MNIST-format IDX files: real data beside the repo, synthetic files, layouts and errors."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from snnc import SnncError
from snnc.train import data as datasets

from conftest import IDX_MAGIC, MNIST, idx_bytes, needs_mnist_sums, write_mnist


@needs_mnist_sums
def test_real_mnist_loads_in_memory():
    ds = datasets.load("mnist", MNIST)
    assert ds.train.images.shape == (60000, 1, 28, 28) and ds.train.images.dtype == torch.uint8
    assert ds.test.images.shape == (10000, 1, 28, 28)
    assert ds.train.labels.dtype == torch.int64 and set(ds.test.labels.unique().tolist()) == set(range(10))
    x, y = ds.test.batch(torch.arange(5))[:2]
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and y.shape == (5,)
    assert y.tolist() == [7, 2, 1, 0, 4]  # the well-known first test labels


@needs_mnist_sums
def test_real_mnist_checksum_mismatch_is_reported(tmp_path):
    for f in MNIST.iterdir():
        shutil.copy(f, tmp_path / f.name)
    sums = (tmp_path / "SHA256SUMS").read_text().replace("0b367032", "deadbeef")
    (tmp_path / "SHA256SUMS").write_text(sums)
    with pytest.raises(SnncError, match="train-images-idx3-ubyte.gz is corrupt.*SHA256SUMS"):
        datasets.load("mnist", tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_synthetic_raw_and_gzip(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz, sums=True)
    ds = datasets.load("mnist", tmp_path)
    assert torch.equal(ds.train.images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"].astype(np.uint8)))
    assert ds.test.labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert len(ds.train) == 30 and len(ds.test) == 10 and ds.folder == tmp_path.resolve()


@pytest.mark.parametrize("name,sub", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_torchvision_layout(tmp_path, name, sub):
    write_mnist(tmp_path / sub / "raw", gz=True)
    ds = datasets.load(name, tmp_path)
    assert ds.folder == (tmp_path / sub / "raw").resolve() and ds.name == name


def test_env_var_gives_the_folder(tmp_path, monkeypatch):
    write_mnist(tmp_path, n_train=12)
    monkeypatch.setenv("SNNC_DATA_DIR", str(tmp_path))
    assert len(datasets.load("mnist").train) == 12


def test_no_folder_given(monkeypatch):
    monkeypatch.delenv("SNNC_DATA_DIR", raising=False)
    with pytest.raises(SnncError) as info:
        datasets.load("mnist")
    assert "--data-dir" in str(info.value) and "SNNC_DATA_DIR" in str(info.value)


def test_missing_files_list_expected_names(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(SnncError) as info:
        datasets.load("mnist", tmp_path)
    text = str(info.value)
    assert "not found" in text and "t10k-labels-idx1-ubyte" in text and "train-images-idx3-ubyte" in text
    assert "--data-dir" in text and "SNNC_DATA_DIR" in text


def test_bad_magic(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03" + path.read_bytes()[4:])
    with pytest.raises(SnncError, match="train-labels-idx1-ubyte is corrupt: magic number"):
        datasets.load("mnist", tmp_path)


def test_truncated_file(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(SnncError, match="t10k-images-idx3-ubyte is corrupt.*truncated") as info:
        datasets.load("mnist", tmp_path)
    assert "fresh copy" in str(info.value)


def test_truncated_gzip(tmp_path):
    write_mnist(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(SnncError, match="train-images-idx3-ubyte.gz is corrupt"):
        datasets.load("mnist", tmp_path)


def test_not_gzip(tmp_path):
    write_mnist(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"hello, not gzip")
    with pytest.raises(SnncError, match="t10k-labels-idx1-ubyte.gz is corrupt: it is not a valid gzip"):
        datasets.load("mnist", tmp_path)


def test_label_count_mismatch(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(9), IDX_MAGIC["labels"]))
    with pytest.raises(SnncError, match="9 labels for 10 images"):
        datasets.load("mnist", tmp_path)


def test_unknown_dataset(tmp_path):
    with pytest.raises(SnncError, match="unknown dataset 'imagenet'"):
        datasets.load("imagenet", tmp_path)


def test_download_failure_explains_offline(tmp_path, monkeypatch):
    torchvision = pytest.importorskip("torchvision")

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(SnncError) as info:
        datasets.load("mnist", tmp_path / "dl", download=True)
    assert "downloading MNIST" in str(info.value) and "offline" in str(info.value) and "--data-dir" in str(info.value)


def test_no_download_unless_asked(tmp_path, monkeypatch):
    torchvision = pytest.importorskip("torchvision")

    def forbidden(*args, **kwargs):
        raise AssertionError("must not download")

    monkeypatch.setattr(torchvision.datasets, "MNIST", forbidden)
    with pytest.raises(SnncError, match="not found"):
        datasets.load("mnist", tmp_path)


def test_head_subset(tmp_path):
    write_mnist(tmp_path)
    train = datasets.load("mnist", tmp_path).train
    assert len(train.head(7)) == 7 and train.head(None) is train
