"""ptx: pose-guided person image generation in JAX/Flax.

Heavy modules (jax, flax, the models) are imported lazily: ``import ptx`` is cheap and sets no jax config.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["sample", "load", "list_models", "edit", "estimate_pose", "estimate_poses", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("sample", "load", "list_models"):
        from ptx import api

        return getattr(api, name)
    if name == "edit":  # the module, callable as the function (importing it binds ptx.edit to it anyway)
        import importlib

        return importlib.import_module("ptx.edit")
    if name in ("estimate_pose", "estimate_poses"):
        from ptx.pose import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module 'ptx' has no attribute {name!r}")
