"""Neurons written as differential equations: Euler from the seed's eq. 1 is SpikingJelly's LIF exactly; exact
steps match SciPy's matrix exponential over 10,000 steps; Euler converges linearly in dt and RK2 quadratically;
learnable time constants get gradients through the propagator on every backend."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import snnc
from snnc.compiler.assemble import load_module
from snnc.compiler.check import check_module
from snnc.compiler.derive import default_config, plan
from snnc.runtime.backends import available
from snnc.runtime.verify import compare, default_values, learnable_defaults, random_input

from conftest import needs_sj

BACKENDS = [b for b in ("torch", "cpp") if b in available("cpu")]

EQ1 = """
# The seed's eq. 1, tau_m dV/dt = -(V - V_reset) + R_m I, with R_m I = X and dt = 1 (the default).
neuron Eq1 {
    param tau = 2.0
    param R = 1.0
    state v = v_reset
    charge dv/dt = (-(v - v_reset) + R * x) / tau
    integrate = euler
}
"""


def _lib(tmp_path, text, name="ode.snn"):
    path = tmp_path / name
    path.write_text(text)
    return snnc.load(path)


@needs_sj
@pytest.mark.parametrize("backend", ["module", *BACKENDS])
def test_euler_from_eq1_is_spikingjelly_lif_exactly(tmp_path, backend):
    from spikingjelly.activation_based import functional, neuron

    cls = _lib(tmp_path, EQ1).neurons["Eq1"]
    x = torch.rand(50, 4, 33, generator=torch.Generator().manual_seed(0)) * 2.5
    sj = neuron.LIFNode(tau=2.0, step_mode="m", store_v_seq=True)
    ref = sj(x)
    if backend == "module":
        cell = cls(step_mode="s", store_v_seq=True)
        spikes = torch.stack([cell(x[t]) for t in range(50)])
        assert torch.equal(cell.v_seq, sj.v_seq)
    else:
        cell = cls(step_mode="m", backend=backend)
        spikes = cell(x)
        cell.reset()
        cell.output = "v"  # the membrane after each step's reset, as SpikingJelly's v_seq holds it
        assert torch.equal(cell(x), sj.v_seq)
    assert torch.equal(spikes, ref) and 0.1 < float(ref.mean()) < 0.9
    functional.reset_net(sj)


CUBA = """
import snnc.neurons_ode
network Probe {
    input = [8]
    T = 4
    encoder = direct
    dt = 0.5
    layers {
        CUBALIF_ODE(tau_m = 3.0, tau_syn = 1.5, R = 2.0, v_threshold = 1.0e9)
        linear(8)
        d = LIF_ODE(dt = 0.25)
    }
}
"""


def _cuba_oracle(x: np.ndarray, tau_m, tau_syn, R, dt) -> np.ndarray:
    """i += x, then (i, v)' = [[-1/tau_syn, 0], [R/tau_m, -1/tau_m]] (i, v) exactly over dt: SciPy's expm."""
    expm = pytest.importorskip("scipy.linalg").expm  # a test-only package (scripts/setup.sh --test)

    P = expm(np.array([[-1 / tau_syn, 0.0], [R / tau_m, -1 / tau_m]]) * dt)
    i = np.zeros(x.shape[1:])
    v = np.zeros(x.shape[1:])
    vs = []
    for t in range(x.shape[0]):
        i = i + x[t]
        i, v = P[0, 0] * i + P[0, 1] * v, P[1, 0] * i + P[1, 1] * v
        vs.append(v)
    return np.stack(vs)


def test_exact_cuba_matches_scipy_over_10000_steps(tmp_path):
    lib = _lib(tmp_path, CUBA)
    cell = lib.neurons["CUBALIF_ODE"](tau_m=3.0, tau_syn=1.5, R=2.0, dt=0.5, v_threshold=1.0e9, step_mode="m",
                                      backend="torch")
    cell.output = "v"
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(10_000, 64, generator=g, dtype=torch.float64) - 0.45) * 0.2  # piecewise-constant drive
    with torch.no_grad():
        v = cell(x).numpy()
    ref = _cuba_oracle(x.numpy(), 3.0, 1.5, 2.0, 0.5)
    scale = np.abs(ref).max()
    assert scale > 0.1
    assert np.abs(v - ref).max() <= 1e-6 * scale  # measured: about 1e-14 of the scale in float64
    # the fp32 kernels over the same 10,000 steps: rounding accumulates, the trace stays within 1e-4 of its scale
    for backend in BACKENDS:
        cell32 = lib.neurons["CUBALIF_ODE"](tau_m=3.0, tau_syn=1.5, R=2.0, dt=0.5, v_threshold=1.0e9,
                                            step_mode="m", backend=backend)
        cell32.output = "v"
        with torch.no_grad():
            v32 = cell32(x.float()).double().numpy()
        assert np.abs(v32 - ref).max() <= 1e-4 * scale


def test_network_dt_setting_and_layer_override(tmp_path):
    net = _lib(tmp_path, CUBA).network()
    assert net.layers["0"].dt == 0.5 and net.layers["d"].dt == 0.25


ORDERS = """
neuron Euler {
    param tau = 2.0
    param tau_w = 5.0
    state v = 0.0
    state w = 1.0
    charge {
        dv/dt = (-v - w + x) / tau
        dw/dt = -w / tau_w
    }
    integrate = euler
}
"""


def _final_v(tmp_path, method: str, dt: float, horizon: float = 4.0) -> float:
    text = ORDERS.replace("Euler", method.capitalize()).replace("integrate = euler", f"integrate = {method}")
    cls = _lib(tmp_path, text, f"{method}.snn").neurons[method.capitalize()]
    cell = cls(dt=dt, v_threshold=1.0e9, step_mode="m", backend="torch")
    steps = round(horizon / dt)
    with torch.no_grad():
        cell(torch.full((steps, 1), 0.7, dtype=torch.float64))
    return float(cell.v[0])


def test_euler_converges_linearly_and_rk2_quadratically(tmp_path):
    exact = _final_v(tmp_path, "exact", 4.0)  # one exact step over the whole horizon
    assert exact == pytest.approx(_final_v(tmp_path, "exact", 0.1), rel=1e-12)
    for method, order in (("euler", 1), ("rk2", 2)):
        errors = [abs(_final_v(tmp_path, method, dt) - exact) for dt in (0.2, 0.1, 0.05)]
        ratios = [errors[0] / errors[1], errors[1] / errors[2]]
        assert all(abs(math.log2(r) - order) < 0.15 for r in ratios), (method, errors, ratios)


def test_exponential_euler_is_exact_for_a_linear_neuron(tmp_path):
    text = ORDERS.replace("dv/dt = (-v - w + x) / tau", "dv/dt = (-v + x) / tau").replace("Euler", "Expo")
    text = text.replace("integrate = euler", "integrate = exponential_euler")
    cls = _lib(tmp_path, text, "expo.snn").neurons["Expo"]
    cell = cls(dt=0.3, v_threshold=1.0e9, step_mode="m", backend="torch")
    with torch.no_grad():
        cell(torch.full((10, 1), 0.7, dtype=torch.float64))
    assert float(cell.v[0]) == pytest.approx(0.7 * (1 - math.exp(-3.0 / 2.0)), rel=1e-12)


LEARNABLE = """
neuron LearnedTau {
    learnable k = 0.3
    state v = v_reset
    state i = 0.0
    charge {
        i += x
        di/dt = -i / (1.0 + exp(k))
        dv/dt = (-(v - v_reset) + i) / (2.0 + exp(k))
    }
    integrate = exact
}
"""


def test_learnable_time_constant_through_the_propagator(tmp_path):
    path = tmp_path / "learned.snn"
    path.write_text(LEARNABLE)
    module, sources = load_module(path)
    n = check_module(module, sources).module.neuron("LearnedTau")
    for backend in BACKENDS:
        for cfg in (default_config(n),):
            p = plan(n, cfg)
            scalars = default_values(n, cfg)
            learn = learnable_defaults(n, scalars)
            for seed, shape in enumerate(((6, 3, 17), (1, 5))):
                x, inits = random_input(p, shape, scalars, learn, seed)
                res = compare(backend, p, x, inits, scalars, learn, seed=seed)
                assert res.status == "ok", res.reason
