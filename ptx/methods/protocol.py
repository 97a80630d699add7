"""What a method recipe gives the generic trainer (a Protocol, not a base class).

Batches (from ``ptx.data.pipeline``; numpy on the host, leading batch axis B):
  ``source_image``, ``target_image``        uint8 (B, H, W, 3)
  ``source_keypoints``, ``target_keypoints`` float32 (B, 18, 2), (y, x) in pixels of that image, -1 = missing
  optional ``source_edge``/``target_edge`` uint8 (B, H, W); ``source_parsing``/``target_parsing`` uint8 (B, H, W)
Non-numeric entries (names) never go to the device. Methods turn images to [-1, 1] and keypoints to heatmaps on
device themselves.

Variables per player are flax variable dicts: ``params`` is trained, every other collection (``batch_stats``,
``spectral``) is state that a loss may update.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax

Variables = dict[str, Any]  # {"params": ..., "batch_stats": ..., ...}
PlayerVariables = dict[str, Variables]  # {player name: Variables}
Metrics = dict[str, jax.Array]
# A loss returns (scalar, (metrics, state updates {player: {collection: tree}})).
LossOutput = tuple[jax.Array, tuple[Metrics, dict[str, Variables]]]


@dataclasses.dataclass(frozen=True)
class Stage:
    """One training stage: which players are updated, in which order, for how many steps."""

    name: str
    num_steps: int
    players: tuple[str, ...]


class Method(Protocol):
    """A recipe: players, their losses per stage, and prediction. Knows no mesh, file or optimizer."""

    players: tuple[str, ...]

    def init(self, rng: jax.Array, batch: dict[str, Any], stage: str) -> PlayerVariables:
        """Fresh variables of every player the stage uses (shapes from ``batch``)."""
        ...

    def loss(
        self, stage: str, player: str, variables: PlayerVariables, batch: dict[str, Any], rng: jax.Array
    ) -> LossOutput:
        """Loss of ``player`` (differentiated w.r.t. ``variables[player]['params']`` by the trainer)."""
        ...

    def predict(self, variables: PlayerVariables, batch: dict[str, Any]) -> dict[str, jax.Array]:
        """Inference outputs; at least ``image`` float (B, H, W, 3) in [-1, 1]."""
        ...
