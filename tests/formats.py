"""Small datasets written in each dataset's exact published format, for the tests (none of the real datasets but
MNIST is on the test machines). Each writer takes a folder and writes a few samples the way the publisher's
files hold them; `events_for` makes plausible event streams (time-ordered, a moving blob of activity). MNIST's
IDX files are written by `conftest.write_mnist`."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

NMNIST_SAMPLE = Path(__file__).parent / "fixtures" / "nmnist_sample.bin"  # a real N-MNIST file (tonic's tests)


def events_for(rng: np.random.Generator, n: int, width: int, height: int, duration_us: int = 300_000):
    """n events (x, y, p, t in microseconds, sorted by t) around a drifting centre."""
    t = np.sort(rng.integers(0, duration_us, n))
    cx = width / 2 + width / 4 * np.sin(t / duration_us * 2 * np.pi)
    cy = height / 2 + height / 4 * np.cos(t / duration_us * 2 * np.pi)
    x = np.clip(np.round(cx + rng.normal(0, width / 8, n)), 0, width - 1).astype(np.int64)
    y = np.clip(np.round(cy + rng.normal(0, height / 8, n)), 0, height - 1).astype(np.int64)
    p = rng.integers(0, 2, n)
    return x, y, p, t


# ------------------------------------------------------------------ N-MNIST: 5 bytes an event
def nmnist_bytes(x, y, p, t, overflow_every: int = 0) -> bytes:
    """The publisher's encoding; with `overflow_every`, a timestamp-overflow event (y = 240) is written after
    every so many events and the later timestamps are stored 2^13 smaller for each, as the format allows."""
    out, shift = bytearray(), 0
    for i in range(len(t)):
        if overflow_every and i and i % overflow_every == 0 and t[i] - (shift + 8192) >= 0:
            out += bytes([0, 240, 0, 0, 0])
            shift += 8192
        stored = int(t[i]) - shift
        assert 0 <= stored < 2**23
        out += bytes([int(x[i]), int(y[i]), (int(p[i]) << 7) | (stored >> 16), (stored >> 8) & 0xFF, stored & 0xFF])
    return bytes(out)


def write_nmnist(root: Path, per_class: int = 2, seed: int = 0, classes: int = 10) -> Path:
    """`root/Train/<d>/NNNNN.bin`, `root/Test/<d>/...` (the publisher's zips, extracted)."""
    rng = np.random.default_rng(seed)
    for split in ("Train", "Test"):
        for digit in range(classes):
            folder = root / split / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                x, y, p, t = events_for(rng, int(rng.integers(200, 600)), 34, 34)
                (folder / f"{k:05d}.bin").write_bytes(nmnist_bytes(x, y, p, t, overflow_every=97))
    return root


# ------------------------------------------------------------------ DVS Gesture, tonic's per-sample release
def write_dvs_gesture(root: Path, users: int = 2, seed: int = 0, dtype=np.int64, classes: int = 11) -> Path:
    """`root/ibmGestureTrain/user<NN>_<lighting>/<label>.npy` of events [n, 4] = x, y, p, t (milliseconds)."""
    rng = np.random.default_rng(seed)
    for split, first in (("ibmGestureTrain", 1), ("ibmGestureTest", 24)):
        for u in range(users):
            folder = root / split / f"user{first + u:02d}_{('fluorescent', 'led', 'natural')[u % 3]}"
            folder.mkdir(parents=True, exist_ok=True)
            for label in range(classes):
                x, y, p, t = events_for(rng, int(rng.integers(300, 900)), 128, 128, duration_us=2_000_000)
                data = np.stack([x, y, p, t // 1000], axis=1).astype(dtype)
                np.save(folder / f"{label}.npy", data)
    return root


# ------------------------------------------------------------------ CIFAR10-DVS, the AEDAT 2.0 release
CIFAR10_DVS_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
AEDAT_HEADER = (b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"
                b"# Data format is int32 address, int32 timestamp (8 bytes total), repeated for each event\r\n"
                b"# Timestamps tick is 1 us\r\n# created Thu Dec 03 11:05:00 CST 2015\r\n")


def aedat2_bytes(x_address, y_address, p, t) -> bytes:
    address = (np.asarray(y_address, np.uint32) << 8) | (np.asarray(x_address, np.uint32) << 1) | np.asarray(p, np.uint32)
    words = np.empty(2 * len(t), dtype=">u4")
    words[0::2], words[1::2] = address, np.asarray(t, np.uint32)
    return AEDAT_HEADER + words.tobytes()


def write_cifar10_dvs(root: Path, per_class: int = 4, seed: int = 0) -> Path:
    """`root/<class>/cifar10_<class>_<n>.aedat`."""
    rng = np.random.default_rng(seed)
    for name in CIFAR10_DVS_CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            x, y, p, t = events_for(rng, int(rng.integers(300, 900)), 128, 128, duration_us=1_000_000)
            (root / name / f"cifar10_{name}_{k}.aedat").write_bytes(aedat2_bytes(x, y, p, t))
    return root


# ------------------------------------------------------------------ SHD / SSC, HDF5
def write_hsd(root: Path, name: str = "shd", per_split: int = 12, seed: int = 0, classes: int = 20,
              time_dtype=np.float16) -> Path:
    """`root/<name>_<split>.h5` with spikes/times (seconds), spikes/units, labels, extra/speaker, extra/keys."""
    import h5py

    rng = np.random.default_rng(seed)
    splits = ("train", "valid", "test") if name == "ssc" else ("train", "test")
    root.mkdir(parents=True, exist_ok=True)
    for split in splits:
        with h5py.File(root / f"{name}_{split}.h5", "w") as f:
            times = f.create_dataset("spikes/times", (per_split,), dtype=h5py.vlen_dtype(np.dtype(time_dtype)))
            units = f.create_dataset("spikes/units", (per_split,), dtype=h5py.vlen_dtype(np.dtype(np.uint16)))
            labels = rng.integers(0, classes, per_split)
            for i in range(per_split):
                n = int(rng.integers(100, 400))
                t = np.sort(rng.uniform(0.0, rng.uniform(0.5, 1.2), n))
                times[i] = t.astype(time_dtype)
                units[i] = rng.integers(0, 700, n).astype(np.uint16)
            f.create_dataset("labels", data=labels.astype(np.uint16))
            f.create_dataset("extra/speaker", data=rng.integers(0, 12, per_split).astype(np.uint16))
            f.create_dataset("extra/keys", data=np.array([f"word-{k}".encode() for k in range(classes)]))
    return root


# ------------------------------------------------------------------ CIFAR-10/100, the python version
def write_cifar(root: Path, name: str = "cifar10", per_batch: int = 6, seed: int = 0) -> Path:
    """`root/cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta` (or cifar-100-python/train, test)."""
    rng = np.random.default_rng(seed)
    folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    folder.mkdir(parents=True, exist_ok=True)
    classes = 10 if name == "cifar10" else 100
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"] if name == "cifar10" else ["train", "test"]
    for batch in names:
        data = rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8)
        labels = [int(v) for v in rng.integers(0, classes, per_batch)]
        entry = {"batch_label": f"{batch} of 1", "data": data, "filenames": [f"img_{i}.png" for i in range(per_batch)]}
        if name == "cifar10":
            entry["labels"] = labels
        else:
            entry["fine_labels"], entry["coarse_labels"] = labels, [v // 5 for v in labels]
        with open(folder / batch, "wb") as f:
            pickle.dump(entry, f, protocol=2)
    meta = {"label_names": [f"class{k}" for k in range(classes)]} if name == "cifar10" else {
        "fine_label_names": [f"class{k}" for k in range(classes)]}
    with open(folder / ("batches.meta" if name == "cifar10" else "meta"), "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return root
