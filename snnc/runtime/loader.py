"""Compile a `.snn` file and import the result: parse -> check -> codegen -> write to cache -> import.

Generated packages are cached by the hash of everything that shapes them (the
sources, snnc's version, the templates), written atomically, and imported under
a unique module name.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from .. import __version__
from ..compiler import ir
from ..compiler.assemble import load_module
from ..compiler.check import check_module
from ..compiler.codegen import RUNTIME_FILE, emitted_neurons, package_name, render
from ..compiler.resources import resource_dir
from ..compiler.source import SnncError
from .cc import cache_dir

_SHIM = "# snnc.load shares one runtime between all loaded models\nfrom snnc.runtime.support import *  # noqa: F401,F403\nfrom snnc.runtime.support import FUSED, NeuronBase, Network, Surrogate  # noqa: F401\n"


def compile_file(path: str | Path) -> tuple[ir.Module, dict]:
    """Parse and check; returns the module and the sources read."""
    module, sources = load_module(path)
    check_module(module, sources)
    return module, sources


def _fingerprint(sources: dict) -> str:
    h = hashlib.sha256(__version__.encode())
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + sources[name].text.encode() + b"\0")
    for t in sorted(resource_dir("templates").iterdir()):
        h.update(t.read_bytes())
    return h.hexdigest()[:16]


def write_package(files: dict[str, str], target: Path, runtime_text: str) -> None:
    """Write a package directory atomically (rename of a complete temp dir)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        for name, text in {**files, RUNTIME_FILE: runtime_text}.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except FileExistsError:  # another process won the race with identical content
        shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _import(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path / "__init__.py", submodule_search_locations=[str(path)])
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@dataclass
class Library:
    """A loaded `.snn` file: neuron classes, network classes, and the checked IR."""

    module: ir.Module
    package: ModuleType
    path: Path
    neurons: dict = field(default_factory=dict)
    networks: dict = field(default_factory=dict)

    def network(self, name: str | None = None, **kwargs):
        return self.network_class(name)(**kwargs)

    def network_class(self, name: str | None = None):
        if not self.networks:
            raise SnncError(f"{self.module.file} defines no network", hint="add 'network Name { ... }' to the file")
        if name is None:
            if len(self.networks) > 1:
                raise SnncError(f"{self.module.file} defines several networks: {', '.join(self.networks)}",
                                hint="name the one you want")
            return next(iter(self.networks.values()))
        if name not in self.networks:
            raise SnncError(f"no network '{name}' in {self.module.file}", hint=f"networks: {', '.join(self.networks)}")
        return self.networks[name]

    def experiment(self, name: str | None = None):
        from ..train.runner import Experiment
        from . import support

        cls = self.network_class(name)
        net_ir = next(n for n in self.module.networks if n.name == cls.__name__)
        return Experiment(
            name=cls.__name__, make_net=cls, input_shape=tuple(cls.INPUT_SHAPE), num_classes=cls.NUM_CLASSES,
            T=cls.T, encoder=cls.ENCODER, readout=cls.READOUT, recipe=dict(cls.TRAIN),
            model_hash=hashlib.sha256(net_ir.model_dump_json().encode()).hexdigest()[:16],
            reset=support.reset_net, set_backend=support.set_backend,
        )


def load(path: str | Path) -> Library:
    from . import fused_registry

    module, sources = compile_file(path)
    key = _fingerprint(sources)
    name = f"snnc_gen_{package_name(module.file)}_{key}"
    target = cache_dir() / "packages" / name
    if not (target / "__init__.py").exists():
        write_package(render(module), target, _SHIM)
    pkg = sys.modules.get(name) or _import(name, target)
    fused_registry.install()
    return Library(
        module=module, package=pkg, path=target,
        neurons={n: getattr(pkg.neurons, n) for n in pkg.NEURONS},
        networks={n: getattr(pkg.networks, n) for n in pkg.NETWORKS},
    )


def _is_build(folder: Path) -> bool:
    """A folder earlier written by `snnc build` (safe to replace), judged by its generated header."""
    try:
        return (folder / RUNTIME_FILE).is_file() and (folder / "__init__.py").read_text().startswith(
            "# generated by snnc")
    except OSError:
        return False


def build(path: str | Path, out_dir: str | Path) -> Path:
    """`snnc build`: a standalone package (imports only torch) plus kernel sources."""
    module, _ = compile_file(path)
    files = render(module)
    from ..compiler.kernels import render_all

    for neuron in emitted_neurons(module):
        for fname, text in render_all(neuron).items():
            files[f"kernels/{fname}"] = text
    target = Path(out_dir) / package_name(module.file)
    if target.exists() and not _is_build(target):
        raise SnncError(f"{target} exists and is not a package snnc built; snnc will not replace it",
                        hint="choose another -o directory, or move that folder away")
    runtime_text = (Path(__file__).parent / "support.py").read_text()
    try:
        write_package(files, target, runtime_text)
    except OSError as exc:
        raise SnncError(f"cannot write {target}: {exc.strerror}", hint="choose a writable --out directory") from None
    return target
