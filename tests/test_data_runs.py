"""The data pipeline end to end: frames binned once and cached, padded batches and masked readouts,
augmentation keyed per sample, loader workers, `snnc train` on every format with exact resume, the dataset
checks of `snnc check`, and a user's own datasets through `snnc.fit`."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import formats
from conftest import MODELS, ROOT
from snnc import cli
from snnc.compiler import ir
from snnc.runtime import support
from snnc.train import data, loader
from snnc.train.data import nmnist


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SNNC_CACHE_DIR", str(cache))
    data._binned.cache_clear()
    data._images.cache_clear()
    yield cache
    data._binned.cache_clear()
    data._images.cache_clear()


def step(name, **args):
    return ir.Step(name=name, args=tuple((k, float(v)) for k, v in args.items()))


# ------------------------------------------------------------------ the frames cache
def test_frames_are_binned_once_then_memory_mapped_from_the_cache(tmp_path, private_cache, monkeypatch):
    formats.write_nmnist(tmp_path / "nm", per_class=2)
    calls = []
    real = nmnist.events
    monkeypatch.setattr(nmnist, "events", lambda path, row: calls.append(path) or real(path, row))
    first = data.load("nmnist", tmp_path / "nm", T=6)
    assert len(calls) == 40  # every train and test sample, once
    data._binned.cache_clear()
    again = data.load("nmnist", tmp_path / "nm", T=6)
    assert len(calls) == 40 and isinstance(again.train.data, np.memmap) and again.train.data.dtype == np.uint8
    index = torch.arange(8)
    assert torch.equal(first.train.batch(index).x, again.train.batch(index).x)
    assert again.train.batch(index).x.shape == (6, 8, 2, 34, 34) and again.train.batch(index).lengths is None


def test_a_changed_binning_t_transform_or_file_bins_again(tmp_path, private_cache):
    formats.write_nmnist(tmp_path / "nm", per_class=1)
    entries = lambda: len(list((private_cache / "data").glob("nmnist-train-frames-*")))  # noqa: E731
    data.load("nmnist", tmp_path / "nm", T=4)
    data.load("nmnist", tmp_path / "nm", T=5)  # the frame count is T
    data.load("nmnist", tmp_path / "nm", T=5, frames=step("time_bins"))
    data.load("nmnist", tmp_path / "nm", T=5, frames=step("time_window", us=10000))
    data.load("nmnist", tmp_path / "nm", T=5, frames=step("time_window", us=10000), transform=(step("denoise"),))
    data.load("nmnist", tmp_path / "nm", T=6, frames=step("time_window", us=10000), transform=(step("denoise"),))
    assert entries() == 5  # the last differs only in T, which a time window does not use: the same frames
    victim = next((tmp_path / "nm" / "Train" / "3").glob("*.bin"))
    victim.write_bytes(victim.read_bytes()[:-5])  # one event fewer: new file identity
    os.utime(victim, ns=(1, 1))
    data._binned.cache_clear()
    data.load("nmnist", tmp_path / "nm", T=4)
    assert entries() == 6


def test_checksums_beside_the_events_are_checked(tmp_path, private_cache):
    import hashlib

    from snnc.compiler.source import SnncError

    root = formats.write_nmnist(tmp_path / "nm", per_class=1)
    files = sorted(root.rglob("*.bin"))
    sums = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(root).as_posix()}" for p in files]
    (root / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    data.load("nmnist", root, T=4)
    files[3].write_bytes(files[3].read_bytes()[:-5])
    data._binned.cache_clear()
    with pytest.raises(SnncError, match="does not match SHA256SUMS"):
        data.load("nmnist", root, T=4)


def test_missing_files_name_what_is_expected_and_where_from(tmp_path, private_cache):
    from snnc.compiler.source import SnncError

    for name in ("nmnist", "dvs_gesture", "cifar10_dvs", "shd", "ssc", "cifar10", "cifar100"):
        with pytest.raises(SnncError) as info:
            data.load(name, tmp_path, T=4)
        text = info.value.render()
        assert "data not found" in text and "they come from" in text, name


# ------------------------------------------------------------------ padding, masks, augmentation, workers
def test_variable_length_samples_are_padded_with_their_lengths(tmp_path, private_cache):
    formats.write_hsd(tmp_path / "shd", "shd", per_split=8)
    ds = data.load("shd", tmp_path / "shd", T=90)  # the dataset's own binning: 10 ms frames
    split = ds.train
    b = split.batch(torch.arange(8))
    lengths = np.minimum(np.diff(split.offsets), 90)
    assert b.lengths.tolist() == lengths.tolist() and b.x.shape[0] == lengths.max() and b.x.shape[2] == 700
    for n, L in enumerate(lengths):
        frames = torch.from_numpy(np.asarray(split.data[split.offsets[n]: split.offsets[n] + L])).float()
        assert torch.equal(b.x[:L, n], frames) and not b.x[L:, n].any()


@pytest.mark.parametrize("kind", ["mean", "max", "last"])
def test_readouts_over_the_valid_steps_only(kind):
    g = torch.Generator().manual_seed(0)
    y = torch.randn(9, 5, 3, generator=g)
    lengths = torch.tensor([9, 1, 4, 7, 2])
    got = support.READOUTS[kind](y, lengths)
    for n, L in enumerate(lengths.tolist()):
        assert torch.allclose(got[n], support.READOUTS[kind](y[:L, n:n + 1])[0])


def test_padding_changes_nothing_a_run_sees(private_cache):
    import snnc

    net = snnc.load(str(MODELS / "rsnn_smnist.snn")).network("RsnnSmnist", backend="torch")
    x = torch.rand(28, 3, 28)
    short = net.readout(net(x))
    padded = torch.cat([x, torch.zeros(11, 3, 28)])
    support.reset_net(net)
    assert torch.allclose(net.readout(net(padded), torch.tensor([28, 28, 28])), short)


def test_augmentation_is_drawn_per_sample_and_epoch(tmp_path, private_cache):
    formats.write_nmnist(tmp_path / "nm", per_class=3)
    split = data.load("nmnist", tmp_path / "nm", T=5).train
    augment = (step("flip"), step("shift", max=3))
    pair = split.batch(torch.tensor([3, 5]), augment=augment, seed=7, epoch=2).x
    alone = split.batch(torch.tensor([5]), augment=augment, seed=7, epoch=2).x
    assert torch.equal(pair[:, 1], alone[:, 0])  # a sample's augmentation does not depend on its batch
    later = split.batch(torch.tensor([5]), augment=augment, seed=7, epoch=3).x
    assert not torch.equal(later, alone)


def test_events_augmented_again_each_epoch_bin_in_the_workers_as_in_the_process(tmp_path, private_cache):
    formats.write_nmnist(tmp_path / "nm", per_class=3)
    augment = (step("drop_event", p=0.2), step("time_jitter", us=500))
    split = data.load("nmnist", tmp_path / "nm", T=5, augment=augment).train
    chunks = list(torch.arange(len(split)).split(4))
    here = [b for _, b in loader.batches(split, chunks, torch.device("cpu"), augment=augment, seed=1, epoch=0)]
    there = [b for _, b in loader.batches(split, chunks, torch.device("cpu"), augment=augment, seed=1, epoch=0,
                                          workers=2)]
    assert all(torch.equal(a.x, b.x) and torch.equal(a.y, b.y) for a, b in zip(here, there))
    plain = split.batch(chunks[0]).x
    assert plain.sum() > here[0].x.sum()  # a fifth of the events dropped


# ------------------------------------------------------------------ snnc train on every format
TINY = """import snnc.neurons
network Tiny {{
    input = {shape}
    T = 6
    readout = mean
    layers {{ flatten linear(16) LIF(tau = 2.0) linear({classes}) }}
    train {{ dataset = {dataset} {extra} batch_size = 4 }}
}}
"""
FORMATS = {  # dataset: (writer, input, classes, train block extras)
    "nmnist": (lambda d: formats.write_nmnist(d, per_class=2), "[2, 34, 34]", 10, ""),
    "dvs_gesture": (lambda d: formats.write_dvs_gesture(d, users=1), "[2, 16, 16]", 11,
                    "frames = time_bins  transform = [downsample(8)]  augment = [flip]"),
    "cifar10_dvs": (lambda d: formats.write_cifar10_dvs(d, per_class=10), "[2, 32, 32]", 10,
                    "frames = event_bins  transform = [downsample(4)]  augment = [shift(max = 2)]"),
    "shd": (lambda d: formats.write_hsd(d, "shd", per_split=16), "[140]", 20, "transform = [downsample(5)]"),
    "ssc": (lambda d: formats.write_hsd(d, "ssc", per_split=16, classes=35), "[700]", 35,
            "frames = time_window(ms = 50)  augment = [drop_event(p = 0.1)]"),
    "cifar10": (lambda d: formats.write_cifar(d, "cifar10", per_batch=8), "[3, 32, 32]", 10,
                "transform = [normalize]  augment = [crop(4), flip]"),
    "cifar100": (lambda d: formats.write_cifar(d, "cifar100", per_batch=24), "[3, 32, 32]", 100, ""),
}


def _metrics(out: Path) -> list[dict]:
    with open(out / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in ("seconds", "train_images_per_s")} for row in csv.DictReader(f)]


@pytest.mark.parametrize("dataset", list(FORMATS))
def test_snnc_train_runs_and_resumes_exactly_on_every_format(tmp_path, private_cache, dataset, capsys):
    write, shape, classes, extra = FORMATS[dataset]
    folder = tmp_path / "data"
    write(folder)
    model = tmp_path / "tiny.snn"
    model.write_text(TINY.format(shape=shape, classes=classes, dataset=dataset, extra=extra))
    assert cli.main(["check", str(model)]) == 0
    common = ["train", str(model), "--data-dir", str(folder), "--subset", "8", "--test-subset", "8", "--no-plots",
              "--quiet"]
    assert cli.main([*common, "--epochs", "2", "--out-dir", str(tmp_path / "straight")]) == 0
    assert cli.main([*common, "--epochs", "1", "--out-dir", str(tmp_path / "halves")]) == 0
    assert cli.main(["train", str(model), "--data-dir", str(folder), "--resume", str(tmp_path / "halves" / "last.pt"),
                     "--epochs", "2", "--no-plots", "--quiet"]) == 0
    assert _metrics(tmp_path / "straight") == _metrics(tmp_path / "halves")


MISMATCHES = [
    ("nmnist", "[2, 32, 32]", 10, "", "N-MNIST through the frames encoder gives [2, 34, 34] per step"),
    ("nmnist", "[2, 34, 34]", 11, "", "N-MNIST has 10 classes, but the network's output has 11"),
    ("nmnist", "[2, 34, 34]", 10, "frames = split_by_time(12)", "split_by_time(12) makes 12 frames, but the "
                                                                 "network runs T = 6 steps"),
    ("shd", "[700]", 20, "transform = [downsample(3)]", "downsample factor 3 does not divide"),
    ("cifar10", "[3, 32, 32]", 10, "augment = [drop_event]", "augmentation 'drop_event' works on events and "
                                                             "spikes, but CIFAR-10 gives images"),
    ("cifar10", "[3, 32, 32]", 10, "frames = time_bins", "CIFAR-10 holds images; 'frames' bins event"),
    ("dvs_gestures", "[2, 128, 128]", 11, "", "unknown dataset 'dvs_gestures'"),
]


@pytest.mark.parametrize("dataset, shape, classes, extra, message", MISMATCHES)
def test_check_refuses_a_dataset_the_network_cannot_take(tmp_path, capsys, dataset, shape, classes, extra, message):
    model = tmp_path / "m.snn"
    model.write_text(TINY.format(shape=shape, classes=classes, dataset=dataset, extra=extra))
    assert cli.main(["check", str(model)]) == 1
    err = capsys.readouterr().err
    assert message in err and "m.snn:" in err and "hint" in err and "Traceback" not in err


def test_check_encoder_of_a_sequence_dataset_is_located(tmp_path, capsys):
    model = tmp_path / "m.snn"
    model.write_text(TINY.format(shape="[2, 34, 34]", classes=10, dataset="nmnist", extra="").replace(
        "T = 6", "T = 6\n    encoder = poisson"))
    assert cli.main(["check", str(model)]) == 1
    err = capsys.readouterr().err
    assert "m.snn:5:5: error: the poisson encoder takes images, but N-MNIST gives sequences" in err
    assert "use encoder = frames" in err


SHIPPED = ["nmnist_plif", "dvs_gesture_plif", "cifar10_dvs_plif", "cifar10_resnet19"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_data_models_check(name, capsys):
    assert cli.main(["check", str(MODELS / f"{name}.snn")]) == 0
    assert "data: " in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("name, dataset, write", [
    ("nmnist_plif", "nmnist", lambda d: formats.write_nmnist(d, per_class=1)),
    ("dvs_gesture_plif", "dvs_gesture", lambda d: formats.write_dvs_gesture(d, users=1)),
    ("cifar10_dvs_plif", "cifar10_dvs", lambda d: formats.write_cifar10_dvs(d, per_class=10)),
    ("cifar10_resnet19", "cifar10", lambda d: formats.write_cifar(d, "cifar10", per_batch=2)),
])
def test_shipped_data_models_train_and_resume_on_files_in_the_published_layout(tmp_path, private_cache, name,
                                                                                dataset, write):
    write(tmp_path / "data")
    # --max-steps is the whole run's budget (a resumed run goes on counting): 2 steps, one an epoch
    common = ["train", str(MODELS / f"{name}.snn"), "--data-dir", str(tmp_path / "data"), "--max-steps", "2",
              "-b", "2", "--no-plots", "--quiet", "--val-split", "0.2", "--subset", "2"]
    assert cli.main([*common, "--epochs", "1", "--out-dir", str(tmp_path / "run")]) == 0
    assert cli.main([*common, "--epochs", "2", "--resume", str(tmp_path / "run" / "last.pt")]) == 0
    assert len(_metrics(tmp_path / "run")) == 2


# ------------------------------------------------------------------ a user's own data
class Blobs(torch.utils.data.Dataset):
    """Images whose brightness says the class."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 10, (n,), generator=g)
        self.x = (torch.rand(n, 1, 28, 28, generator=g) * 0.3 + self.y.view(-1, 1, 1, 1) / 10).clamp(0, 1)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def test_fit_trains_a_torch_dataset_with_the_runner_and_resumes_exactly(tmp_path, private_cache):
    import snnc

    model = str(MODELS / "fc2_mnist.snn")
    straight = snnc.fit(model, Blobs(240, 0), Blobs(60, 1), epochs=2, subset=96, out_dir=str(tmp_path / "a"),
                        quiet=True, plots=False)
    snnc.fit(model, Blobs(240, 0), Blobs(60, 1), epochs=1, subset=96, out_dir=str(tmp_path / "b"), quiet=True,
             plots=False)
    resumed = snnc.fit(model, Blobs(240, 0), Blobs(60, 1), epochs=2, resume=str(tmp_path / "b" / "last.pt"),
                       quiet=True, plots=False)
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b") and len(straight["metrics"]) == 2
    assert resumed["settings"]["dataset"] == "custom" and (tmp_path / "b" / "loss.png").exists() is False


def test_fit_takes_a_tonic_dataset_of_events(tmp_path, private_cache, monkeypatch):
    tonic = pytest.importorskip("tonic")
    import snnc
    from snnc.train.data.custom import step as data_step

    formats.write_nmnist(tmp_path / "NMNIST", per_class=3)
    monkeypatch.setattr(tonic.datasets.NMNIST, "_check_exists", lambda self: True)
    train = tonic.datasets.NMNIST(str(tmp_path), train=True)
    test = tonic.datasets.NMNIST(str(tmp_path), train=False)
    model = tmp_path / "m.snn"
    model.write_text(TINY.format(shape="[2, 34, 34]", classes=10, dataset="nmnist", extra="").replace(
        "T = 6", "T = 6\n    encoder = frames"))
    result = snnc.fit(str(model), train, test, kind="events", frames=data_step("event_bins"), max_steps=2,
                      out_dir=str(tmp_path / "run"), quiet=True, plots=False)
    assert len(result["metrics"]) == 1
    # the same frames as tonic's own ToFrame gives
    from snnc.train.data.custom import from_torch

    ours = from_torch(train, test, classes=10, kind="events", frames=data_step("event_bins", n=6), T=6)
    frames = tonic.transforms.ToFrame(sensor_size=train.sensor_size, n_event_bins=6)(train[4][0])
    assert torch.equal(ours.train.batch(torch.tensor([4])).x[:, 0], torch.from_numpy(frames).float())


def test_readme_names_every_dataset_of_the_table():
    from snnc.compiler.datasets import DATASETS

    readme = (ROOT / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in DATASETS)


def test_vote_exports_to_nir_as_a_linear_node_with_the_same_outputs(tmp_path, private_cache):
    import snnc
    from snnc.train import checkpoint as ckpt

    model = tmp_path / "v.snn"
    model.write_text("import snnc.neurons\nnetwork V {\n    input = [20]\n    T = 4\n"
                     "    layers { linear(30) LIF(tau = 2.0) vote(3) }\n}\n")
    assert cli.main(["export", str(model), "--nir", str(tmp_path / "v.nir"), "--untrained"]) == 0
    assert cli.main(["import", str(tmp_path / "v.nir"), "-o", str(tmp_path / "back.snn")]) == 0
    back = snnc.load(str(tmp_path / "back.snn")).network(backend="torch")
    ckpt.load_into(back, ckpt.load(tmp_path / "back.pt"), "model", "back.pt")
    torch.manual_seed(0)  # without --checkpoint, `snnc export` writes the weights the train block's seed makes
    net = snnc.load(str(model)).network(backend="torch")
    x = torch.rand(4, 5, 20, generator=torch.Generator().manual_seed(1)) * 2
    ours, theirs = net(x), back(x)
    assert ours.shape == theirs.shape == (4, 5, 10) and ours.abs().sum() > 0
    assert torch.allclose(ours, theirs, atol=1e-6)
