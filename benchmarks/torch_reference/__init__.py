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
"""

from __future__ import annotations

import importlib
import types


def get(method_name: str) -> types.ModuleType | None:
    """``benchmarks.torch_reference.<method_name>``, or None when there is none or torch does not import."""
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
