"""NIR interchange: neuron forms proved from the charge equation, export, import, round trips, peers.

* Neuron forms: every library neuron maps to the NIR form its equation is (or is refused, with the reason).
* Round trip snnc -> NIR -> snnc for every network in models/ that exports (and the test networks in
  tests/golden/nir/models): identical parameters, identical spikes and membrane potentials on random inputs.
* Golden text dumps of the exported graphs; a golden error for every model and case NIR cannot express.
* Peers (snnTorch, Norse, SpikingJelly's nir_exchange), both ways, step by step: see the peer section.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

nir = pytest.importorskip("nir")
torch = pytest.importorskip("torch")

import snnc  # noqa: E402
from snnc.compiler import ir  # noqa: E402
from snnc.compiler.driver import check_file  # noqa: E402
from snnc.compiler.neuron import layer_config  # noqa: E402
from snnc.compiler.source import SnncError  # noqa: E402
from snnc.interchange import nir_export, nir_import, nir_text  # noqa: E402
from snnc.interchange.nir_neurons import (TIES, Form, NotNIR, from_nir_threshold, inline_neurons,  # noqa: E402
                                          ir_values, library_neurons, nir_form, snnc_layer, to_nir_threshold)
from snnc.interchange.snn_text import label, neuron_text  # noqa: E402
from snnc.runtime.support import NeuronBase  # noqa: E402

from conftest import MODELS, ROOT, write_mnist, write_or_compare  # noqa: E402

GOLDEN = ROOT / "tests" / "golden" / "nir"
DT = 1e-4


def _networks(paths):
    out = []
    for path in paths:
        rel = path.relative_to(ROOT).as_posix()
        for net in check_file(rel).module.networks:
            out.append(pytest.param(rel, net.name, id=f"{path.stem}-{net.name}"))
    return out


MODEL_NETWORKS = _networks(sorted(MODELS.glob("*.snn")))


def _golden_of(param, folder: str, suffix: str) -> Path:
    path, network = param.values
    return GOLDEN / folder / f"{Path(path).stem}-{network}{suffix}"


# Which shipped networks NIR can express is recorded by their golden files: a dump, or the export's error.
EXPORTABLE_MODELS = [n for n in MODEL_NETWORKS if _golden_of(n, "dumps", ".txt").exists()]
REFUSED_MODELS = [n for n in MODEL_NETWORKS if _golden_of(n, "errors", ".err").exists()]
TEST_NETWORKS = _networks(sorted((GOLDEN / "models").glob("*.snn")))
PEER_NETWORKS = _networks(sorted((GOLDEN / "peers").glob("*.snn")))
ERROR_CASES = sorted(p.stem for p in (GOLDEN / "errors").glob("*.snn"))


# ------------------------------------------------------------------ helpers
_LIBS: dict = {}


def _lib(path):
    key = str(path)
    if key not in _LIBS:
        _LIBS[key] = snnc.load(path)
    return _LIBS[key]


def _weights(net, seed: int = 0) -> dict:
    """A state dict with deterministic, non-trivial values (what training would leave: not the init), and
    learnables moved off their initial value."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in net.state_dict().items():
        if value.dtype.is_floating_point:
            scale = 0.5 if value.dim() == 0 else 3.0 / max(1, value[0].numel()) ** 0.5
            state[key] = (torch.rand(value.shape, generator=g) * 2 - 1) * scale + (0.3 if value.dim() == 0 else 0)
        else:
            state[key] = value
    return state


def _record(net):
    for m in net.modules():
        if isinstance(m, NeuronBase):
            m.store_v_seq = True


def _simulate(net, x, rates: dict | None = None):
    """Output [T, N, ...] and every neuron layer's membrane potential over time, by node path (and, into
    `rates`, each spiking layer's firing rate)."""
    _record(net)
    net.eval()
    paths = {id(m): p for p, m in _named_nodes(net)}
    hooks = [m.register_forward_hook(lambda m, i, o: rates.setdefault(paths[id(m)], []).append(o.float().mean()))
             for m in net.modules() if rates is not None and isinstance(m, NeuronBase) and not m.NONSPIKING]
    with torch.no_grad():
        y = net(x)
    for h in hooks:
        h.remove()
    vs = {paths[id(m)]: m.v_seq.clone() for m in net.modules() if isinstance(m, NeuronBase) and id(m) in paths}
    return y, vs


def _named_nodes(net):
    for name, _, _ in net.GRAPH:
        yield name, net.node(name)


def _input(cls, T: int, n: int = 3, seed: int = 1, scale: float = 1.5):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((T, n, *cls.INPUT_SHAPE), generator=g) * scale


def _export(path, network, state=None, ties="nir"):
    return nir_export.export_network(path, network, state_dict=state, dt=DT, ties=ties)


def _roundtrip(path, network, tmp_path, state=None, strip=False, ties="nir"):
    """Export (with `state`), write, read, import; returns (original net, imported lib, Imported, checkpoint)."""
    lib = _lib(path)
    net = lib.network(network, backend="torch")
    if state is not None:
        net.load_state_dict(state)
    graph = _export(path, network, net.state_dict(), ties)
    if strip:
        graph.metadata = {}
    file = tmp_path / "model.nir"
    nir_export.write(file, graph)
    imported, weights = nir_import.import_file(file, tmp_path / "model.snn", ties=ties if strip else None)
    back = snnc.load(tmp_path / "model.snn")
    return net, back, imported, torch.load(weights, weights_only=True)


# ------------------------------------------------------------------ neuron forms
def _form(name: str, **args) -> Form:
    n = library_neurons()[name]
    overrides = tuple((k, ir.Lit(value=v)) for k, v in args.items())
    return nir_form(n, layer_config(n, overrides), ir_values(n, overrides), DT)


@pytest.mark.parametrize("ties", sorted(TIES))
def test_thresholds_cross_over_exactly(ties):
    for theta in (1.0, 0.5, 0.3, -0.25, 2.7, 1e-3):
        t32 = np.float32(theta)
        back = from_nir_threshold(to_nir_threshold(theta, ties), ties)
        assert np.float32(back) == t32 and float(back) == theta
    if ties == "nir":  # H >= theta in float32 exactly when H > the exported threshold
        h = np.float32(1.0) + np.arange(-4, 5, dtype=np.float32) * np.finfo(np.float32).eps
        assert np.array_equal(h >= np.float32(1.0), h > np.float32(to_nir_threshold(1.0, ties)))


def test_library_forms_follow_spikingjelly():
    """SpikingJelly's convention (dt = 1e-4): tau_nir = tau * dt; r = 1 with decay_input, else tau; v_leak =
    v_reset; IF r = 1 / dt; CUBALIF tau_syn = dt / (1 - c_decay), w_in = tau_syn / dt, r = tau_mem / dt."""
    lif = _form("LIF", tau=2.0).values
    assert (lif["tau"], lif["r"], lif["v_leak"], lif["v_reset"]) == (2e-4, 1.0, 0.0, 0.0)
    assert _form("LIF", tau=5.0, decay_input=False, v_reset=-0.2).values | {"v_threshold": 0} == {
        "tau": 5e-4, "r": 5.0, "v_leak": -0.2, "v_threshold": 0, "v_reset": -0.2}
    assert _form("IF").kind == "IF" and _form("IF").values["r"] == 1e4
    assert _form("LI", tau=4.0) == Form("LI", (("tau", 4e-4), ("r", 1.0), ("v_leak", 0.0)))
    cuba = _form("CUBALIF", c_decay=0.5, v_decay=0.75).values
    assert (cuba["tau_syn"], cuba["tau_mem"], cuba["r"], cuba["w_in"]) == (2e-4, 4e-4, 4.0, 2.0)
    plif = _form("PLIF", init_tau=3.0)
    assert plif.kind == "LIF" and np.isclose(plif.values["tau"], 3e-4)


@pytest.mark.parametrize("name, reason", [
    ("QIF", "not linear in v"), ("EIF", "not linear in v"), ("SquareIF", "not linear in x"),
    ("Izhikevich", "on_spike"), ("AdaptiveLIF", "on_spike"),
])
def test_neurons_nir_cannot_express_say_why(name, reason):
    with pytest.raises(NotNIR, match=reason):
        _form(name)


def test_soft_reset_is_refused():
    with pytest.raises(NotNIR, match="soft reset"):
        _form("LIF", v_reset=None)


@pytest.mark.parametrize("kind", sorted(inline_neurons()))
def test_nir_shaped_neurons_map_back_to_their_type(kind):
    n = inline_neurons()[kind]
    assert nir_form(n, layer_config(n, ()), ir_values(n, ()), DT).kind == kind


@pytest.mark.parametrize("form, neuron, args", [
    (Form("LIF", (("tau", 2e-4), ("r", 1.0), ("v_leak", 0.0), ("v_threshold", 1.0), ("v_reset", 0.0))),
     "LIF", {"v_threshold": 1.0000001}),
    (Form("LIF", (("tau", 1e-3), ("r", 10.0), ("v_leak", 0.0), ("v_threshold", 0.5), ("v_reset", 0.0))),
     "LIF", {"tau": 10.0, "decay_input": False, "v_threshold": 0.50000006}),
    (Form("LIF", (("tau", 1e-3), ("r", 3.0), ("v_leak", 0.1), ("v_threshold", 0.5), ("v_reset", 0.0))),
     "NirLIF", {"tau": 1e-3, "r": 3.0, "v_leak": 0.1, "v_threshold": 0.50000006}),
    (Form("IF", (("r", 1e4), ("v_threshold", 1.0), ("v_reset", 0.0))), "IF", {"v_threshold": 1.0000001}),
    (Form("CubaLIF", (("tau_syn", 2e-4), ("tau_mem", 4e-4), ("r", 4.0), ("v_leak", 0.0), ("v_threshold", 0.5),
                      ("v_reset", 0.0), ("w_in", 2.0))), "CUBALIF", {"v_threshold": 0.50000006}),
    (Form("I", (("r", 2.0),)), "NirI", {"r": 2.0}),
])
def test_import_picks_the_library_neuron_where_spikingjelly_s_convention_fits(form, neuron, args):
    n, chosen, _ = snnc_layer(form, DT, "nir")
    assert n.name == neuron and chosen == args


def test_neuron_text_parses_back():
    from snnc.compiler.assemble import load_module

    for n in [*library_neurons().values(), *inline_neurons().values()]:
        back = load_module("<t>", neuron_text(n))[0].neurons[0]
        assert back.model_dump(exclude={"file"}) == n.model_dump(exclude={"file"})


def test_labels_are_names_the_grammar_accepts():
    taken: set = set()
    assert [label(n, taken) for n in ("0.input", "fc", "fc", "from", "__x", "in", "lif-1")] == [
        "n0_input", "fc", "fc_2", "from_", "x", "in_", "lif_1"]


# ------------------------------------------------------------------ round trips
def _exportable(path, network):
    try:
        _export(path, network)
    except SnncError:
        return False
    return True


def test_every_shipped_network_is_either_exported_or_refused(in_repo_root):
    for param in MODEL_NETWORKS:
        dump, error = _golden_of(param, "dumps", ".txt"), _golden_of(param, "errors", ".err")
        assert dump.exists() != error.exists(), f"{param.id}: needs exactly one of {dump.name}, {error.name}"
        assert _exportable(*param.values) == dump.exists(), param.id


@pytest.mark.parametrize("path, network", EXPORTABLE_MODELS + TEST_NETWORKS + PEER_NETWORKS)
def test_roundtrip_identical_parameters_spikes_and_voltages(path, network, tmp_path, in_repo_root):
    cls = _lib(path).network_class(network)
    net, back, imported, weights = _roundtrip(path, network, tmp_path, _weights(cls()))
    twin = back.network(imported.network, backend="torch")
    twin.load_state_dict(weights["model"])
    names = imported.names
    # the network: same settings, same graph (paths renamed where a dotted block path is no label)
    original = check_file(path).module
    net_ir = next(n for n in original.networks if n.name == network)
    back_ir = check_file(tmp_path / "model.snn").module.networks[0]
    assert (back_ir.input_shape, back_ir.T, back_ir.encoder, back_ir.readout, back_ir.train) == (
        net_ir.input_shape, net_ir.T, net_ir.encoder, net_ir.readout, net_ir.train)
    # identical parameters, node by node (weights, learnables, neuron parameters)
    params = 0
    for path_, module in _named_nodes(net):
        if path_ not in names:
            continue
        other = twin.node(names[path_])
        for key, value in module.state_dict().items():
            assert torch.equal(value, other.state_dict()[key]), (path_, key)
            params += value.numel()
        if isinstance(module, NeuronBase):
            assert type(module).__name__ == type(other).__name__
            for p in (*module.FLOAT_PARAMS, *module.BOOL_PARAMS):
                assert getattr(module, p) == getattr(other, p), (path_, p)
            assert module.surrogate_function.spec == other.surrogate_function.spec
    assert params == sum(p.numel() for p in net.parameters())
    # identical spikes and voltages on random inputs
    x = _input(cls, min(cls.T, 30))
    rates: dict = {}
    y0, v0 = _simulate(net, x, rates)
    y1, v1 = _simulate(twin, x)
    assert torch.equal(y0, y1)
    assert v0 and set(v0) == {p for p in v0 if p in names}
    for p, v in v0.items():
        assert torch.equal(v, v1[names[p]]), p
    for p, r in rates.items():  # a meaningful comparison: every spiking layer fires, and not always
        rate = float(torch.stack(r).mean())
        assert 0.0 < rate < 1.0, (p, rate)


def _metadata_free_agreement(path, network, tmp_path, ties="nir"):
    cls = _lib(path).network_class(network)
    net, back, imported, weights = _roundtrip(path, network, tmp_path, _weights(cls()), strip=True, ties=ties)
    twin = back.network(imported.network, backend="torch")
    twin.load_state_dict(weights["model"])
    x = _input(cls, min(cls.T, 30))
    y0, _ = _simulate(net, x)
    y1, _ = _simulate(twin, x)
    return y0, y1, imported


@pytest.mark.parametrize("path, network", [n for n in TEST_NETWORKS if "Mixed" not in n.id] + [
    pytest.param("models/fc2_mnist.snn", "Fc2Mnist", id="fc2_mnist")])
def test_import_without_metadata_is_exact_where_the_arithmetic_is_the_same(path, network, tmp_path, in_repo_root):
    """A graph read without snnc's metadata (as a peer's would be): the neurons are found from the NIR
    parameters alone (library LIF/IF/LI/CUBALIF), the same arithmetic, the same outputs."""
    y0, y1, _ = _metadata_free_agreement(path, network, tmp_path)
    assert torch.equal(y0, y1)


def test_import_without_metadata_of_learned_and_own_neurons(tmp_path, in_repo_root):
    """PLIF comes back as a LIF with tau = 1/sigmoid(w) (a division where PLIF multiplies: float32 rounding can
    differ); a neuron of the file (beta * v + x) as LIF(decay_input = false), the Step neuron as a NIR
    Threshold neuron. Tolerance: 99.9% of the outputs agree (the LI readout's potential to 1e-5)."""
    y0, y1, imported = _metadata_free_agreement("tests/golden/nir/models/mixed.snn", "Mixed", tmp_path)
    assert torch.allclose(y0, y1, rtol=1e-4, atol=1e-5)
    layers = {k: v.split("  <-")[0] for k, v in imported.neurons.items()}
    assert layers["3"].startswith("LIF(tau = ") and "decay_input = false" in layers["3"]
    assert layers["5"] == "LIF(tau = 8.0, decay_input = false, v_threshold = 0.5)"
    assert layers["7"] == "NirThreshold(v_threshold = 0.25)"


# ------------------------------------------------------------------ goldens
def _golden_state(net) -> dict:
    """Weights that are the same on every machine and torch version (no RNG): a fixed pattern of
    dyadic fractions."""
    state = {}
    for key, value in net.state_dict().items():
        if value.dtype.is_floating_point:
            idx = torch.arange(value.numel(), dtype=torch.float64)
            state[key] = (((idx * 37) % 101 - 50) / 512).reshape(value.shape).to(value.dtype)
        else:
            state[key] = value
    return state


@pytest.mark.parametrize("path, network", EXPORTABLE_MODELS + TEST_NETWORKS)
def test_export_golden(path, network, tmp_path, in_repo_root):
    net = _lib(path).network(network, backend="torch")
    graph = _export(path, network, _golden_state(net))
    file = tmp_path / "g.nir"
    nir_export.write(file, graph)
    text = nir_text.dump(nir.read(str(file)))
    text = text.replace(f'"snnc": "{snnc.__version__}"', '"snnc": "<version>"')
    write_or_compare(GOLDEN / "dumps" / f"{Path(path).stem}-{network}.txt", text + "\n", "the exported NIR graph")
    again = tmp_path / "h.nir"
    nir_export.write(again, graph)
    assert again.read_bytes() == file.read_bytes(), "nir.write is not deterministic here"


def _error_text(path, network=None) -> str:
    with pytest.raises(SnncError) as info:
        _export(path, network)
    return info.value.render() + "\n"


@pytest.mark.parametrize("path, network", REFUSED_MODELS)
def test_export_errors_golden_models(path, network, in_repo_root):
    write_or_compare(GOLDEN / "errors" / f"{Path(path).stem}-{network}.err", _error_text(path, network),
                     "the export error")


@pytest.mark.parametrize("case", ERROR_CASES)
def test_export_errors_golden(case, in_repo_root):
    write_or_compare(GOLDEN / "errors" / f"{case}.err", _error_text(f"tests/golden/nir/errors/{case}.snn"),
                     "the export error")


# ------------------------------------------------------------------ peers
# Every comparison feeds the same input sequence, step by step, to snnc and to the peer, and compares the
# output spikes at every step. Where the peer's arithmetic is the same as snnc's the outputs must be identical;
# where it rounds differently (a division where the other multiplies, a sum in another order) a spike can
# flip when the potential lies within a float32 rounding of the threshold: there the tolerance is stated.
PEER = GOLDEN / "peers"
MISMATCH = 1e-3  # the fraction of output values allowed to differ where the peer rounds differently


def _snnc_outputs(path, tmp_path, ties="nir", n=8, seed=0, scale=1.5):
    lib = _lib(path)
    cls = lib.network_class()
    net = cls(backend="torch")
    net.load_state_dict(_weights(cls(), seed))
    x = _input(cls, cls.T, n=n, scale=scale)
    rates: dict = {}
    y, _ = _simulate(net, x, rates)
    assert all(0.0 < float(torch.stack(r).mean()) < 1.0 for r in rates.values()), "a layer is silent or saturated"
    graph = _export(path, None, net.state_dict(), ties)
    file = tmp_path / "peer.nir"
    nir_export.write(file, graph)
    return nir.read(str(file)), x, y


def _steps(step, x):
    """Run a peer's single-step callable over x [T, N, ...]; `step(x_t, state) -> (out, state)`."""
    state, outs = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            out, state = step(x[t], state)
            outs.append(out)
    return torch.stack(outs)


def _agree(a, b) -> float:
    return float((a == b).float().mean())


@pytest.mark.parametrize("path, ties", [
    (PEER / "feedforward.snn", "spikingjelly"), (PEER / "leaky.snn", "spikingjelly"),
    (PEER / "recurrent.snn", "spikingjelly"), (PEER / "feedforward.snn", "nir")])
def test_spikingjelly_runs_the_export_identically(path, ties, tmp_path):
    """SpikingJelly's nir_exchange rebuilds LIFNode, IFNode and CUBALIFNode from SpikingJelly's convention:
    the same arithmetic as snnc's library neurons. With ties = spikingjelly the thresholds are SpikingJelly's
    own (it fires at >=, as snnc): identical. With ties = nir it fires at >= the float32 below: it differs
    only where a potential equals that value exactly (none here)."""
    sj = pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    graph, x, y = _snnc_outputs(path, tmp_path, ties)
    gm = sj.import_from_nir(graph, dt=DT)
    assert torch.equal(_steps(lambda xt, s: gm(xt, s), x), y)


@pytest.mark.parametrize("path", [PEER / "leaky.snn", PEER / "recurrent.snn"])
def test_snntorch_runs_the_export_identically(path, tmp_path):
    """snnTorch 1.0.0 reads NIR's LIF as Leaky (beta = 1 - dt/tau, the threshold divided by the input scale
    r dt/tau when that is not 1), CubaLIF as Synaptic, and a LIF + Linear cycle as a recurrent sub-graph;
    it fires at v > threshold (ties = nir). Identical spikes."""
    pytest.importorskip("snntorch")
    from snntorch.import_nir import import_from_nir

    graph, x, y = _snnc_outputs(path, tmp_path, "nir")
    net = import_from_nir(graph)
    assert torch.equal(_steps(lambda xt, s: net(xt, s), x), y)


def _norse(graph):
    pytest.importorskip("norse")
    import norse.torch

    return norse.torch.from_nir(graph, dt=DT, ignore_warnings=True)


def test_norse_runs_the_export_identically(tmp_path):
    """Norse 1.1.0 reads NIR's LIF as LIFBox (v += dt/tau (v_leak - v + x): r must be 1, as with
    decay_input), its IF as v += x (r = 1/dt) and fires at v > threshold: identical spikes."""
    graph, x, y = _snnc_outputs(PEER / "feedforward.snn", tmp_path, "nir")
    net = _norse(graph)
    assert torch.equal(_steps(lambda xt, s: net(xt, s), x), y)


def test_norse_cubalif_within_a_rounding(tmp_path):
    """Norse integrates CubaLIF's current as i + dt/tau_syn (w_in x - i) and the membrane as
    v + dt/tau_mem (v_leak - v + r i): the same numbers as snnc's c_decay * c + x and v_decay * v + c up to
    float32 rounding (a potential differs by an ulp or two). Tolerance: MISMATCH of the spikes; measured: 0."""
    graph, x, y = _snnc_outputs(PEER / "cuba.snn", tmp_path, "nir", n=64, scale=0.5)
    net = _norse(graph)
    assert _agree(_steps(lambda xt, s: net(xt, s), x), y) >= 1 - MISMATCH


def _peer_run(peer: str, graph, x):
    """A peer's import of `graph` run step by step over x [T, N, ...] (batched)."""
    if peer == "snntorch":
        pytest.importorskip("snntorch")
        from snntorch.import_nir import import_from_nir

        net = import_from_nir(graph)
    elif peer == "norse":
        net = _norse(graph)
    else:
        sj = pytest.importorskip("spikingjelly.activation_based.nir_exchange")
        net = sj.import_from_nir(graph, dt=DT)
    return _steps(lambda xt, s: net(xt, s), x)


SHIPPED_PEER_CASES = [pytest.param(p.values[0], peer, id=f"{p.id}-{peer}") for p in EXPORTABLE_MODELS
                      for peer in ("snntorch", "norse", "spikingjelly")]


@pytest.mark.parametrize("path, peer", SHIPPED_PEER_CASES)
def test_every_exported_shipped_model_runs_batched_in_the_peers(path, peer, tmp_path, in_repo_root):
    """Each shipped model that exports, on a batch of 4, in snnTorch, Norse and SpikingJelly: the output has
    the batch's shape (snnc's Flatten is exported with start_dim = -ndim, which the peers' importers read
    as NIR means it: snnTorch and Norse pass start_dim to torch.nn.Flatten, where 0 would join the batch too)
    and the spikes are snnc's, identical (thresholds in each peer's tie rule)."""
    ties = "spikingjelly" if peer == "spikingjelly" else "nir"
    graph, x, y = _snnc_outputs(path, tmp_path, ties, n=4, scale=3.0)  # both of fc2_mnist's layers fire
    got = _peer_run(peer, graph, x)
    assert got.shape == y.shape == (x.shape[0], 4, 10)
    assert torch.equal(got, y)


# ------------------------------------------------------------------ peers -> snnc
def _snntorch_graph(modules: list, widths: list[int]):
    """snnTorch 1.0.0's `export_to_nir` fails with NIR 1.0.8 ('Type inference error: type mismatch'): it leaves
    a Leaky's or Synaptic's parameters 0-d, which NIR's type check reads as a layer of shape []. The workaround:
    snnTorch's own per-module translation (`_extract_snntorch_module`), each neuron's parameters repeated over
    its layer's width, assembled into a graph with `nir` directly."""
    from snntorch.export_nir import _extract_snntorch_module

    from snnc.interchange.nir_neurons import FIELDS

    nodes = []
    for module, width in zip(modules, widths):
        node = _extract_snntorch_module(module)
        kind = type(node).__name__
        if kind in FIELDS:
            node = type(node)(**{f: np.broadcast_to(np.asarray(getattr(node, f)), (width,)).copy()
                                 for f in FIELDS[kind]})
        nodes.append(node)
    return nir.NIRGraph.from_list(*nodes)


def _import_and_run(graph, x, tmp_path, **options):
    file = tmp_path / "peer.nir"
    nir.write(str(file), graph)
    imported, weights = nir_import.import_file(file, tmp_path / "peer.snn", T=x.shape[0], **options)
    net = snnc.load(tmp_path / "peer.snn").network(imported.network, backend="torch")
    net.load_state_dict(torch.load(weights, weights_only=True)["model"])
    y, _ = _simulate(net, x)
    return y, imported


def _snntorch_net(kind: str):
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(3)
    fc1, fc2, fc3 = torch.nn.Linear(20, 16), torch.nn.Linear(16, 12), torch.nn.Linear(12, 6)
    for fc in (fc1, fc2, fc3):
        fc.weight.data *= 2.0
    zero = {"reset_mechanism": "zero", "reset_delay": False}  # NIR's reset (snnTorch's import_nir builds these)
    if kind == "exact":  # beta = 1 - 2^-k: snnc's v - v / tau rounds as snnTorch's beta * v
        mid = snn.Synaptic(alpha=0.5, beta=0.75, threshold=0.5, **zero)
        layers = [fc1, snn.Leaky(beta=0.875, **zero), fc2, mid, fc3, snn.Leaky(beta=0.5, threshold=0.75, **zero)]
    elif kind == "beta09":  # beta = 0.9 is no float32 number: snnc's tau = 1 / (1 - beta) rounds differently
        layers = [fc1, snn.Leaky(beta=0.9, **zero), fc2, snn.Leaky(beta=0.8, threshold=0.7, **zero), fc3,
                  snn.Leaky(beta=0.9, **zero)]
    else:  # a recurrent layer (RLeaky): snnTorch adds beta * mem + input + recurrent, snnc the two inputs first
        layers = [fc1, snn.RLeaky(beta=0.875, linear_features=16, all_to_all=True, **zero), fc2,
                  snn.Leaky(beta=0.875, **zero), fc3, snn.Leaky(beta=0.875, **zero)]
    return layers


def _snntorch_steps(layers, x):
    import snntorch as snn

    state = {id(m): None for m in layers}
    outs = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = x[t]
            for m in layers:
                if isinstance(m, snn.RLeaky):
                    spk, mem = state[id(m)] or (torch.zeros(h.shape[0], 16), torch.zeros(h.shape[0], 16))
                    spk, mem = m(h, spk, mem)
                    state[id(m)], h = (spk, mem), spk
                elif isinstance(m, snn.Synaptic):
                    syn, mem = state[id(m)] or (torch.zeros_like(h), torch.zeros_like(h))
                    h, syn, mem = m(h, syn, mem)
                    state[id(m)] = (syn, mem)
                elif isinstance(m, snn.Leaky):
                    h, mem = m(h, state[id(m)] if state[id(m)] is not None else torch.zeros_like(h))
                    state[id(m)] = mem
                else:
                    h = m(h)
            outs.append(h)
    return torch.stack(outs)


@pytest.mark.parametrize("kind, exact", [("exact", True), ("beta09", False), ("recurrent", False)])
def test_snntorch_models_run_identically_in_snnc(kind, exact, tmp_path):
    """Models built in snnTorch (Leaky, Synaptic, RLeaky) with NIR's reset (to zero, at the spike:
    reset_mechanism = zero, reset_delay = false, as snnTorch's own import_nir builds them; its exporter writes
    the default subtraction and delayed reset as NIR's reset all the same), exported with snnTorch's module
    translation, imported by snnc: the same output spikes, step by step. Identical where the arithmetic is
    (beta = 1 - 2^-k); else within MISMATCH."""
    layers = _snntorch_net(kind)
    widths = [16, 16, 12, 12, 6, 6]
    graph = _snntorch_graph(layers, widths)
    x = torch.rand((24, 8, 20), generator=torch.Generator().manual_seed(5)) * 1.5
    expected = _snntorch_steps(layers, x)
    assert 0 < float(expected.mean()) < 1
    got, imported = _import_and_run(graph, x, tmp_path)
    if exact:
        assert torch.equal(got, expected)
        assert "LIF(tau = 8.0, decay_input = false, v_threshold = 1.0000001)" in imported.text
        assert "CUBALIF(v_threshold = 0.50000006)" in imported.text
    else:
        assert _agree(got, expected) >= 1 - MISMATCH


def _spikingjelly_net(kind: str):
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import layer, neuron

    torch.manual_seed(4)
    if kind == "lif":
        net = torch.nn.Sequential(layer.Flatten(), layer.Linear(64, 32), neuron.LIFNode(tau=2.0),
                                  layer.Linear(32, 10, bias=False), neuron.IFNode(),
                                  layer.Linear(10, 6), neuron.CUBALIFNode(c_decay=0.5, v_decay=0.75, v_threshold=0.5))
    elif kind == "conv1d":
        net = torch.nn.Sequential(layer.Conv1d(2, 4, 3, padding=1), neuron.IFNode(), layer.Flatten(),
                                  layer.Linear(64, 6), neuron.LIFNode(tau=4.0, v_reset=-0.1))
        net[3].bias.data += 0.5
    else:
        net = torch.nn.Sequential(layer.Conv2d(1, 4, 3, padding=1), neuron.ParametricLIFNode(init_tau=3.0),
                                  layer.AvgPool2d(2), layer.Flatten(), layer.Linear(64, 10),
                                  neuron.LIFNode(tau=3.0, decay_input=False))
    for m in net.modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            m.weight.data *= 3.0
    return net


@pytest.mark.parametrize("kind, exact", [("lif", True), ("conv_plif", False), ("conv1d", True)])
def test_spikingjelly_models_run_identically_in_snnc(kind, exact, tmp_path):
    """Models built in SpikingJelly, exported by its nir_exchange (dt = 1e-4), imported by snnc with
    ties = spikingjelly: LIFNode, IFNode and CUBALIFNode come back as snnc's LIF, IF and CUBALIF, identical.
    ParametricLIFNode is exported as a LIF of tau = 1 / sigmoid(w), which snnc divides by where SpikingJelly
    multiplies by sigmoid(w): within MISMATCH."""
    pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    net = _spikingjelly_net(kind)
    shape = {"lif": (64,), "conv1d": (2, 16)}.get(kind, (1, 8, 8))
    x = torch.rand((16, 8, *shape), generator=torch.Generator().manual_seed(6))
    graph = export_to_nir(net, x[0], dt=DT)
    functional.set_step_mode(net, "m")
    functional.reset_net(net)
    with torch.no_grad():
        expected = net(x)
    assert 0 < float(expected.mean()) < 1
    got, imported = _import_and_run(graph, x, tmp_path, ties="spikingjelly")
    if exact:
        assert torch.equal(got, expected)
        layers = sorted(v.split("  <-")[0] for v in imported.neurons.values())
        assert layers == (["CUBALIF", "IF", "LIF"] if kind == "lif" else ["IF", "LIF(tau = 4.0, v_reset = -0.1)"])
    else:
        assert _agree(got, expected) >= 1 - MISMATCH


# ------------------------------------------------------------------ the command line, eval and resume
@pytest.fixture(scope="module")
def mnist_like(tmp_path_factory):
    """A tiny MNIST-shaped dataset (IDX files): enough for snnc train, eval and resume to run."""
    folder = tmp_path_factory.mktemp("mnist_like")
    write_mnist(folder, 200, 50, images="sparse")
    return str(folder)


def test_cli_trained_weights_export_import_eval_and_resume(tmp_path, mnist_like, in_repo_root, capsys):
    """snnc train -> snnc export --checkpoint -> snnc import -> snnc eval gives the original's test loss and
    accuracy; snnc train --resume continues from the imported checkpoint."""
    from snnc import cli

    quick = ["--data-dir", mnist_like, "--workers", "1", "--backend", "torch", "--no-fuse-input", "-T", "20"]
    run = tmp_path / "run"
    assert cli.main(["train", "models/lif_fc_mnist.snn", "--subset", "64", "--out-dir", str(run), "--quiet",
                     *quick]) == 0
    graph, snn_file = tmp_path / "m.nir", tmp_path / "m.snn"
    assert cli.main(["export", "models/lif_fc_mnist.snn", "--nir", str(graph), "--checkpoint",
                     str(run / "last.pt")]) == 0
    assert cli.main(["import", str(graph), "-o", str(snn_file)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {graph}: 5 NIR nodes" in out and f"wrote {snn_file} (network LifFcMnist, 3 nodes)" in out
    results = []
    for model, weights in (("models/lif_fc_mnist.snn", run / "last.pt"), (snn_file, tmp_path / "m.pt")):
        assert cli.main(["eval", str(model), "--checkpoint", str(weights), *quick, "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert {k: results[0][k] for k in ("test_loss", "test_acc", "samples")} == {
        k: results[1][k] for k in ("test_loss", "test_acc", "samples")}
    assert cli.main(["train", str(snn_file), "--resume", str(tmp_path / "m.pt"), "--out-dir", str(tmp_path / "r2"),
                     "--quiet", *[q for q in quick if q != "-T" and q != "20"]]) == 0
    assert (tmp_path / "r2" / "last.pt").is_file()


def test_cli_export_error_is_located_and_exit_1(in_repo_root, tmp_path, capsys):
    from snnc import cli

    assert cli.main(["export", "tests/golden/nir/errors/soft_reset.snn", "--nir", str(tmp_path / "x.nir"),
                     "--untrained"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tests/golden/nir/errors/soft_reset.snn:9:9: error: node '1' (LIF) has no NIR form")
    assert "Traceback" not in err and not (tmp_path / "x.nir").exists()


def test_cli_export_of_untrained_weights_needs_untrained(in_repo_root, tmp_path, capsys):
    from snnc import cli

    argv = ["export", "models/lif_fc_mnist.snn", "--nir", str(tmp_path / "x.nir")]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "untrained (initial) weights" in err and "--checkpoint" in err and "--untrained" in err
    assert not (tmp_path / "x.nir").exists()
    assert cli.main([*argv, "--untrained"]) == 0 and (tmp_path / "x.nir").is_file()


@pytest.mark.parametrize("command", ["export", "import"])
def test_cli_help(command, capsys):
    from snnc import cli

    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = capsys.readouterr().out
    assert "--ties" in text and "--dt" in text


def _graph(nodes: dict, edges: list):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


class _Custom(nir.NIRNode):
    """A node type snnc does not know (another tool's extension)."""

    def __init__(self):
        self.input_type = {"input": np.array([4])}
        self.output_type = {"output": np.array([4])}
        self.metadata = {}


def test_import_errors_list_every_node_snnc_cannot_run():
    """Node types snnc does not know, per-neuron parameters that differ, convolutions and pooling snnc has no
    arguments for, delays that are no whole steps: one error naming each node and why."""
    n = 4
    graph = _graph({
        "input": nir.Input(input_type={"input": np.array([2, 8, 8])}),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=np.ones((2, 2, 3, 3), dtype=np.float32), stride=1, padding=1,
                           dilation=1, groups=2, bias=np.zeros(2, dtype=np.float32)),
        "pool": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([1, 1])),
        "flat": nir.Flatten(input_type={"input": np.array([2, 5, 5])}, start_dim=1),
        "fc": nir.Linear(weight=np.ones((n, 50), dtype=np.float32)),
        "late": nir.Delay(delay=np.full(n, 1.5e-4)),
        "lif": nir.LIF(tau=np.array([2e-4, 3e-4, 2e-4, 2e-4]), r=np.ones(n), v_leak=np.zeros(n),
                       v_threshold=np.ones(n), v_reset=np.zeros(n)),
        "custom": _Custom(),
        "output": nir.Output(output_type={"output": np.array([n])}),
    }, [("input", "conv"), ("conv", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "late"), ("late", "lif"),
        ("lif", "custom"), ("custom", "output")])
    with pytest.raises(SnncError) as info:
        nir_import.import_graph(graph, source="bad.nir")
    write_or_compare(GOLDEN / "errors" / "import_unsupported.err", info.value.render() + "\n", "the import error")


def test_import_refuses_a_cycle_without_a_neuron(tmp_path):
    graph = _graph({
        "input": nir.Input(input_type={"input": np.array([3])}),
        "a": nir.Linear(weight=np.eye(3, dtype=np.float32)), "b": nir.Linear(weight=np.eye(3, dtype=np.float32)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }, [("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")])
    with pytest.raises(SnncError, match="cycle with no neuron on it"):
        nir_import.import_graph(graph)


def test_import_of_delays_in_seconds_and_a_foreign_recurrent_graph(tmp_path):
    """snnTorch's layout of a recurrent layer (a sub-graph 'input -> lif <-> w_rec -> output'), a delay of
    3 dt per neuron, NIR names that are no snnc names: a network that checks, reads the right nodes."""
    n = 4
    lif = nir.LIF(tau=np.full(n, 1e-3), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                  v_reset=np.zeros(n))
    rnn = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([n])}), "lif": lif,
                              "w_rec": nir.Linear(weight=np.eye(n, dtype=np.float32) * 0.5),
                              "output": nir.Output(output_type={"output": np.array([n])})},
                       edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    graph = _graph({
        "input": nir.Input(input_type={"input": np.array([3])}),
        "fc-in": nir.Affine(weight=np.ones((n, 3), dtype=np.float32), bias=np.zeros(n, dtype=np.float32)),
        "rlif": rnn, "wait": nir.Delay(delay=np.full(n, 3e-4)),
        "output": nir.Output(output_type={"output": np.array([n])}),
    }, [("input", "fc-in"), ("fc-in", "rlif"), ("rlif", "wait"), ("wait", "output")])
    imported = nir_import.import_graph(graph, source="rnn.nir", T=5)
    layers = imported.text.split("layers {")[1]
    assert "fc_in = linear(4)" in layers
    assert "w_rec = linear(4, bias = false) from lif" in layers
    assert "lif_in = add(fc_in, w_rec)" in layers
    assert "lif = LIF(tau = 10.0, decay_input = false, v_threshold = 1.0000001)" in layers
    assert "wait = delay(3)" in layers
    check_file("rnn.snn", imported.text)


def test_import_renames_a_graph_s_own_neuron_named_like_a_library_one(tmp_path, in_repo_root):
    """A file's own 'LIF' (not the library's) comes back beside the library's LIF (a node without snnc's
    record): the file's own is renamed 'LIFNir'."""
    src = tmp_path / "own.snn"
    src.write_text("neuron LIF {\n    state v = v_reset\n    charge v = 0.5 * v + x\n}\n\n"
                   "network Own {\n    input = [4]\n    T = 4\n    layers {\n        linear(4)\n"
                   "        LIF()\n        linear(2)\n        LIF()\n    }\n}\n")
    graph = nir_export.export_network(src)
    meta = json.loads(graph.metadata["snnc"])
    del meta["nodes"]["3"]
    graph.metadata["snnc"] = json.dumps(meta)
    text = nir_import.import_graph(graph, source="own.nir").text
    layers = text.split("layers {")[1]
    assert "import snnc.neurons" in text and "neuron LIFNir {" in text
    assert "LIFNir" in layers and "LIF(decay_input = false)" in layers
    check_file("own.snn", text)


def test_learnables_export_at_their_trained_value_and_training_settings_are_recorded(in_repo_root):
    """PLIF's 1/tau = sigmoid(w) is exported at the w of the weights given (not its initial value); the
    surrogate and detach_reset, training-only, are dropped from the NIR nodes and listed in the metadata."""
    path = "tests/golden/nir/models/mixed.snn"
    net = _lib(path).network(backend="torch")
    state = net.state_dict()
    state["layers.3.w"] = torch.tensor(0.25)
    graph = _export(path, None, state)
    tau = float(graph.nodes["3"].tau.flat[0])
    assert np.isclose(tau, DT * (1 + np.exp(-0.25)), rtol=1e-12)
    meta = json.loads(graph.metadata["snnc"])
    assert meta["nodes"]["3"]["learnables"] == {"w": 0.25}
    fc2 = json.loads(_export("models/fc2_mnist.snn", None).metadata["snnc"])
    assert fc2["dropped"] == {"2": ["surrogate atan(alpha = 2.0)", "detach_reset = true"],
                              "4": ["surrogate atan(alpha = 2.0)", "detach_reset = true"]}
    assert not any(k in ("surrogate", "detach_reset") for node in graph.nodes.values() for k in node.to_dict())
