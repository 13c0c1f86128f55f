"""Generated Python for every model, compared as text with tests/golden/python/<model>/.

If a change to the generated code is intended, regenerate the golden files with
    SNNC_UPDATE_GOLDEN=1 python -m pytest tests/test_codegen.py
and review the diff.
"""
from __future__ import annotations

import pytest

from snnc.compiler import assemble, check, codegen

from conftest import MODELS, ROOT, TESTS, write_or_compare

GOLDEN = TESTS / "golden" / "python"
MODEL_FILES = sorted(MODELS.glob("*.snn"))


def _render(path):
    rel = path.relative_to(ROOT)  # relative names keep machine paths out of the artifacts
    module, sources = assemble.load_module(rel)
    return codegen.render(check.check_module(module, sources))


@pytest.fixture(scope="module")
def rendered():
    import os

    old = os.getcwd()
    os.chdir(ROOT)
    try:
        return {p.stem: _render(p) for p in MODEL_FILES}
    finally:
        os.chdir(old)


@pytest.mark.parametrize("model", [p.stem for p in MODEL_FILES])
def test_golden(model, rendered):
    files = rendered[model]
    assert set(files) == {"__init__.py", "neurons.py", "networks.py"}
    for name, text in files.items():
        write_or_compare(GOLDEN / model / name, text, f"generated {name} of models/{model}.snn")


@pytest.mark.parametrize("model", [p.stem for p in MODEL_FILES])
def test_generated_code_compiles(model, rendered):
    for name, text in rendered[model].items():
        compile(text, f"{model}/{name}", "exec")


def test_no_machine_paths_in_golden_files():
    for f in GOLDEN.rglob("*.py"):
        assert str(ROOT) not in f.read_text(), f


def test_render_is_deterministic(rendered):
    import os

    old = os.getcwd()
    os.chdir(ROOT)
    try:
        again = _render(MODELS / "neurons.snn")
    finally:
        os.chdir(old)
    assert again == rendered["neurons"]
