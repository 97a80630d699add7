"""PATN recipe (Zhu et al., CVPR 2019), and the pSSIM study's losses (Shi et al., BMVC 2020) as presets of it.

Players, updated in the original's order each step: ``gen`` (``PATNetwork``), ``disc_image`` (D_PP, judges
``cat(image, source image)``), ``disc_pose`` (D_PB, judges ``cat(image, target pose maps)``). One stage, ``train``.

Generator loss (weights ``config.loss``; a zero weight removes the term from the graph)::

    l1 * mean|fake - target| + perceptual * mean|vgg19_relu1_2(fake) - vgg19_relu1_2(target)|
    + ssim * (1 - SSIM) + pssim * (1 - pSSIM) + style * Gram-L1(relu1_2)
    + gan * (GAN(D_PB(fake)) + GAN(D_PP(fake))) / 2

PATN (``--L1_type l1_plus_perL1``) sets l1/perceptual/gan; the pSSIM paper setting
(``FPart_BSSIM_plus_perL1_L1``) sets perceptual/pssim/gan with l1 = 0 (``ptx.losses.pssim.RECONSTRUCTION_TERMS``
lists every ``--L1_type``). Each critic: ``gan * 0.5 * (GAN(real, 1) + GAN(fake from the image pool, 0))`` (the
original scales the D loss by lambda_GAN too). GAN modes: ``lsgan`` (fashion) or ``nsgan`` = BCE on logits
(market's sigmoid + BCELoss). VGG input: [-1, 1] -> [0, 1] -> ImageNet mean/std (card section 3).

Everything trains in train mode as the original: dropout on (rng ``dropout``), batch norm on batch statistics
with running statistics updated by the step's one generator forward (market). As in the original, the generator
runs once per step: G is updated first, then both critics train on that same fake (same dropout mask). The
frozen VGG19 (relu1_2) is ``frozen(stage)["vgg19"]``, outside the train state; the image pools (market: 50) are
the critics' ``pool`` collections.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp

from ptx.data.heatmaps import gaussian_heatmaps, point_maps
from ptx.losses import gan, perceptual, pssim
from ptx.methods.common import NoPairHooks, model_fields, resolve_vgg, to_unit, vgg_subset
from ptx.methods.protocol import Frozen, LossOutput, Outputs, PlayerVariables, StateUpdates
from ptx.models import patn as models
from ptx.nn import vgg as vgg_lib

PLAYERS = ("gen", "disc_image", "disc_pose")
STAGE = "train"
VGG_LAYER = "relu1_2"  # --perceptual_layers 3: torchvision features[0..3]
TERMS = ("l1", "perceptual", "ssim", "pssim", "style", "gan")
# PATN's README weights; market uses l1 = perceptual = 10 with nsgan and a 50-image pool.
DEFAULT_WEIGHTS: dict[str, float] = {
    "l1": 1.0,
    "perceptual": 1.0,
    "ssim": 0.0,
    "pssim": 0.0,
    "style": 0.0,
    "gan": 5.0,
}


@dataclasses.dataclass(frozen=True)
class Options:
    """Recipe settings that are not architecture (``config.loss`` and a few top-level keys)."""

    weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    gan_mode: str = "lsgan"
    pool_size: int = 0  # pix2pix image pool per critic; 0 = none (fashion)
    win_size: int = 7  # (p)SSIM window of the pSSIM train scripts
    win_sigma: float = 0.8
    vgg_path: str = ""
    vgg_fallback_random: bool = False


def image_pool(pool: Mapping[str, jax.Array], images: jax.Array, rng: jax.Array) -> tuple[jax.Array, dict]:
    """pix2pix ``ImagePool.query``: fill the pool first; then each image is, with p = 0.5, swapped with a random
    stored one (which is returned instead). ``pool`` = {"images": (N, ...), "count": int32}."""
    size = pool["images"].shape[0]

    def one(carry, xs):
        stored, count = carry
        image, key = xs
        k_swap, k_idx = jax.random.split(key)
        filling = count < size
        swap = (~filling) & (jax.random.uniform(k_swap) > 0.5)
        idx = jnp.where(filling, jnp.minimum(count, size - 1), jax.random.randint(k_idx, (), 0, size))
        out = jnp.where(swap, stored[idx], image)
        stored = jnp.where(filling | swap, stored.at[idx].set(image), stored)
        return (stored, count + filling.astype(count.dtype)), out

    keys = jax.random.split(rng, images.shape[0])
    (stored, count), out = jax.lax.scan(one, (pool["images"], pool["count"]), (images, keys))
    return out, {"images": stored, "count": count}


class PATN(NoPairHooks):
    """The recipe (``ptx.methods.protocol.Method``)."""

    players = PLAYERS
    generator = "gen"
    capabilities = frozenset()
    sample_fields = ()

    def __init__(self, cfg: models.Config, options: Options):
        self.cfg = cfg
        self.options = options
        unknown = sorted(set(options.weights) - set(TERMS))
        if unknown:
            raise ValueError(f"PATN loss weights {unknown} are not terms; known: {TERMS}")
        self.weights = {**{t: 0.0 for t in TERMS}, **{k: float(v) for k, v in options.weights.items()}}
        self.gen = models.Generator(cfg)
        self.disc = models.Discriminator(cfg)
        self.vgg = vgg_lib.VGG("vgg19", layers=(VGG_LAYER,))
        self._vgg_params: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------------ inputs

    def pose_maps(self, keypoints: jax.Array, size: tuple[int, int]) -> jax.Array:
        if self.cfg.heatmap == "onehot":  # the fashion script's uint8 truncation (integer CSV coordinates)
            kps = jnp.where(keypoints == -1, -1.0, jnp.round(keypoints))
            return point_maps(kps, size, keep_outside=True)
        return gaussian_heatmaps(keypoints, size, self.cfg.heatmap_sigma, keep_outside=True)

    def inputs(self, batch: Mapping[str, Any]) -> dict[str, jax.Array]:
        source, target = to_unit(batch["source_image"]), to_unit(batch["target_image"])
        size = source.shape[1:3]
        target_pose = self.pose_maps(batch["target_keypoints"], size)
        pose = jnp.concatenate([self.pose_maps(batch["source_keypoints"], size), target_pose], axis=-1)
        return {"source": source, "target": target, "pose": pose, "target_pose": target_pose}

    def frozen(self, stage: str = STAGE) -> Frozen:
        """VGG19 up to relu1_2 (numpy, loaded once) when a perceptual or style term is on; else nothing."""
        self._check_stage(stage)
        if not (self.weights["perceptual"] or self.weights["style"]):
            return {}
        if self._vgg_params is None:
            params = resolve_vgg(
                self.options.vgg_path, self.options.vgg_fallback_random, needed_by="PATN's perceptual losses"
            )
            self._vgg_params = vgg_subset(params, (VGG_LAYER,))
        return {"vgg19": self._vgg_params}

    # ------------------------------------------------------------------------------------------ init

    def init(self, rng: jax.Array, batch: Mapping[str, Any], stage: str = STAGE) -> PlayerVariables:
        self._check_stage(stage)
        x = self.inputs(batch)
        g_rng, pp_rng, pb_rng = jax.random.split(rng, 3)
        gen = dict(self.gen.init({"params": g_rng}, x["source"], x["pose"]))
        out = {"gen": gen}
        for player, key, cond in (
            ("disc_image", pp_rng, x["source"]),
            ("disc_pose", pb_rng, x["target_pose"]),
        ):
            d_in = jnp.concatenate([x["target"], cond], axis=-1)
            disc = dict(self.disc.init({"params": key}, d_in))
            if self.options.pool_size:
                images = jnp.zeros((self.options.pool_size, *d_in.shape[1:]), d_in.dtype)
                disc["pool"] = {"images": images, "count": jnp.zeros((), jnp.int32)}
            out[player] = disc
        return out

    # ------------------------------------------------------------------------------------------ pieces

    @staticmethod
    def _check_stage(stage: str) -> None:
        if stage != STAGE:
            raise ValueError(f"PATN has one stage {STAGE!r}, not {stage!r}")

    def _generate(self, gen_vars: Mapping[str, Any], x, rng: jax.Array) -> tuple[jax.Array, dict]:
        """Train-mode generator: dropout on, batch statistics; returns (image, batch_stats updates)."""
        variables = {k: v for k, v in gen_vars.items() if k in ("params", "batch_stats")}
        out, upd = self.gen.apply(
            variables, x["source"], x["pose"], train=True, rngs={"dropout": rng}, mutable=["batch_stats"]
        )
        return out["image"], dict(upd)

    def _disc(self, disc_vars: Mapping[str, Any], image: jax.Array, rng: jax.Array) -> tuple[jax.Array, dict]:
        variables = {k: v for k, v in disc_vars.items() if k in ("params", "batch_stats")}
        logits, upd = self.disc.apply(
            variables, image, train=True, rngs={"dropout": rng}, mutable=["batch_stats"]
        )
        return logits, dict(upd)

    def _condition(self, player: str, x) -> jax.Array:
        return x["source"] if player == "disc_image" else x["target_pose"]

    # ------------------------------------------------------------------------------------------ losses

    def forward(
        self, stage: str, variables: PlayerVariables, frozen: Frozen, batch: Mapping[str, Any], rng: jax.Array
    ) -> tuple[Outputs, StateUpdates]:
        """The step's one train-mode generator pass (dropout drawn from ``rng``): ``{image}`` and G's running
        statistics."""
        del frozen
        self._check_stage(stage)
        fake, gen_upd = self._generate(variables["gen"], self.inputs(batch), rng)
        return {"image": fake}, {"gen": gen_upd}

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
        self._check_stage(stage)
        x = self.inputs(batch)
        if player == "gen":
            return self._gen_loss(variables, frozen, x, batch, outputs["image"], rng)
        if player in ("disc_image", "disc_pose"):
            return self._disc_loss(player, variables, x, outputs["image"], rng)
        raise ValueError(f"PATN has players {PLAYERS}, not {player!r}")

    def _gen_loss(
        self, variables: PlayerVariables, frozen: Frozen, x, batch, fake, rng: jax.Array
    ) -> LossOutput:
        w, opt = self.weights, self.options
        pp_rng, pb_rng = jax.random.split(rng)
        target = x["target"]
        terms: dict[str, jax.Array] = {}
        if w["l1"]:
            terms["l1"] = jnp.mean(jnp.abs(fake - target))
        if w["perceptual"] or w["style"]:
            vgg = {"params": frozen["vgg19"]}
            feats_fake = self.vgg.apply(vgg, perceptual.vgg_input(fake, "imagenet"))
            feats_real = jax.lax.stop_gradient(self.vgg.apply(vgg, perceptual.vgg_input(target, "imagenet")))
            if w["perceptual"]:
                terms["perceptual"] = perceptual.content_loss(feats_fake, feats_real, {VGG_LAYER: 1.0})
            if w["style"]:
                terms["style"] = pssim.gram_style(feats_fake[VGG_LAYER], feats_real[VGG_LAYER])
        if w["ssim"]:
            terms["ssim"] = 1.0 - pssim.ssim_value(fake, target, opt.win_size, opt.win_sigma)
        if w["pssim"]:
            masks = pssim.part_masks(batch["target_keypoints"], fake.shape[1:3])
            terms["pssim"] = 1.0 - pssim.part_ssim(fake, target, masks, opt.win_size, opt.win_sigma)
        updates: dict[str, dict] = {}
        if w["gan"] and "disc_image" in variables and "disc_pose" in variables:
            adv = []
            for player, key in (("disc_pose", pb_rng), ("disc_image", pp_rng)):
                d_in = jnp.concatenate([fake, self._condition(player, x)], axis=-1)
                logits, updates[player] = self._disc(variables[player], d_in, key)
                adv.append(gan.generator_loss(logits, opt.gan_mode))
            terms["gan"] = 0.5 * (adv[0] + adv[1])
        total = sum(w[k] * v for k, v in terms.items())
        return total, (terms, updates)

    def _disc_loss(self, player: str, variables: PlayerVariables, x, fake, rng: jax.Array) -> LossOutput:
        pool_rng, real_rng, fake_rng = jax.random.split(rng, 3)
        cond = self._condition(player, x)
        fake_in = jax.lax.stop_gradient(jnp.concatenate([fake, cond], axis=-1))
        disc_vars = dict(variables[player])
        updates: dict[str, Any] = {}
        if "pool" in disc_vars:
            fake_in, updates["pool"] = image_pool(disc_vars["pool"], fake_in, pool_rng)
        real_logits, upd = self._disc(disc_vars, jnp.concatenate([x["target"], cond], axis=-1), real_rng)
        disc_vars.update(upd)
        fake_logits, upd = self._disc(disc_vars, fake_in, fake_rng)
        updates.update(upd)
        total = self.weights["gan"] * gan.discriminator_loss(real_logits, fake_logits, self.options.gan_mode)
        metrics = {"real_logit": jnp.mean(real_logits), "fake_logit": jnp.mean(fake_logits)}
        return total, (metrics, {player: updates})

    # ------------------------------------------------------------------------------------------ predict

    def predict(
        self, variables: PlayerVariables, batch: Mapping[str, Any], rng: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """Eval mode (batch norm running statistics, no dropout), as the original's test.py."""
        x = self.inputs(batch)
        gen = {k: v for k, v in variables["gen"].items() if k in ("params", "batch_stats")}
        return {"image": self.gen.apply(gen, x["source"], x["pose"])["image"]}


def build(config) -> PATN:
    """``config.model``: ``ptx.models.patn.Config`` fields; ``config.loss``: term weights plus ``gan_mode``,
    ``pool_size``, ``win_size``, ``win_sigma``; top level: ``vgg_path``, ``vgg_fallback_random``."""
    model = model_fields(models.Config, config.model, "patn")
    if "heatmap_sigma" in config and "heatmap_sigma" not in model:
        model["heatmap_sigma"] = float(config.heatmap_sigma)
    loss = dict(config.get("loss", {}))
    settings = {k: loss.pop(k) for k in ("gan_mode", "pool_size", "win_size", "win_sigma") if k in loss}
    for stage in config.get("stages", ()):
        if stage.name != STAGE:
            raise ValueError(f"PATN config.stages: one stage named {STAGE!r} expected, got {stage.name!r}")
    options = Options(
        weights={k: float(v) for k, v in loss.items()},
        gan_mode=str(settings.get("gan_mode", "lsgan")),
        pool_size=int(settings.get("pool_size", 0)),
        win_size=int(settings.get("win_size", 7)),
        win_sigma=float(settings.get("win_sigma", 0.8)),
        vgg_path=str(config.get("vgg_path", "")),
        vgg_fallback_random=bool(config.get("vgg_fallback_random", False)),
    )
    return PATN(models.Config(**model), options)
