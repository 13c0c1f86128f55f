"""Random text and mutated models: the front end raises SnncError or nothing, and the CLI never shows a traceback."""
from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings, strategies as st

from snnc.compiler import assemble, check
from snnc import cli
from snnc.compiler.source import SnncError

from conftest import MODELS

SOURCES = {p.name: p.read_text() for p in sorted(MODELS.glob("*.snn"))}
TOKENS = sorted({t for text in SOURCES.values() for t in re.findall(r"\w+|[^\w\s]", text)}
                | {"{", "}", "(", ")", "[", "]", "=", "+=", "^", "none", "?", ":", '"', "#", "\n", "1e999", "-"})


def front_end(path, text):
    try:
        module, sources = assemble.load_module(path, text=text)
        check.check_module(module, sources)
    except SnncError as exc:
        assert exc.render()


@st.composite
def mutated(draw):
    name = draw(st.sampled_from(sorted(SOURCES)))
    text = SOURCES[name]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "duplicate", "token", "swap"]))
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(1, 12)))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + draw(st.text(min_size=1, max_size=3)) + text[i:]
        elif kind == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif kind == "token":
            text = text[:i] + " " + draw(st.sampled_from(TOKENS)) + " " + text[i:]
        else:
            text = text[:i] + text[j:j + (j - i)] + text[i:j] + text[j + (j - i):]
    return name, text


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated())
def test_mutated_models(case):
    name, text = case
    front_end(MODELS / name, text)


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text):
    front_end(MODELS / "fuzz.snn", text)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join))
def test_random_token_soup(text):
    front_end(MODELS / "fuzz.snn", text)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_cli_never_prints_a_traceback(case, tmp_path_factory, capsys):
    name, text = case
    d = tmp_path_factory.mktemp("fuzz")
    for other, src in SOURCES.items():  # imports resolve next to the file
        (d / other).write_text(src)
    (d / name).write_text(text)
    code = cli.main(["check", str(d / name)])
    err = capsys.readouterr().err
    assert code in (0, 1)
    assert "Traceback" not in err
    if code == 1:
        assert "error" in err
