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
    """Every file is valid Python, and the package's index names exactly the classes its modules define."""
    import ast

    files = rendered[model]
    for name, text in files.items():
        compile(text, f"{model}/{name}", "exec")
    index = {}
    for node in ast.parse(files["__init__.py"]).body:
        if isinstance(node, ast.Assign) and node.targets[0].id in ("NEURONS", "NETWORKS"):
            index[node.targets[0].id] = ast.literal_eval(node.value)
    for module, key in (("neurons.py", "NEURONS"), ("networks.py", "NETWORKS")):
        classes = [n.name for n in ast.parse(files[module]).body if isinstance(n, ast.ClassDef)]
        assert tuple(classes) == index[key], f"{model}: {module} defines {classes}, __init__.py says {index[key]}"


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


def test_a_package_emits_its_own_neurons_and_those_its_networks_use(tmp_path):
    """Not the whole library a file imports: its own neurons (used or not) and the imported ones a layer uses,
    in the order the module sees them; a file that only imports (a library) emits everything."""
    path = tmp_path / "m.snn"
    path.write_text("import snnc.neurons\n"
                    "neuron Mine {\n    state v = v_reset\n    charge v = 0.5 * v + x\n}\n"
                    "network Net {\n    input = [4]\n    T = 2\n    layers {\n        linear(3)\n        PLIF\n"
                    "        linear(2)\n        LI\n    }\n}\n")
    module, sources = assemble.load_module(path)
    init = codegen.render(check.check_module(module, sources))["__init__.py"]
    assert "NEURONS = ('PLIF', 'LI', 'Mine', )" in init
    module, sources = assemble.load_module(MODELS / "neurons.snn")
    library = codegen.render(check.check_module(module, sources))["__init__.py"]
    assert "NEURONS = ('IF', 'LIF', 'PLIF', 'QIF', 'EIF', 'Izhikevich', 'SquareIF', 'CUBALIF', 'AdaptiveLIF', 'LI', )" \
        in library
