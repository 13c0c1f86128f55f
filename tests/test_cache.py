"""snnc's on-disk cache beyond generated packages: derived plans, decoded datasets, compile time accounting."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter

from snnc.compiler.derive import plan
from snnc.compiler.driver import check_file
from snnc.compiler.neuron import Plan
from snnc.runtime import cache, plans

from conftest import IDX_MAGIC, MODELS, idx_bytes, needs_cxx, write_mnist


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("SNNC_CACHE_DIR", str(folder))
    return folder


def _json(p: Plan) -> bytes:
    return TypeAdapter(Plan).dump_json(p)


def _neurons():
    return check_file(MODELS / "rsnn_smnist.snn").module.neurons


@pytest.mark.parametrize("neuron", _neurons(), ids=lambda n: n.name)
def test_a_plan_survives_its_json_form(neuron):
    p = plan(neuron)
    adapter = TypeAdapter(Plan)
    again = adapter.validate_json(adapter.dump_json(p))
    assert adapter.dump_json(again) == adapter.dump_json(p)  # everything but source positions
    assert again.config == p.config and len(again.backward) == len(p.backward) > 0


def test_plans_are_read_from_the_cache_and_rederived_when_unreadable(private_cache, monkeypatch):
    neuron = next(n for n in _neurons() if n.name == "AdaptiveLIF")
    spec = plans.spec_for(plan(neuron))
    plans._PLANS.clear()
    first = plans.plan_for(spec)
    files = list((private_cache / "plans").glob("*.json"))
    assert len(files) == 1
    plans._PLANS.clear()
    monkeypatch.setattr("snnc.compiler.derive.plan", lambda *a: pytest.fail("derived again, not read"))
    assert _json(plans.plan_for(spec)) == _json(first)
    monkeypatch.undo()
    monkeypatch.setenv("SNNC_CACHE_DIR", str(private_cache))
    files[0].write_text("{ not a plan")
    plans._PLANS.clear()
    assert _json(plans.plan_for(spec)) == _json(first)  # derived again
    assert files[0].read_bytes() == _json(first)  # and rewritten
    plans._PLANS.clear()


def test_decoded_datasets_are_cached_by_file_identity(tmp_path, private_cache):
    from snnc.train import data

    folder = tmp_path / "mnist"
    write_mnist(folder, 30, 10)
    data._images.cache_clear()
    fresh = data.load("mnist", folder)
    assert len(list((private_cache / "data").glob("*.npz"))) == 1
    data._images.cache_clear()
    cached = data.load("mnist", folder)
    for a, b in ((fresh.train, cached.train), (fresh.test, cached.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
        assert b.images.dtype == torch.uint8 and b.labels.dtype == torch.int64
    # a changed file is a different key: decoded (and checked) again
    (folder / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(10, 3), IDX_MAGIC["labels"]))
    data._images.cache_clear()
    assert data.load("mnist", folder).test.labels.tolist() == [3] * 10
    data._images.cache_clear()


@needs_cxx
def test_compile_time_is_counted_apart(private_cache):
    from snnc.runtime.cc import load_library

    before = cache.compile_seconds()
    load_library("extern \"C\" int snnc_probe(void) { return 7; }\n", "snnc_probe")
    compiled = cache.compile_seconds() - before
    assert compiled > 0
    load_library.cache_clear()
    lib = load_library("extern \"C\" int snnc_probe(void) { return 7; }\n", "snnc_probe")  # from the cache
    assert cache.compile_seconds() - before == compiled and lib.snnc_probe() == 7


def test_the_one_atomic_writer(tmp_path):
    """Files and folders, replaced or kept, with the permissions asked for, and nothing left beside them."""
    import stat

    from snnc.runtime.files import write_atomic

    target = tmp_path / "sub" / "a.txt"
    assert write_atomic(target, "one") and target.read_text() == "one"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert write_atomic(target, b"two", mode=0o644, durable=True) and target.read_bytes() == b"two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not write_atomic(target, "three", replace=False) and target.read_text() == "two"
    folder = tmp_path / "pkg"
    assert write_atomic(folder, {"__init__.py": "A = 1\n", "kernels/x.cpp": "// x\n"}, replace=False)
    assert not write_atomic(folder, {"__init__.py": "A = 2\n"}, replace=False)
    assert (folder / "__init__.py").read_text() == "A = 1\n"
    assert write_atomic(folder, {"__init__.py": "A = 3\n"}, mode=0o755)
    assert sorted(p.name for p in folder.rglob("*")) == ["__init__.py"] and stat.S_IMODE(folder.stat().st_mode) == 0o755
    calls = []
    write_atomic(tmp_path / "b.txt", "b", on_rename=calls.append)
    assert calls == ["before", "after"]
    def fail(when):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(tmp_path / "c.txt", "c", on_rename=fail)
    assert not list(tmp_path.rglob("*.tmp")) and not (tmp_path / "c.txt").exists()
