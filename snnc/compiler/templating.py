"""The one template environment: every generated artifact (Python modules, kernels, input kernels) is
rendered from `templates/` through it.

Filters: `py` and `tensor_py` print an IR expression as Python, `text` as `.snn` source, `cvar` a user name
as its C identifier, `pyrepr` a value as a Python literal, `comment` any text safely inside a comment.
Printers that depend on one kernel's names (the C kernels' `c` and `cb`) are added per render, on an
overlay (`environment(filters)`).
"""
from __future__ import annotations

import re
from functools import lru_cache

import jinja2

from ..version import __version__
from .printers import PythonPrinter, SnnPrinter, cname
from .resources import resource_dir


def comment(text: object) -> str:
    """Make text safe inside a comment or docstring: printable ASCII only, no quotes or backslashes."""
    return re.sub(r"[^A-Za-z0-9 _.,:;=+\-*/()\[\]<>^#@%&|!?{}~]", "?", str(text))


@lru_cache(maxsize=1)
def _base() -> jinja2.Environment:
    """Made once: jinja compiles each template once per environment (overlays share the cache)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["py"] = lambda e, tensors=(): PythonPrinter(set(tensors))(e)
    env.filters["tensor_py"] = lambda e, tensors=(), like="x", unshaped=(): PythonPrinter(set(tensors)).tensor(
        e, like, unshaped)
    env.filters["text"] = SnnPrinter()
    env.filters["cvar"] = cname
    env.filters["pyrepr"] = repr
    env.filters["comment"] = comment
    env.globals["version"] = __version__
    return env


def environment(filters: dict | None = None) -> jinja2.Environment:
    """The environment, or an overlay of it with `filters` added (printers that know one kernel's names)."""
    if not filters:
        return _base()
    env = _base().overlay()
    env.filters.update(filters)
    return env


def render(template: str, filters: dict | None = None, **variables) -> str:
    return environment(filters).get_template(template).render(**variables)
