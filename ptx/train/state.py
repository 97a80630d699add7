"""The train state: one pytree that the step donates, the mesh shards and Orbax saves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from ptx.methods.protocol import PlayerVariables


@flax.struct.dataclass
class TrainState:
    """``step`` counts steps within the current stage; ``rng`` is a raw uint32 key (checkpoint friendly).

    ``params[player]`` are trained; ``state[player]`` holds that player's other collections (``batch_stats``,
    ``spectral``...); ``opt_state`` has an entry only for players the stage updates (frozen ones have none).
    """

    step: jax.Array
    rng: jax.Array
    params: dict[str, Any]
    state: dict[str, Any]
    opt_state: dict[str, Any]

    def variables(self) -> PlayerVariables:
        """Flax variable dicts per player, as methods take them."""
        return {p: {"params": self.params[p], **self.state[p]} for p in self.params}


def create(
    rng: jax.Array, variables: PlayerVariables, txs: Mapping[str, optax.GradientTransformation]
) -> TrainState:
    """A fresh state at step 0 from the method's initial variables and the optimizers of updated players."""
    params = {p: v["params"] for p, v in variables.items()}
    state = {p: {k: c for k, c in v.items() if k != "params"} for p, v in variables.items()}
    unknown = sorted(set(txs) - set(params))
    if unknown:
        raise ValueError(
            f"optimizers for players {unknown} that the method did not initialise ({sorted(params)})"
        )
    opt_state = {p: tx.init(params[p]) for p, tx in txs.items()}
    return TrainState(step=jnp.zeros((), jnp.int32), rng=rng, params=params, state=state, opt_state=opt_state)


def carry_matching(source: Any, target: Any) -> tuple[Any, int, int]:
    """``target`` with every leaf whose key path and shape also occur in ``source`` replaced by that leaf.

    Returns (tree, carried, total). This is how a stage starts from the previous stage's final weights (and
    how converted weights are loaded): modules kept under the same path carry over, new ones stay fresh.
    """
    flat_src = {path: leaf for path, leaf in jax.tree_util.tree_leaves_with_path(source)}
    carried = 0

    def pick(path, leaf):
        nonlocal carried
        old = flat_src.get(path)
        if old is not None and tuple(old.shape) == tuple(leaf.shape):
            carried += 1
            return old.astype(leaf.dtype) if old.dtype != leaf.dtype else old
        return leaf

    tree = jax.tree_util.tree_map_with_path(pick, target)
    return tree, carried, len(jax.tree_util.tree_leaves(target))
