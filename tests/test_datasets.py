"""The dataset readers and the binning, against the field's own implementations: tonic 1.7 (its readers and
ToFrame, Denoise, Downsample), SpikingJelly 2.0 (its CIFAR10-DVS reader, frames_number/split_by, duration, and
its SHD variants) and torchvision (CIFAR). Events and frames must be equal, element for element, on files
written in each dataset's published format (and on a real N-MNIST file from tonic's tests)."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

import formats
from snnc.compiler import ir
from snnc.compiler.datasets import DATASETS
from snnc.train.data import cifar, cifar10_dvs, dvs_gesture, hsd, nmnist
from snnc.train.data import events as ev

tonic = pytest.importorskip("tonic")
TT = pytest.importorskip("tonic.transforms")


def spikingjelly_datasets():
    """spikingjelly.datasets, whose package imports torchaudio (for its speech-commands set) at import: a stub
    stands in where torchaudio is not installed (it would pull its own torch); nothing here uses it. It imports
    torchvision too, which CI's second torch has not (these readers are torch-independent: the first run covers
    them)."""
    pytest.importorskip("torchvision", reason="spikingjelly.datasets imports torchvision")
    if "torchaudio" not in sys.modules:
        try:
            import torchaudio  # noqa: F401
        except ImportError:
            sys.modules["torchaudio"] = types.ModuleType("torchaudio")
    import spikingjelly.datasets as sjd
    from spikingjelly.datasets import shd as sj_shd
    from spikingjelly.datasets import utils as sj_utils

    return sjd, sj_utils, sj_shd


def step(name, **args):
    return ir.Step(name=name, args=tuple((k, float(v)) for k, v in args.items()))


def camera_streams():
    """The real N-MNIST sample, and generated streams of several sizes (with a few events only, too)."""
    row = DATASETS["nmnist"]
    yield "real", nmnist.events(formats.NMNIST_SAMPLE, row), (2, 34, 34)
    for seed, n, size in ((1, 2000, 34), (2, 37, 34), (3, 5000, 128)):
        x, y, p, t = formats.events_for(np.random.default_rng(seed), n, size, size)
        yield f"gen{seed}", ev.Events(t=t, x=x, p=p, y=y), (2, size, size)


def tonic_events(e: ev.Events) -> np.ndarray:
    out = np.zeros(len(e), dtype=[("x", int), ("y", int), ("t", int), ("p", int)])
    out["x"], out["y"], out["t"], out["p"] = e.x, e.y, e.t, e.p
    return out


# ------------------------------------------------------------------ readers
def test_nmnist_reader_equals_tonic_on_a_real_file_and_on_overflowing_timestamps(tmp_path):
    from tonic.io import read_mnist_file

    row = DATASETS["nmnist"]
    written = tmp_path / "overflow.bin"
    x, y, p, t = formats.events_for(np.random.default_rng(0), 3000, 34, 34, duration_us=8_600_000)
    written.write_bytes(formats.nmnist_bytes(x, y, p, t, overflow_every=50))
    for path in (formats.NMNIST_SAMPLE, written):
        theirs = read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
        ours = nmnist.events(path, row)
        for k in "xytp":
            assert np.array_equal(theirs[k], getattr(ours, k)), (path.name, k)
    assert np.array_equal(nmnist.events(written, row).t, t)  # the overflow rule restores the written times


def test_nmnist_listing_is_tonic_s_order_and_labels(tmp_path):
    root = formats.write_nmnist(tmp_path / "NMNIST", per_class=2)
    row = DATASETS["nmnist"]
    folder = nmnist.find(tmp_path, row)
    assert folder == tmp_path / "NMNIST"
    items, labels = nmnist.listing(folder, row, "train")
    assert len(items) == 20 and labels.tolist() == [d for d in range(10) for _ in range(2)]
    assert items == sorted(items) and all(p.parent.name == str(l) for p, l in zip(items, labels))
    assert root  # written in the publisher's layout


def test_dvs_gesture_reader_equals_tonic(tmp_path):
    home = tmp_path / "DVSGesture"
    formats.write_dvs_gesture(home, users=10)  # tonic wants >= 100 samples and the archive beside them
    for name in ("ibmGestureTrain.tar.gz", "ibmGestureTest.tar.gz"):
        (home / name).write_bytes(b"")
    row = DATASETS["dvs_gesture"]
    folder = dvs_gesture.find(tmp_path, row)
    for train, split in ((True, "train"), (False, "test")):
        theirs = tonic.datasets.DVSGesture(str(tmp_path), train=train)
        by_path = {Path(p): i for i, p in enumerate(theirs.data)}
        items, labels = dvs_gesture.listing(folder, row, split)
        assert sorted(by_path) == sorted(items)
        for path, label in zip(items[::7], labels[::7]):
            events, target = theirs[by_path[path]]
            ours = dvs_gesture.events(path, row)
            assert target == label
            for k in "xytp":
                assert np.array_equal(events[k], getattr(ours, k)), k


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_dvs_gesture_reads_either_array_type(tmp_path, dtype):
    formats.write_dvs_gesture(tmp_path, users=1, dtype=dtype)
    row = DATASETS["dvs_gesture"]
    items, _ = dvs_gesture.listing(tmp_path, row, "train")
    e = dvs_gesture.events(items[0], row)
    assert e.t.dtype == np.int64 and len(e) > 0 and np.all(np.diff(e.t) >= 0)


@pytest.mark.parametrize("name", ["shd", "ssc"])
def test_hsd_reader_equals_tonic(tmp_path, name):
    formats.write_hsd(tmp_path / name.upper(), name, per_split=6, time_dtype=np.float32,
                      classes=DATASETS[name].classes)
    row = DATASETS[name]
    folder = hsd.find(tmp_path, row)
    for split in row.splits:
        (folder / f"{name}_{split}.h5.zip").write_bytes(b"")  # tonic checks that its download is there
        kwargs = {"split": split} if name == "ssc" else {"train": split == "train"}
        theirs = (tonic.datasets.SSC if name == "ssc" else tonic.datasets.SHD)(str(tmp_path), **kwargs)
        items, labels = hsd.listing(folder, row, split)
        assert len(theirs) == len(items)
        for i, item in enumerate(items):
            events, target = theirs[i]
            ours = hsd.events(item, row)
            assert target == labels[i]
            assert np.array_equal(events["x"], ours.x) and np.array_equal(events["t"], ev._time_us(ours))


def test_cifar10_dvs_reader_equals_spikingjelly(tmp_path):
    spikingjelly_datasets()
    from spikingjelly.datasets.cifar10_dvs import _load_origin_data

    formats.write_cifar10_dvs(tmp_path, per_class=2)
    row = DATASETS["cifar10_dvs"]
    for path in sorted(tmp_path.glob("*/*.aedat"))[::3]:
        theirs = _load_origin_data(path)
        ours = cifar10_dvs.events(path, row)
        for k in "xytp":
            assert np.array_equal(np.asarray(theirs[k]).astype(np.int64), getattr(ours, k).astype(np.int64)), k


def test_cifar10_dvs_split_is_spikingjelly_s(tmp_path):
    formats.write_cifar10_dvs(tmp_path, per_class=12)
    row = DATASETS["cifar10_dvs"]
    train, _ = cifar10_dvs.listing(tmp_path, row, "train")
    test, labels = cifar10_dvs.listing(tmp_path, row, "test")
    assert len(train) == 10 * 11 and len(test) == 10  # ceil(0.9 * 12) = 11 train per class
    # file name order, as SpikingJelly's DatasetFolder sorts: _10 and _11 come before _2
    assert [p.name for p in train[:4]] == ["cifar10_airplane_0.aedat", "cifar10_airplane_1.aedat",
                                           "cifar10_airplane_10.aedat", "cifar10_airplane_11.aedat"]
    assert labels.tolist() == list(range(10))


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reader_equals_torchvision(tmp_path, name, monkeypatch):
    torchvision = pytest.importorskip("torchvision")
    formats.write_cifar(tmp_path, name)
    row = DATASETS[name]
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    monkeypatch.setattr(cls, "_check_integrity", lambda self: True)  # its checksums are of the real files
    monkeypatch.setattr(cls, "_load_meta", lambda self: None)
    arrays = cifar.read(cifar.find(tmp_path, row), row)
    for train, split in ((True, "train"), (False, "test")):
        theirs = cls(str(tmp_path), train=train, download=False)
        images, labels = arrays[split]
        assert np.array_equal(theirs.data, images.transpose(0, 2, 3, 1)) and theirs.targets == labels.tolist()


def test_a_cifar_batch_that_asks_for_code_is_refused(tmp_path):
    import pickle

    from snnc.compiler.source import SnncError

    formats.write_cifar(tmp_path, "cifar10")

    class Planted:
        def __reduce__(self):
            return (print, ("planted code ran",))

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as f:
        pickle.dump({"data": Planted(), "labels": [0]}, f, protocol=2)
    with pytest.raises(SnncError, match="data_batch_3 is corrupt: it is not a CIFAR batch.*it asks for __builtin__.print"):
        cifar.read(cifar.find(tmp_path, DATASETS["cifar10"]), DATASETS["cifar10"])


# ------------------------------------------------------------------ binnings: tonic's ToFrame
TONIC_BINNINGS = [("time_bins", "n_time_bins", "n", [1, 7, 10]), ("event_bins", "n_event_bins", "n", [1, 7, 10]),
                  ("time_window", "time_window", "us", [999, 25000, 10**7]),
                  ("event_count", "event_count", "events", [1, 300, 10**6])]


@pytest.mark.parametrize("name, theirs, arg, values", TONIC_BINNINGS)
def test_camera_binnings_equal_tonic_to_frame(name, theirs, arg, values):
    for label, e, shape in camera_streams():
        for value in values:
            expected = TT.ToFrame(sensor_size=(shape[2], shape[1], 2), **{theirs: value})(tonic_events(e))
            got = ev.to_frames(e, shape, step(name, **{arg: value}))
            assert got.shape == expected.shape and np.array_equal(got, expected), (label, value)


@pytest.mark.parametrize("name, theirs, arg, values", TONIC_BINNINGS)
def test_spike_binnings_equal_tonic_to_frame(tmp_path, name, theirs, arg, values):
    formats.write_hsd(tmp_path, "shd", per_split=4, time_dtype=np.float32)
    row = DATASETS["shd"]
    (tmp_path / "SHD").mkdir()
    for split in row.splits:
        (tmp_path / f"shd_{split}.h5").rename(tmp_path / "SHD" / f"shd_{split}.h5")
        (tmp_path / "SHD" / f"shd_{split}.h5.zip").write_bytes(b"")
    dataset = tonic.datasets.SHD(str(tmp_path), train=True)
    items, _ = hsd.listing(tmp_path / "SHD", row, "train")
    for i, item in enumerate(items):
        for value in values:
            value = value if arg != "us" else value * 10  # spikes last about a second
            expected = TT.ToFrame(sensor_size=(700, 1, 1), **{theirs: value})(dataset[i][0])
            got = ev.to_frames(hsd.events(item, row), (700,), step(name, **{arg: value}))
            assert np.array_equal(got, expected[:, 0]), (i, value)


# ------------------------------------------------------------------ binnings: SpikingJelly's
@pytest.mark.parametrize("split_by", ["number", "time"])
def test_camera_frames_number_equals_spikingjelly(split_by):
    _, sj_utils, _ = spikingjelly_datasets()
    for label, e, shape in camera_streams():
        for n in (1, 4, 10):
            theirs = sj_utils.integrate_events_by_fixed_frames_number(
                {"t": e.t, "x": e.x, "y": e.y, "p": e.p}, split_by, n, shape[1], shape[2])
            got = ev.to_frames(e, shape, step(f"split_by_{split_by}", n=n))
            assert np.array_equal(got, theirs), (label, n)


def test_camera_duration_equals_spikingjelly():
    _, sj_utils, _ = spikingjelly_datasets()
    for label, e, shape in camera_streams():
        for us in (1000, 20000, 299_000):
            theirs = sj_utils.integrate_events_by_fixed_duration({"t": e.t, "x": e.x, "y": e.y, "p": e.p}, us,
                                                                 shape[1], shape[2])
            got = ev.to_frames(e, shape, step("duration", us=us))
            assert got.shape == theirs.shape and np.array_equal(got, theirs), (label, us)


@pytest.mark.parametrize("time_dtype", [np.float16, np.float32])
def test_spike_frames_equal_spikingjelly_s_shd_variants(tmp_path, time_dtype):
    _, _, sj_shd = spikingjelly_datasets()
    formats.write_hsd(tmp_path, "shd", per_split=5, time_dtype=time_dtype, seed=3)
    row = DATASETS["shd"]
    items, _ = hsd.listing(tmp_path, row, "train")
    for item in items:
        e = hsd.events(item, row)
        raw = {"t": e.t, "x": e.x}
        for n in (5, 10):
            for split_by in ("number", "time"):
                theirs = sj_shd._integrate_events_by_fixed_frames_number(raw, split_by, n, 700)
                assert np.array_equal(ev.to_frames(e, (700,), step(f"split_by_{split_by}", n=n)), theirs)
        for ms in (10, 25):
            theirs = sj_shd._integrate_events_by_fixed_duration(raw, ms, 700)
            got = ev.to_frames(e, (700,), step("duration", ms=ms))
            assert got.shape == theirs.shape and np.array_equal(got, theirs), ms


def test_where_spikingjelly_fails_the_frames_are_empty_not_an_error():
    t = np.array([0, 0, 0, 10, 10]), np.array([1, 2, 3, 4, 5])  # all at two times: empty frames between
    e = ev.Events(t=t[0], x=t[1], y=t[1], p=np.zeros(5, int))
    frames = ev.to_frames(e, (2, 8, 8), step("split_by_time", n=4))
    assert frames.shape == (4, 2, 8, 8) and frames.sum() == 5 and frames[1].sum() == frames[2].sum() == 0
    same = ev.Events(t=np.zeros(3, int), x=np.arange(3), y=np.arange(3), p=np.zeros(3, int))
    assert ev.to_frames(same, (2, 8, 8), step("duration", us=10)).sum() == 3
    none = ev.Events(t=np.zeros(0, int), x=np.zeros(0, int), y=np.zeros(0, int), p=np.zeros(0, int))
    assert ev.to_frames(none, (2, 8, 8), step("time_bins", n=3)).shape == (3, 2, 8, 8)


# ------------------------------------------------------------------ transforms and augmentations
@pytest.mark.parametrize("us", [1, 1000, 5000, 100_000])
def test_denoise_equals_tonic(us):
    from tonic.functional.denoise import denoise_numpy

    for label, e, shape in camera_streams():
        theirs = denoise_numpy(tonic_events(e), us)
        ours = ev.denoise(e, us)
        for k in "xytp":
            assert np.array_equal(theirs[k], getattr(ours, k)), (label, us, k)


@pytest.mark.parametrize("factor", [2, 17])
def test_downsample_equals_tonic(factor):
    for label, e, shape in camera_streams():
        if shape[1] % factor:
            continue
        sensor = (shape[2], shape[1], 2)
        small = TT.Downsample(spatial_factor=1 / factor)(tonic_events(e))
        theirs = TT.ToFrame(sensor_size=(shape[2] // factor, shape[1] // factor, 2), n_time_bins=5)(small)
        ours = ev.to_frames(ev.downsample(e, factor), (2, shape[1] // factor, shape[2] // factor),
                            step("time_bins", n=5))
        assert np.array_equal(theirs, ours), (label, sensor)


def test_frame_flip_and_shift_equal_the_events_flipped_and_shifted():
    """Flipping or shifting the frames moves each event as flipping or shifting the events would, with the
    frame boundaries of the unmoved sample (a shift drops the events it pushes off the sensor)."""
    binning = step("split_by_number", n=5)
    for label, e, shape in camera_streams():
        starts, ends = ev.slices(e, binning)
        frame_of = np.repeat(np.arange(5), ends - starts)
        for name, args in (("flip", {"p": 1.0}), ("shift", {"max": 3})):
            augment = (step(name, **args),)
            for seed in range(4):
                framed = ev.augment_frames(ev.to_frames(e, shape, binning), augment, np.random.default_rng(seed))
                tagged = ev.Events(t=frame_of, x=e.x, y=e.y, p=e.p)  # each event carries its frame as its time
                moved = ev.augment_events(tagged, augment, shape, np.random.default_rng(seed))
                expected = np.zeros((5, *shape), dtype=np.int64)
                np.add.at(expected, (moved.t, (moved.p != 0).astype(int), moved.y, moved.x), 1)
                assert np.array_equal(framed, expected), (label, name, seed)


def test_drop_event_drops_tonic_s_count():
    e = next(camera_streams())[1]
    for p in (0.0, 0.1, 0.5):
        kept = ev.augment_events(e, (step("drop_event", p=p),), (2, 34, 34), np.random.default_rng(0))
        assert len(kept) == len(e) - int(p * len(e) + 0.5)


def test_time_jitter_keeps_the_events_in_time_order():
    e = next(camera_streams())[1]
    jittered = ev.augment_events(e, (step("time_jitter", us=2000),), (2, 34, 34), np.random.default_rng(1))
    assert len(jittered) == len(e) and np.all(np.diff(jittered.t) >= 0) and not np.array_equal(jittered.t, e.t)
