"""PyTorch re-implementations of the methods' training steps, for the benchmarks' "PyTorch" column.

Why: the original repositories cannot run here (GFLA's local-attention and resample ops are CUDA extensions,
and their code may not be copied into ptx), yet a benchmark should say how ptx compares with PyTorch doing the
same work on the same machine. So each ``<method>.py`` here is our own PyTorch implementation of the
original's networks, losses and ``optimize_parameters``, with module names equal to the original's state-dict
names so that the golden fixtures (recorded from the original code) load into it and check it
(``tests/test_torch_reference_<method>.py``). CUDA-only ops are written with torch-native CPU ops.

Each module offers ``torch_reference(config, batch_size, *, stage=None) -> step()``: builds the model from a ptx
config with random weights and one synthetic batch, and returns a callable doing one optimisation step.
Nothing in ptx imports this package; it needs torch, which ptx itself does not.

Threads: ``torch_reference`` uses as many intra-op threads as jax's CPU client has cores. ``get`` imports torch
with ``OMP_WAIT_POLICY=PASSIVE`` unless the variable is set (or torch was imported before): with the default
active spin-wait, torch's OpenMP threads on cores shared with other busy processes lose most of their time
waiting for each other at every parallel region (measured here: GFLA's tiny full step 11 s with the default
vs 1.05 s passive, 1.1 s with one thread, at load 6 on 2 cores). ``wait_policy()`` says which is in effect.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Callable
from typing import Any


def get(method_name: str) -> types.ModuleType | None:
    """``benchmarks.torch_reference.<method_name>``, or None when there is none or torch does not import."""
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when torch loads its OpenMP runtime
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    try:
        return importlib.import_module(f"{__name__}.{method_name}")
    except ModuleNotFoundError as e:
        if e.name == f"{__name__}.{method_name}":
            return None
        raise


def wait_policy() -> str:
    """The OpenMP wait policy torch's threads were started with (as far as the environment tells)."""
    return os.environ.get("OMP_WAIT_POLICY", "active (default)")


def image_grad_step(gen, generate: Callable[[], Any]) -> Callable[[], None]:
    """A step doing ``generate()`` (the generator's forward, returning the image) and the gradient of
    mean|image| for every parameter of ``gen``, with no optimizer: the work ``benchmarks.generator`` times
    for ptx's ``predict``. ``step.networks`` names the timed network for the benchmarks' parameter counts."""

    def step() -> None:
        gen.zero_grad(set_to_none=True)
        generate().abs().mean().backward()

    step.networks = {"gen": gen}
    return step


def adam(params, spec, *, method: str, default_lr: float | None = None):
    """``torch.optim.Adam`` from a ptx optimizer spec (``name``, ``lr``, ``b1`` = 0.5 and ``b2`` = 0.999 by
    default, as the originals): the one optimizer the references implement. Without ``default_lr`` the spec
    must give ``lr``."""
    import torch

    name = str(spec.get("name", "adam"))
    if name != "adam":
        raise ValueError(f"torch reference of {method}: optimizer {name!r} is not supported (only adam)")
    lr = spec["lr"] if default_lr is None else spec.get("lr", default_lr)
    betas = (float(spec.get("b1", 0.5)), float(spec.get("b2", 0.999)))
    return torch.optim.Adam(params, lr=float(lr), betas=betas)
