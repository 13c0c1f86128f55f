"""A .snn file cannot inject code: comments, names, numbers, import paths and file names stay inert."""
from __future__ import annotations

import io
import sys
import tokenize

import pytest

import snnc
from snnc.compiler import assemble, check, codegen
from snnc.compiler.source import SnncError

PAYLOAD = "__import__('os').system('touch MARKER')"
BREAKOUTS = ['"', "'", "\\", "*/", '"""', "'''", "\n", "#", "}}", "{%"]


def _neuron(extra_comment=""):
    return (f"# {extra_comment}\n"
            "neuron Safe {  # \"\"\" ''' */ " + PAYLOAD + "\n"
            "    param tau = 2.0  # \\\n"
            "    state v = v_reset\n"
            "    charge v = v + (x - v) / tau\n"
            "}\n")


def _render(path):
    module, sources = assemble.load_module(path)
    return codegen.render(check.check_module(module, sources))


def _code_names(text: str) -> set[str]:
    """Identifiers outside comments and string literals."""
    return {t.string for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type == tokenize.NAME}


def _assert_inert(files, marker):
    for name, text in files.items():
        compile(text, name, "exec")
        names = _code_names(text)
        assert not names & {"system", "__import__", "os", "touch", "MARKER"}, (name, names)
    assert not marker.exists()


@pytest.mark.parametrize("breakout", BREAKOUTS)
def test_file_names(tmp_path, monkeypatch, breakout):
    if breakout == "\n" and sys.platform == "win32":
        pytest.skip("no newlines in Windows file names")
    monkeypatch.chdir(tmp_path)
    name = f"m{breakout}{PAYLOAD}{breakout}.snn".replace("/", "_")
    path = tmp_path / name
    path.write_text(_neuron(breakout) + "network Net {\n input = [4]\n T = 2\n layers {\n  linear(2)\n  Safe\n }\n}\n")
    files = _render(path)
    _assert_inert(files, tmp_path / "MARKER")
    lib = snnc.load(path)
    lib.network()
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("breakout", BREAKOUTS)
def test_comments(tmp_path, monkeypatch, breakout):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "c.snn"
    path.write_text(_neuron(breakout + PAYLOAD + breakout))
    if breakout == "\n":  # a newline ends the comment: the payload is then a syntax error, never code
        with pytest.raises(SnncError, match="syntax error"):
            _render(path)
        return
    _assert_inert(_render(path), tmp_path / "MARKER")
    snnc.load(path).neurons["Safe"]()
    assert not (tmp_path / "MARKER").exists()


def test_import_path_with_quotes_and_backslashes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sub = tmp_path / "d'''\\ */"
    sub.mkdir()
    (sub / "lib.snn").write_text(_neuron())
    main = tmp_path / "main.snn"
    main.write_text('import "d\'\'\'\\ */lib.snn"\n')
    _assert_inert(_render(main), tmp_path / "MARKER")


@pytest.mark.parametrize("text", [
    'neuron A {\n state v = 0.0\n charge v = v + x\n require "os" \n}\n',
    "neuron A {\n state v = 0.0\n charge v = v + __import__(x)\n}\n",
    "neuron os.system {\n state v = 0.0\n charge v = v + x\n}\n",
    "neuron A {\n param tau = 1e999\n state v = 0.0\n charge v = v + x / tau\n}\n",
    "neuron A {\n state v = 0.0\n charge v = v + x\n surrogate atan(alpha = 1e999)\n}\n",
    "neuron eval {\n state v = 0.0\n charge v = v + x\n}\n",
    "neuron A {\n param exec = 1.0\n state v = 0.0\n charge v = v + x\n}\n",
])
def test_hostile_sources_are_rejected_or_inert(tmp_path, text):
    path = tmp_path / "h.snn"
    path.write_text(text)
    try:
        files = _render(path)
    except SnncError:
        return
    _assert_inert(files, tmp_path / "MARKER")
    for t in files.values():
        assert "inf" not in t.replace("info", "").replace("infer", ""), "an unrepresentable number reached the code"
