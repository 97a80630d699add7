"""What a method recipe gives the generic trainer and the sampler (Protocols, not base classes).

Batches (from ``ptx.data.pipeline``; numpy on the host, leading batch axis B):
  ``source_image``, ``target_image``        uint8 (B, H, W, 3)
  ``source_keypoints``, ``target_keypoints`` float32 (B, 18, 2), (y, x) in pixels of that image, -1 = missing
  optional ``source_edge``/``target_edge`` uint8 (B, H, W); ``source_parsing``/``target_parsing`` uint8 (B, H, W)
  and whatever the method's host transform (``Method.host_transform``) adds per pair.
Non-numeric entries (names) never go to the device. Methods turn images to [-1, 1] and keypoints to heatmaps on
device themselves.

One training step (``ptx.train.step``) runs the generator ONCE (``Method.forward``), as the originals do:

1. ``outputs, state_updates = forward(stage, variables, frozen, batch, rng)``, differentiated with ``jax.vjp``
   with respect to ``variables[method.generator]['params']``;
2. the stage's players are updated in the stage's order (GFLA: ``disc`` then ``gen``; PATN and the other
   two-critic recipes: ``gen`` then the critics). Each player's ``loss`` receives that pass's ``outputs``: for a
   critic they are constants (its gradient never reaches the generator), for the generator the trainer
   differentiates the loss with respect to ``outputs`` and pulls the result back through the one forward pass.
   A player later in the order sees the earlier players' updated params and state.

So a generator loss may use the generator's params only through ``outputs``: everything it needs from the
generator pass (images, flows, attention maps, style codes) must be an output of ``forward``.

Frozen networks (a pretrained VGG19, an Inception) belong to the method, not to the train state: ``frozen(stage)``
returns them as host arrays; the trainer puts them on the devices once, replicated, and passes them to the
jitted step as an argument that is never donated and never checkpointed. A first-stage network trained by the
same run and kept fixed later (``freeze`` in the stage config) is different: it is the run's own result, so it
stays a player of the train state, without an optimizer, and sampling finds it in the checkpoint.

Variables per player are flax variable dicts: ``params`` is trained, every other collection (``batch_stats``,
``spectral``, an image ``pool``) is state that ``forward`` or a loss may update.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np

Variables = dict[str, Any]  # {"params": ..., "batch_stats": ..., ...}
PlayerVariables = dict[str, Variables]  # {player name: Variables}
Frozen = dict[str, Any]  # {network name: params}, e.g. {"vgg19": {...}}; empty when the stage needs none
Metrics = dict[str, jax.Array]
Outputs = dict[str, Any]  # the generator pass: arrays (or pytrees of arrays) named by the method
StateUpdates = dict[str, Variables]  # {player: {collection: new tree}}
# A loss returns (scalar, (metrics, state updates {player: {collection: tree}})).
LossOutput = tuple[jax.Array, tuple[Metrics, StateUpdates]]

# Optional capabilities a method declares in ``capabilities`` (never discovered with hasattr).
ENCODE_SOURCE = "encode_source"  # ``SourceEncoder``: encode a source once, render many poses (animation)
EDIT_REGIONS = "edit_regions"  # region-wise style editing (CASD): see ``ptx.edit``

# Optional batch fields a method may ask for at sampling time (``Method.sample_fields``): the sampler computes
# edges from the photo (``ptx.data.edges``) and needs parsing maps from the user.
SOURCE_EDGE = "source_edge"
SOURCE_PARSING = "source_parsing"
SAMPLE_FIELDS = (SOURCE_EDGE, SOURCE_PARSING)

# Per-pair host work (Def-GAN's affine warps and part masks, SCA-GAN's shifted edge crops) and pair filters
# (Def-GAN drops pairs without hips and shoulders) run in the input pipeline (``ptx.data.pipeline``), once per
# pair, on numpy, before batching: a HostTransform maps one pair's example dict (no batch axis) to a dict with
# fields added or replaced; a PairFilter says whether to keep a pair.
HostTransform = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
PairFilter = Callable[[dict[str, np.ndarray]], bool]


@dataclasses.dataclass(frozen=True)
class Stage:
    """One training stage: which players are updated, in which order, for how many steps."""

    name: str
    num_steps: int
    players: tuple[str, ...]


@runtime_checkable
class Method(Protocol):
    """A recipe: players, the generator pass, per-player losses, prediction. Knows no mesh, file or optimizer."""

    players: tuple[str, ...]
    generator: str  # the player whose ``forward`` every step runs once (e.g. "gen")
    capabilities: frozenset[str]  # subset of {ENCODE_SOURCE, EDIT_REGIONS}
    sample_fields: tuple[str, ...]  # subset of SAMPLE_FIELDS the predict batch needs besides images/keypoints

    def init(self, rng: jax.Array, batch: Mapping[str, Any], stage: str) -> PlayerVariables:
        """Fresh variables of every player the stage uses (shapes from ``batch``); no frozen networks."""
        ...

    def frozen(self, stage: str) -> Frozen:
        """Pretrained fixed networks the stage's losses use, as host (numpy) arrays; loaded once and cached."""
        ...

    def forward(
        self, stage: str, variables: PlayerVariables, frozen: Frozen, batch: Mapping[str, Any], rng: jax.Array
    ) -> tuple[Outputs, StateUpdates]:
        """The one training-mode generator pass of a step: (outputs, state updates of any player)."""
        ...

    def loss(
        self,
        stage: str,
        player: str,
        variables: PlayerVariables,
        frozen: Frozen,
        batch: Mapping[str, Any],
        outputs: Outputs,
        rng: jax.Array,
    ) -> LossOutput:
        """Loss of ``player`` given this step's ``outputs`` (differentiated w.r.t. ``variables[player]['params']``
        for critics, w.r.t. ``outputs`` for the generator)."""
        ...

    def predict(
        self, variables: PlayerVariables, batch: Mapping[str, Any], rng: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """Inference outputs; at least ``image`` float (B, H, W, 3) in [-1, 1]. ``rng`` feeds methods that draw
        noise at test time (SCA-GAN's z); the others ignore it."""
        ...

    def host_transform(self, split: str) -> HostTransform | None:
        """Per-pair numpy work the input pipeline runs before batching (None: nothing)."""
        ...

    def pair_filter(self, split: str) -> PairFilter | None:
        """Which pairs of ``split`` the method can train or evaluate on (None: all)."""
        ...


@runtime_checkable
class SourceEncoder(Protocol):
    """``ENCODE_SOURCE``: the source encoded once and reused across many target poses."""

    def encode_source(self, variables: PlayerVariables, batch: Mapping[str, Any]) -> Any: ...

    def predict_from_source(
        self, variables: PlayerVariables, feats: Any, batch: Mapping[str, Any]
    ) -> dict[str, jax.Array]: ...


def host_arrays(tree: Any) -> Any:
    """A pytree as numpy arrays (frozen networks are handed to the trainer on the host)."""
    return jax.tree.map(np.asarray, tree)
