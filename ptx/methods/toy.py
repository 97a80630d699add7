"""A tiny two-player (``gen``, ``disc``) recipe: the trainer's test subject and a smoke-test method.

The generator maps the source image, conditioned on the target keypoints (a FiLM shift from their normalised
coordinates), to the target image; the discriminator is a small patch critic. Losses: weighted L1 plus LSGAN.
A stage initialises the players it lists (e.g. ``warmup`` with the generator alone, then ``full`` with both). The
generator has a batch norm so that per-player state collections go through the trainer too, and the critic sees
RNG-driven instance noise so that the trainer's RNG plumbing matters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ptx.methods.common import NoPairHooks, model_fields, to_unit
from ptx.methods.protocol import Frozen, LossOutput, Outputs, PlayerVariables, StateUpdates
from ptx.nn.layers import BatchNorm, Conv2d, Dense, leaky_relu


@dataclasses.dataclass(frozen=True)
class Config:
    width: int = 8
    dtype: str = "float32"  # compute dtype (params stay float32): "bfloat16" for mixed precision
    noise: float = 0.05  # instance noise on the critic's inputs


VARIANTS = {"tiny": Config(width=4), "demo": Config(width=16), "paper": Config(width=32)}


def _pose_code(keypoints: jax.Array, size: tuple[int, int]) -> jax.Array:
    """(B, 18, 2) pixel keypoints -> (B, 36) in [-1, 1]; missing joints (-1) map to 0 with a flag-free code."""
    scale = jnp.asarray([size[0], size[1]], jnp.float32)
    present = jnp.all(keypoints >= 0, axis=-1, keepdims=True)
    code = jnp.where(present, keypoints / scale * 2.0 - 1.0, 0.0)
    return code.reshape(keypoints.shape[0], -1)


class Generator(nn.Module):
    cfg: Config

    @nn.compact
    def __call__(self, source: jax.Array, pose: jax.Array, *, train: bool) -> jax.Array:
        dtype = jnp.dtype(self.cfg.dtype)
        w = self.cfg.width
        # No biases before the batch norm: their gradient is exactly zero, and Adam would turn float noise in it
        # into full-size steps.
        x = Conv2d(w, 3, padding=1, use_bias=False, dtype=dtype)(source.astype(dtype))
        x = x + Dense(w, use_bias=False)(pose.astype(jnp.float32)).astype(dtype)[:, None, None, :]
        x = leaky_relu(BatchNorm()(x, train=train))
        x = leaky_relu(Conv2d(w, 3, padding=1, dtype=dtype)(x))
        x = Conv2d(3, 3, padding=1, dtype=dtype)(x)
        return jnp.tanh(x.astype(jnp.float32))


class Critic(nn.Module):
    cfg: Config

    @nn.compact
    def __call__(self, image: jax.Array) -> jax.Array:
        dtype = jnp.dtype(self.cfg.dtype)
        x = leaky_relu(Conv2d(self.cfg.width, 4, stride=2, padding=1, dtype=dtype)(image.astype(dtype)))
        x = leaky_relu(Conv2d(self.cfg.width * 2, 4, stride=2, padding=1, dtype=dtype)(x))
        return Conv2d(1, 3, padding=1, dtype=dtype)(x).astype(jnp.float32)


class ToyMethod(NoPairHooks):
    """The recipe (see ``ptx.methods.protocol.Method``)."""

    players = ("gen", "disc")
    generator = "gen"
    capabilities = frozenset()
    sample_fields = ()

    def __init__(
        self, cfg: Config, loss_weights: dict[str, float], stage_players: dict[str, tuple[str, ...]]
    ):
        self.cfg = cfg
        self.stage_players = stage_players
        self.weights = {"l1": 10.0, "gan": 1.0, **loss_weights}
        self.gen = Generator(cfg)
        self.disc = Critic(cfg)

    def _inputs(self, batch: dict[str, Any]) -> tuple[jax.Array, jax.Array, jax.Array]:
        source = to_unit(batch["source_image"])
        pose = _pose_code(batch["target_keypoints"], source.shape[1:3])
        return source, pose, to_unit(batch["target_image"])

    def init(self, rng: jax.Array, batch: dict[str, Any], stage: str) -> PlayerVariables:
        source, pose, target = self._inputs(batch)
        g_rng, d_rng = jax.random.split(rng)
        players = self.stage_players.get(stage, self.players)
        out = {"gen": dict(self.gen.init(g_rng, source, pose, train=False))}
        if "disc" in players:
            out["disc"] = dict(self.disc.init(d_rng, target))
        return out

    def _generate(self, variables: PlayerVariables, source, pose, train: bool):
        if train:
            return self.gen.apply(variables["gen"], source, pose, train=True, mutable=["batch_stats"])
        return self.gen.apply(variables["gen"], source, pose, train=False), {}

    def frozen(self, stage: str) -> Frozen:
        del stage
        return {}

    def forward(
        self, stage: str, variables: PlayerVariables, frozen: Frozen, batch: dict[str, Any], rng: jax.Array
    ) -> tuple[Outputs, StateUpdates]:
        del stage, frozen, rng
        source, pose, _ = self._inputs(batch)
        fake, updates = self._generate(variables, source, pose, train=True)
        return {"image": fake}, {"gen": dict(updates)}

    def loss(
        self,
        stage: str,
        player: str,
        variables: PlayerVariables,
        frozen: Frozen,
        batch: dict[str, Any],
        outputs: Outputs,
        rng: jax.Array,
    ) -> LossOutput:
        _, _, target = self._inputs(batch)
        fake = outputs["image"]
        with_gan = "disc" in variables and self.weights["gan"] != 0
        if player == "gen":
            terms = {"l1": self.weights["l1"] * jnp.mean(jnp.abs(fake - target))}
            if with_gan:
                noise = self.cfg.noise * jax.random.normal(rng, fake.shape)
                terms["gan"] = self.weights["gan"] * jnp.mean(
                    (self.disc.apply(variables["disc"], fake + noise) - 1) ** 2
                )
            return sum(terms.values()), (terms, {})
        if player == "disc":
            fake = jax.lax.stop_gradient(fake)
            both = jnp.concatenate([target, fake]) + self.cfg.noise * jax.random.normal(
                rng, (2 * fake.shape[0], *fake.shape[1:])
            )
            scores = self.disc.apply(variables["disc"], both)
            real, fake_s = jnp.split(scores, 2)
            terms = {"real": jnp.mean((real - 1) ** 2), "fake": jnp.mean(fake_s**2)}
            return 0.5 * self.weights["gan"] * (terms["real"] + terms["fake"]), (terms, {})
        raise ValueError(f"toy method has players {self.players}, not {player!r}")

    def predict(
        self, variables: PlayerVariables, batch: dict[str, Any], rng: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        source, pose, _ = self._inputs(batch)
        return {"image": self._generate(variables, source, pose, train=False)[0]}


def build(config) -> ToyMethod:
    """``config.model`` holds ``Config`` fields (unknown keys raise), ``config.loss`` the loss weights."""
    model = model_fields(Config, config.model, "toy")
    stages = {s.name: tuple(s.players) + tuple(s.get("freeze", ())) for s in config.get("stages", ())}
    return ToyMethod(Config(**model), dict(config.get("loss", {})), stages)
