"""Compile a `.snn` file and import the result: parse -> check -> codegen -> write to cache -> import.

Generated packages are cached by the hash of everything that shapes them (the
sources, snnc's version, the templates), written atomically, and imported under
a unique module name.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from ..version import __version__
from ..compiler import ir
from ..compiler.codegen import RUNTIME_FILE, package_name
from ..compiler.driver import Compiled, check_file, compile_file, render_kernels, render_package
from ..compiler.source import SnncError
from . import backends
from .cache import digest, generator_hash, subdir, trusted, usual_mode, write_dir
from .files import write_atomic

_SHIM = "# snnc.load shares one runtime between all loaded models\nfrom snnc.runtime.support import *  # noqa: F401,F403\n"


def _fingerprint(sources: dict) -> str:
    """The cache key of a file's package: snnc's version and generator sources, every source read (by name)."""
    parts = [__version__, generator_hash()]
    for name in sorted(sources):
        parts += [name, sources[name].text]
    return digest(*parts)[:16]


def import_package(name: str, folder: str | Path) -> ModuleType:
    """The package in `folder` (a generated one) under the module name `name`, imported once per process."""
    if name in sys.modules:
        return sys.modules[name]
    trusted(Path(folder))
    spec = importlib.util.spec_from_file_location(name, Path(folder) / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
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
        """A network class by name; without one, the file's first network."""
        if not self.networks:
            raise SnncError(f"{self.module.file} defines no network", hint="add 'network Name { ... }' to the file")
        if name is None:
            return next(iter(self.networks.values()))
        if name not in self.networks:
            from ..compiler.source import did_you_mean

            raise SnncError(f"no network '{name}' in {self.module.file}",
                            hint=did_you_mean(name, self.networks) or f"networks: {', '.join(self.networks)}")
        return self.networks[name]

    def model_hash(self, name: str | None = None) -> str:
        """What a checkpoint of this network is tied to: its content, never where it sits. The network's IR
        and that of every neuron it uses (from this file or an import), without source positions and
        without the file names they came from: the same model by any path, from any folder, or copied
        elsewhere has the same hash; an edit of a comment or of another network leaves it too."""
        cls = self.network_class(name)
        net_ir = next(n for n in self.module.networks if n.name == cls.__name__)
        used = sorted({layer.op.neuron for layer in net_ir.layers if layer.op.kind == "neuron"})
        content = [_placeless(net_ir)] + [_placeless(self.module.neuron(n)) for n in used]
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def _placeless(node: ir.Node):
    """A node as plain data without the names of the files it was read from."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "file"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(node.model_dump(mode="json"))


def load(path: str | Path) -> Library:
    checked = check_file(path)  # before torch is imported (by ops): a mistake in the file is reported at once
    from . import ops

    module, sources = checked.module, checked.sources
    key = _fingerprint(sources)
    name = f"snnc_gen_{package_name(module.file)}_{key}"
    target = subdir("packages") / name
    if not (target / "__init__.py").exists():
        write_dir({**render_package(checked), RUNTIME_FILE: _SHIM}, target)
    pkg = import_package(name, target)
    ops.install()
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
    """`snnc build`: a standalone package (imports only torch) plus the sources of the kernels it uses."""
    compiled = compile_file(path)
    module = compiled.module
    files = {**render_package(compiled.checked), **render_kernels(compiled, backends.renderers())}
    target = Path(out_dir) / package_name(module.file)
    if target.exists() and not _is_build(target):
        raise SnncError(f"{target} exists and is not a package snnc built; snnc will not replace it",
                        hint="choose another -o directory, or move that folder away")
    runtime_text = (Path(__file__).parent / "support.py").read_text()
    delays_text = (Path(__file__).parent / "delays.py").read_text()  # the runtime's own module for dcls layers
    try:
        write_atomic(target, {**files, RUNTIME_FILE: runtime_text, "delays.py": delays_text},
                     mode=usual_mode(folder=True))
    except OSError as exc:
        raise SnncError(f"cannot write {target}: {exc.strerror}", hint="choose a writable --out directory") from None
    return target
