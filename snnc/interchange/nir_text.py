"""NIR graphs as text: a canonical dump (golden files, reviews) and the CLI's one-line-per-neuron summary."""
from __future__ import annotations

import json

import numpy as np

from .nir_export import META_KEY


def dump(graph, indent: str = "") -> str:
    """The graph as stable text, nodes in the file's order: types, shapes, parameters (a repeated value once),
    a digest of each weight array; metadata as pretty JSON. Independent of HDF5's byte layout."""
    import hashlib

    import nir

    lines = []
    for name in graph.nodes:
        node = graph.nodes[name]
        if isinstance(node, nir.NIRGraph):
            lines.append(f"{indent}{name}: NIRGraph")
            lines.append(dump(node, indent + "    "))
            continue
        fields = []
        for key, v in sorted(node.to_dict().items()):
            if key in ("type", "metadata"):
                continue
            a = np.asarray(v)
            if a.dtype.kind in "fiu" and a.size > 1 and np.all(a == a.flat[0]):
                fields.append(f"{key}={a.flat[0].item()!r} x {list(a.shape)}")
            elif a.dtype.kind in "f" and a.size > 1:
                digest = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
                fields.append(f"{key}={a.dtype}{list(a.shape)} sha256:{digest}")
            else:
                fields.append(f"{key}={a.tolist()!r}")
        lines.append(f"{indent}{name}: {type(node).__name__} " + " ".join(fields))
    lines += [f"{indent}edge {a} -> {b}" for a, b in graph.edges]
    meta = getattr(graph, "metadata", None) or {}
    for key in sorted(meta):
        lines.append(f"{indent}metadata {key}:")
        lines += [f"{indent}  {line}" for line in str(meta[key]).splitlines()]
    return "\n".join(lines)


def summary(graph) -> list[str]:
    """One line per neuron node: the NIR neuron it became (for the CLI)."""
    meta = json.loads(graph.metadata.get(META_KEY, "{}"))
    lines = []
    for name, info in meta.get("nodes", {}).items():
        args = ", ".join(info["arguments"])
        lines.append(f"  {name}: {info['neuron']}({args}) -> NIR {info['nir']}")
    return lines

