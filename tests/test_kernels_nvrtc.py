"""Every generated CUDA kernel compiles with NVRTC, fp32 and fp16, for several virtual architectures.

Runs without a GPU (NVRTC only compiles). compute_70 is skipped when NVRTC is 13 or newer, which dropped
Volta; compute_75 stands in as the oldest architecture those versions support.
"""
from __future__ import annotations

import dataclasses

import pytest

from snnc.compiler.assemble import load_module
from snnc.compiler.derive import default_config, plan
from snnc.compiler.kernels import render_cuda

from conftest import MODELS
from test_kernels_host import TEST_NEURONS

try:
    from snnc.runtime.cuda import BACKWARD_OPTIONS, FORWARD_OPTIONS, cuda_include_dirs, nvrtc_compile, nvrtc_version

    NVRTC = nvrtc_version()
except Exception as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"NVRTC (CuPy) not available: {exc}", allow_module_level=True)

ARCHS = ("compute_70", "compute_75", "compute_80", "compute_90")
LIB = load_module(MODELS / "neurons.snn")[0]


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path_factory, monkeypatch):
    """Compile for real: a private cache directory, so no earlier run's PTX is reused."""
    monkeypatch.setenv("SNNC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "nvrtc-cache"))


@pytest.fixture(scope="module")
def test_lib(tmp_path_factory):
    path = tmp_path_factory.mktemp("snn") / "kernel_test_neurons.snn"
    path.write_text(TEST_NEURONS)
    return load_module(path)[0]


def _compile_all(p, arch):
    for dtype in ("float32", "float16"):
        src = render_cuda(p, dtype)
        for which, opts in (("forward", FORWARD_OPTIONS), ("backward", BACKWARD_OPTIONS)):
            image, kind = nvrtc_compile(src[which], f"test_{p.neuron.name}_{dtype}_{which}", arch, opts)
            assert kind == "ptx" and f"snnc_{which}".encode() in image


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", [n.name for n in LIB.neurons])
def test_library_kernels_compile(name, arch):
    if arch == "compute_70" and NVRTC >= (13, 0):
        pytest.skip(f"NVRTC {NVRTC[0]}.{NVRTC[1]} no longer supports compute_70 (Volta)")
    _compile_all(plan(LIB.neuron(name)), arch)


@pytest.mark.parametrize("name", [n.name for n in LIB.neurons])
def test_reset_variants_compile(name):
    n = LIB.neuron(name)
    for soft in (False, True):
        for detach in (False, True):
            _compile_all(plan(n, dataclasses.replace(default_config(n), soft_reset=soft, detach_reset=detach)),
                         "compute_80")


def test_test_neurons_compile(test_lib):
    for n in test_lib.neurons:
        _compile_all(plan(n), "compute_80")


def test_fp16_header_is_found():
    assert cuda_include_dirs(), "no directory with cuda_fp16.h (set CUDA_PATH or install nvidia-cuda-runtime)"
