"""Method names -> recipe modules, imported lazily so ``import ptx`` stays cheap.

Each ``ptx.methods.<m>`` exposes ``build(config) -> Method`` (see ``ptx.methods.protocol``).
"""

from __future__ import annotations

import importlib
from types import ModuleType

METHODS: dict[str, str] = {
    "casd": "ptx.methods.casd",
    "gfla": "ptx.methods.gfla",
    "patn": "ptx.methods.patn",
    "defgan": "ptx.methods.defgan",
    "scagan": "ptx.methods.scagan",
    "toy": "ptx.methods.toy",
}


def get_method(name: str) -> ModuleType:
    """The recipe module of ``name``; unknown names list the known ones."""
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    return importlib.import_module(METHODS[name])
