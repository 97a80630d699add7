"""What the PyTorch-reference tests share: the reference's state dicts as numpy, ptx's step losses on the same
weights and batch, and their term-by-term comparison."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import jax
import numpy as np
import pytest

RTOL = 1e-4
# Loss values do not depend on XLA's optimisations: compile them fast.
FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def numpy_state(net) -> dict[str, np.ndarray]:
    """A torch module's state dict as numpy arrays (the converters' input)."""
    return {k: v.detach().numpy() for k, v in net.state_dict().items()}


def ptx_step_losses(
    method, stage: str, players: Iterable[str], variables, frozen, batch, key
) -> dict[str, Any]:
    """ptx's ``Method.forward`` + ``Method.loss`` for ``players``: each player's total and the generator's
    terms as ``term/<name>``, compiled once."""
    players = tuple(players)

    def losses(variables, batch):
        outputs, _ = method.forward(stage, variables, frozen, batch, key)
        out = {p: method.loss(stage, p, variables, frozen, batch, outputs, key) for p in players}
        totals = {p: total for p, (total, _) in out.items()}
        return totals | {f"term/{k}": v for k, v in out["gen"][1][0].items()}

    return jax.jit(losses).lower(variables, batch).compile(FAST)(variables, batch)


def assert_losses_equal(got: Mapping[str, Any], want: Mapping[str, float]) -> None:
    """The same loss names, and every value equal to ``RTOL`` (1e-6 absolute near zero)."""
    assert set(got) == set(want)
    for name, value in want.items():
        assert float(got[name]) == pytest.approx(value, rel=RTOL, abs=1e-6), name
