"""Every diagnostic snnc reports, as the user sees it: one invalid .snn per check, its full message in a .err file.

Regenerate the .err files with SNNC_UPDATE_GOLDEN=1 (and read the diff: each message should be clear).
"""
from __future__ import annotations

import pytest

from snnc.compiler import assemble, check
from snnc import cli
from snnc.compiler.source import SnncError

from conftest import ROOT, TESTS, write_or_compare

ERRORS = TESTS / "errors"
CASES = sorted(p.stem for p in ERRORS.glob("*.snn"))


def test_every_case_is_present():
    expected = {
        "syntax_missing_expr", "unexpected_char", "unclosed_brace", "unknown_name", "unknown_function", "wrong_arity",
        "assign_param", "assign_undefined_state", "duplicate_param", "duplicate_neuron", "no_charge", "no_state_v",
        "on_spike_v", "reserved_x", "reserved_underscore", "reserved_c_keyword", "reserved_python_keyword",
        "require_violated", "unknown_surrogate", "unknown_surrogate_arg", "where_not_condition",
        "arithmetic_on_condition", "unknown_layer", "linear_without_flatten", "conv2d_flat_input",
        "unknown_network_setting", "missing_T", "unknown_neuron_param", "import_missing", "import_cycle",
        "unknown_train_setting", "algebraic_loop", "merge_shape_mismatch", "unknown_node", "unused_node",
        "block_wrong_args", "block_recursion", "negative_delay", "ode_undeclared_state", "ode_twice",
        "ode_exact_nonlinear", "ode_dt_nonpositive", "ode_dt_layer",
    }
    assert expected <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_error_message(case, in_repo_root, capsys):
    rel = f"tests/errors/{case}.snn"
    code = cli.main(["check", rel])
    out = capsys.readouterr()
    assert code == 1, out.out
    assert "Traceback" not in out.err
    assert out.err.strip(), "an error must be reported on stderr"
    write_or_compare(ERRORS / f"{case}.err", out.err, f"the message for {rel}")


@pytest.mark.parametrize("case", CASES)
def test_library_raises_snnc_error(case, in_repo_root):
    with pytest.raises(SnncError) as info:
        module, sources = assemble.load_module(f"tests/errors/{case}.snn")
        check.check_module(module, sources)
    for d in info.value.diagnostics:
        assert d.message
        if d.span is not None:
            assert d.span.line >= 1 and d.span.col >= 1


def test_messages_name_relative_files():
    for err in ERRORS.glob("*.err"):
        assert str(ROOT) not in err.read_text()


def test_did_you_mean_cases_suggest():
    for case in ("unknown_name", "unknown_function", "unknown_surrogate", "unknown_layer", "unknown_network_setting",
                 "unknown_neuron_param", "assign_undefined_state"):
        assert "did you mean" in (ERRORS / f"{case}.err").read_text(), case


def test_shape_mismatch_shows_inferred_shape():
    assert "[1, 28, 28]" in (ERRORS / "linear_without_flatten.err").read_text()
    assert "[784]" in (ERRORS / "conv2d_flat_input.err").read_text()


def test_all_diagnostics_of_a_pass_are_reported(tmp_path):
    f = tmp_path / "many.snn"
    f.write_text("neuron A {\n    state v = 0.0\n    charge v = v + foo + bar\n}\n")
    with pytest.raises(SnncError) as info:
        module, sources = assemble.load_module(f)
        check.check_module(module, sources)
    messages = [d.message for d in info.value.diagnostics]
    assert any("'foo'" in m for m in messages) and any("'bar'" in m for m in messages)


def test_valid_models_check(in_repo_root):
    for path in sorted((ROOT / "models").glob("*.snn")):
        module, sources = assemble.load_module(path.relative_to(ROOT))
        check.check_module(module, sources)
