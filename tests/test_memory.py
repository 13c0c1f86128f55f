"""Training memory (compiler/memory.py, runtime/memory.py): spikes kept as bits and layers recomputed in backward
give gradients bit-identical to autograd's own, on the shipped models, and keep fewer bytes."""
from __future__ import annotations

import pytest
import torch

import snnc
from snnc.runtime import memory

from conftest import MODELS

SMALL = ["csnn_fmnist", "sew_resnet_mnist", "fc2_mnist", "lif_fc_mnist", "delay_smnist",
         "rsnn_smnist"]
LARGE = ["nmnist_plif", "cifar10_dvs_plif", "dvs_gesture_plif", "cifar10_resnet19"]


def _step(cls, policy, backend=None, n=2, T=None, seed=0):
    """One training step: (gradients, buffers after it, bytes kept for backward)."""
    torch.manual_seed(seed)
    net = cls(backend=backend)
    net.train()
    memory.apply(net, memory.policy_actions(net, policy))
    torch.manual_seed(seed + 1)
    x = torch.rand(T or cls.T, n, *cls.INPUT_SHAPE)
    with memory.Kept() as kept:
        out = net(x)
    out.square().mean().backward()
    grads = {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}
    return grads, {k: b.clone() for k, b in net.named_buffers()}, kept.bytes


def _same(a: dict, b: dict) -> list[str]:
    return [k for k in a if not torch.equal(a[k], b[k])] + sorted(set(a) ^ set(b))


def _check_model(name, T=None):
    cls = snnc.load(MODELS / f"{name}.snn").network_class()
    grads, buffers, fast = _step(cls, "fast", T=T)
    for policy in ("balanced", "min"):
        g, b, kept = _step(cls, policy, T=T)
        assert not _same(grads, g), f"{name} {policy}: gradients differ"
        assert not _same(buffers, b), f"{name} {policy}: buffers (running statistics) differ"
        assert kept <= fast, f"{name} {policy}: keeps {kept} bytes, fast {fast}"
    return fast, kept


@pytest.mark.parametrize("name", SMALL)
def test_policies_give_bit_identical_gradients(name):
    _check_model(name, T=3)


@pytest.mark.slow
@pytest.mark.parametrize("name", LARGE)
def test_policies_give_bit_identical_gradients_on_large_models(name):
    _check_model(name, T=2)


def test_min_keeps_a_fraction_of_fast_on_a_conv_net():
    fast, kept = _check_model("csnn_fmnist", T=2)
    assert kept < 0.5 * fast


def test_bits_round_trip_and_pack_eight_to_a_byte():
    x = (torch.rand(3, 5, 7) > 0.5).float()
    packed = memory.pack_bits(x)
    assert packed.dtype == torch.uint8 and packed.numel() == (x.numel() + 7) // 8
    assert torch.equal(memory.unpack_bits(packed, x.shape, x.dtype), x)


def test_batchnorm_running_statistics_are_updated_once_under_recomputation():
    cls = snnc.load(MODELS / "csnn_fmnist.snn").network_class()
    _, fast, _ = _step(cls, "fast", T=2)
    _, mini, _ = _step(cls, "min", T=2)
    assert fast["layers.1.num_batches_tracked"].item() == mini["layers.1.num_batches_tracked"].item() == 1
    assert torch.equal(fast["layers.1.running_mean"], mini["layers.1.running_mean"])


def test_a_parameter_changed_between_forward_and_backward_is_an_error():
    cls = snnc.load(MODELS / "csnn_fmnist.snn").network_class()
    net = cls()
    memory.apply(net, memory.policy_actions(net, "min"))
    out = net(torch.rand(2, 2, *cls.INPUT_SHAPE))
    with torch.no_grad():
        net.layers["4"].weight.add_(1.0)
    with pytest.raises(RuntimeError, match="changed in place"):
        out.sum().backward()


def test_no_plan_without_gradients_and_unknown_policies_are_errors():
    cls = snnc.load(MODELS / "fc2_mnist.snn").network_class()
    net = cls()
    memory.apply(net, memory.policy_actions(net, "min"))
    with torch.no_grad():
        net(torch.rand(2, 2, *cls.INPUT_SHAPE))
    assert not net.saving.outputs
    with pytest.raises(ValueError, match="memory policy"):
        memory.policy_actions(net, "tiny")


def test_check_prints_the_plan(capsys):
    from snnc.cli.check import run_check

    class Args:
        model, json, all = str(MODELS / "csnn_fmnist.snn"), False, False

    run_check(Args())
    out = capsys.readouterr().out
    assert "memory plan" in out and "bits" in out and "recompute" in out


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    from conftest import write_mnist

    folder = tmp_path_factory.mktemp("memory_mnist")
    write_mnist(folder, 160, 64, images="blocks")
    return str(folder)


@pytest.mark.slow
def test_training_under_min_and_sltt_runs_and_min_matches_fast_exactly(tmp_path, mnist_dir):
    from snnc.train.experiment import from_library
    from snnc.train.recipe import TrainOptions
    from snnc.train.runner import train

    exp = from_library(snnc.load(MODELS / "csnn_fmnist.snn"))
    base = dict(epochs=1, batch_size=16, subset=32, test_subset=16, data_dir=mnist_dir, quiet=True, plots=False,
                device="cpu", T=2, dataset="mnist", lr=0.01)
    runs = {m: train(exp, TrainOptions(out_dir=str(tmp_path / m), memory=m, **base))["metrics"][-1]
            for m in ("fast", "min")}
    strip = lambda r: {k: v for k, v in r.items() if "second" not in k and "per_s" not in k}  # noqa: E731
    assert strip(runs["fast"]) == strip(runs["min"])
    sltt = train(exp, TrainOptions(out_dir=str(tmp_path / "sltt"), gradient="sltt", **base))["metrics"][-1]
    assert sltt["train_loss"] == sltt["train_loss"]  # finite, trained


def test_recomputation_under_autocast_is_exact():
    """A layer recomputed in backward runs under the forward pass's autocast state (bfloat16 here)."""
    cls = snnc.load(MODELS / "sew_resnet_mnist.snn").network_class()
    grads = {}
    for policy in ("fast", "min"):
        torch.manual_seed(0)
        net = cls()
        memory.apply(net, memory.policy_actions(net, policy))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(torch.rand(2, 2, *cls.INPUT_SHAPE))
        out.float().square().mean().backward()
        grads[policy] = {k: p.grad for k, p in net.named_parameters()}
    assert not _same(grads["fast"], grads["min"])
