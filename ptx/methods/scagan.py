"""SCA-GAN recipe (Yu et al., ICME 2021): PCT-Net edge transfer first, then the IS-Net image synthesis.

Players: ``gen`` (``ptx.models.scagan.ISNet``; in stage ``pctnet`` only its ``edge_generator``, the PCT-Net,
exists), the PCT-Net's critics ``edge_disc_image`` (D_PP: ``cat(edge, source edge)``) and ``edge_disc_pose``
(D_PB: ``cat(edge, target pose maps)``), and the IS-Net's ``disc_image`` (``cat(image, source image)``) and
``disc_pose`` (``cat(image, target pose maps)``). Each step: the generator pass, the G update, then D_PP, then
D_PB, as the original (``trainer_edge.py`` / ``trainer_pose.py``).

* stage ``pctnet``: fake edges = PCT-Net(source edge EP1, target pose BP2, shifted crops BEP2) in train mode.
  G: ``l1 * |fake - EP2| + perceptual * |vgg(fake) - vgg(EP2)| + gan * (LSGAN(D_PB) + LSGAN(D_PP)) / 2``.
* stage ``isnet``: the same terms on the image against P2, plus ``cx *`` the contextual loss on relu3_2 and
  relu4_2 of ``vgg_conv.pth`` (raw [-1, 1] input; ``ptx.losses.contextual``). The PCT-Net carried from stage
  ``pctnet`` is frozen: its output is ``stop_gradient``-ed inside ``ISNet``, so its parameters receive exactly
  zero gradient and Adam leaves them bit-identical (a fresh Adam state: zero moments give zero updates). Its
  batch norm runs on batch statistics and its running statistics keep drifting, as the original's (it never
  calls ``.eval()`` while training; ``edge_batch_stats=False`` uses the stored statistics instead).
* critics: ``gan * 0.5 * (LSGAN(real, 1) + LSGAN(fake, 0))``, dropout on; no image pool (``--pool_size 0``).

Perceptual: torchvision VGG19 relu1_2 on ImageNet-normalised input (the 1-channel edges broadcast to 3).
Inputs on device: images to [-1, 1]; edges (uint8, 255 background / 0 lines) inverted to lines +1, background
-1; pose maps sigma-12 Gaussians keeping off-image tails. BEP2 (``shifted_edges``) is per-pair host work: the
method's ``host_transform`` adds it (and XDoG edges from ``ptx.data.edges`` when the data has none).
``predict`` draws z from its ``rng`` (the original draws it unseeded): the same key gives the same image.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ptx.data import edges as edge_lib
from ptx.data import shifted_edges as bep
from ptx.data.heatmaps import gaussian_heatmaps
from ptx.losses import contextual, gan, perceptual
from ptx.methods.common import model_fields, resolve_vgg, to_unit, vgg_subset
from ptx.methods.protocol import (
    SOURCE_EDGE,
    Frozen,
    HostTransform,
    LossOutput,
    Outputs,
    PlayerVariables,
    StateUpdates,
)
from ptx.models import scagan as models
from ptx.nn import vgg as vgg_lib
from ptx.nn import vgg_conv

STAGES = ("pctnet", "isnet")
PLAYERS = ("gen", "edge_disc_image", "edge_disc_pose", "disc_image", "disc_pose")
CRITICS = {"pctnet": ("edge_disc_image", "edge_disc_pose"), "isnet": ("disc_image", "disc_pose")}
TERMS = ("l1", "perceptual", "gan", "cx")
# The official scripts: lambda_A = lambda_B = 1, lambda_GAN = 5, lambda_cx = 0.1 (IS-Net only).
DEFAULT_WEIGHTS: dict[str, float] = {"l1": 1.0, "perceptual": 1.0, "gan": 5.0, "cx": 0.1}
PERCEPTUAL_LAYER = "relu1_2"  # --perceptual_layers 3


@dataclasses.dataclass(frozen=True)
class Options:
    """Recipe settings that are not architecture (``config.loss`` and a few top-level keys)."""

    weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    bep_mode: str = "compat"  # ptx.data.shifted_edges: "compat" (converted weights) or "clean"
    crop_radius: int = bep.RADIUS
    heatmap_sigma: float = bep.SIGMA
    edge_batch_stats: bool = True  # the frozen PCT-Net's batch norm during IS-Net training, as the original
    vgg_path: str = ""  # torchvision vgg19-dcbb9e9d.pth (perceptual)
    vgg_conv_path: str = ""  # Gatys' vgg_conv.pth (contextual)
    vgg_fallback_random: bool = False


def _unit_edge(edge: jax.Array) -> jax.Array:
    """uint8 (B, H, W) XDoG grey (255 background) -> (B, H, W, 1) in [-1, 1], lines +1 (ImageOps.invert,
    ToTensor, Normalize(0.5, 0.5))."""
    return ((255.0 - jnp.asarray(edge, jnp.float32)) / 255.0 - 0.5)[..., None] / 0.5


class SCAGAN:
    """The recipe (``ptx.methods.protocol.Method``)."""

    players = PLAYERS
    generator = "gen"
    capabilities = frozenset()
    sample_fields = (SOURCE_EDGE,)

    def __init__(self, cfg: models.Config, options: Options):
        unknown = sorted(set(options.weights) - set(TERMS))
        if unknown:
            raise ValueError(f"SCA-GAN loss weights {unknown} are not terms; known: {TERMS}")
        if options.bep_mode not in bep.MODES:
            raise ValueError(f"SCA-GAN bep_mode {options.bep_mode!r}; expected one of {bep.MODES}")
        self.cfg = cfg
        self.options = options
        self.weights = {**DEFAULT_WEIGHTS, **{k: float(v) for k, v in options.weights.items()}}
        self.gen = models.ISNet(cfg)
        self.pct = models.PCTNet(cfg)  # stage pctnet: gen's edge_generator subtree, applied alone
        self.disc = models.Discriminator(cfg)
        self.vgg = vgg_lib.VGG("vgg19", layers=(PERCEPTUAL_LAYER,))
        self.cx_layers = dict(contextual.SCAGAN_LAYERS)
        self.vgg_cx = vgg_lib.VGG("vgg19", layers=tuple(self.cx_layers))
        self._vgg_cache: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------------------------------ host side

    def host_transform(self, split: str) -> HostTransform:
        """Per pair: XDoG edges when the data has none, then BEP2 (``shifted_edges``, float32 (H, W, 18))."""
        del split
        return functools.partial(
            add_shifted_edges, radius=self.options.crop_radius, mode=self.options.bep_mode
        )

    def pair_filter(self, split: str) -> None:
        del split
        return None

    def _vgg_params(self, which: str) -> dict[str, Any]:
        """Frozen VGG weights (numpy), loaded once per method object."""
        if which not in self._vgg_cache:
            self._vgg_cache[which] = self._load_vgg(which)
        return self._vgg_cache[which]

    def _load_vgg(self, which: str) -> dict[str, Any]:
        opt = self.options
        if which == "vgg19":
            params = resolve_vgg(
                opt.vgg_path, opt.vgg_fallback_random, needed_by="SCA-GAN's perceptual terms"
            )
            return vgg_subset(params, (PERCEPTUAL_LAYER,))
        path = os.path.expanduser(opt.vgg_conv_path) if opt.vgg_conv_path else ""
        if path and os.path.isfile(path):
            return vgg_subset(vgg_conv.load_vgg_conv(path), self.cx_layers)
        if not opt.vgg_fallback_random:
            raise FileNotFoundError(
                f"SCA-GAN's contextual loss needs {vgg_conv.WHERE}, not found at {path!r}; pass "
                "--config.vgg_conv_path=/path/vgg_conv.pth"
            )
        warnings.warn(
            f"vgg_conv.pth not found{' at ' + path if path else ''}: the contextual loss uses seeded random VGG19 "
            "features (fine for demos and tests, not for paper numbers)",
            stacklevel=2,
        )
        return vgg_subset(vgg_lib.random_params("vgg19", seed=1), self.cx_layers)

    def frozen(self, stage: str) -> Frozen:
        """VGG19 to relu1_2 (perceptual) and, in stage ``isnet`` with a CX weight, vgg_conv to relu4_2."""
        self._check_stage(stage)
        out = {"vgg19": self._vgg_params("vgg19")} if self.weights["perceptual"] else {}
        if stage == "isnet" and self.weights["cx"]:
            out["vgg_conv"] = self._vgg_params("vgg_conv")
        return out

    # ------------------------------------------------------------------------------------------ inputs

    def inputs(self, batch: Mapping[str, Any]) -> dict[str, jax.Array]:
        """Device-side network inputs of a batch (see the module docstring)."""
        if "shifted_edges" not in batch or "source_edge" not in batch:
            raise KeyError(
                "SCA-GAN batches need 'source_edge' and 'shifted_edges': run method.host_transform(split) on "
                "each pair (ptx's input pipeline does)"
            )
        source = to_unit(batch["source_image"])
        size = source.shape[1:3]
        x = {
            "source": source,
            "source_edge": _unit_edge(batch["source_edge"]),
            "target_pose": gaussian_heatmaps(
                batch["target_keypoints"], size, self.options.heatmap_sigma, keep_outside=True
            ),
            "shifted_edges": jnp.asarray(batch["shifted_edges"], jnp.float32),
        }
        if "target_image" in batch:
            x["target"] = to_unit(batch["target_image"])
        if "target_edge" in batch:
            x["target_edge"] = _unit_edge(batch["target_edge"])
        return x

    @staticmethod
    def _check_stage(stage: str) -> None:
        if stage not in STAGES:
            raise ValueError(f"SCA-GAN stages are {STAGES}, not {stage!r}")

    def _critic_input(self, player: str, fake: jax.Array, x: Mapping[str, jax.Array]) -> jax.Array:
        cond = {
            "edge_disc_image": x["source_edge"],
            "edge_disc_pose": x["target_pose"],
            "disc_image": x["source"],
            "disc_pose": x["target_pose"],
        }[player]
        return jnp.concatenate([fake, cond], axis=-1)

    # ------------------------------------------------------------------------------------------ init

    def init(self, rng: jax.Array, batch: Mapping[str, Any], stage: str) -> PlayerVariables:
        self._check_stage(stage)
        x = self.inputs(batch)
        g_rng, *d_rngs = jax.random.split(rng, 3)
        edge_args = (x["source_edge"], x["target_pose"], x["shifted_edges"])
        if stage == "pctnet":
            gen = models.as_isnet_variables(self.pct.init({"params": g_rng}, *edge_args))
            fake = x["source_edge"]
        else:
            z = jnp.zeros((x["source"].shape[0], self.cfg.z_dim))
            gen = self.gen.init({"params": g_rng}, x["source"], *edge_args, z)
            fake = x["source"]
        out = {"gen": dict(gen)}
        for player, key in zip(CRITICS[stage], d_rngs):
            out[player] = dict(self.disc.init({"params": key}, self._critic_input(player, fake, x)))
        return out

    # ------------------------------------------------------------------------------------------ step

    def forward(
        self, stage: str, variables: PlayerVariables, frozen: Frozen, batch: Mapping[str, Any], rng: jax.Array
    ) -> tuple[Outputs, StateUpdates]:
        """Train-mode generator pass: stage ``pctnet`` -> {"edge"}; ``isnet`` -> {"image", "edge"} (z from rng)."""
        del frozen
        self._check_stage(stage)
        x = self.inputs(batch)
        gen = {k: v for k, v in variables["gen"].items() if k in ("params", "batch_stats")}
        edge_args = (x["source_edge"], x["target_pose"], x["shifted_edges"])
        if stage == "pctnet":
            pct = models.edge_variables(gen)
            out, upd = self.pct.apply(pct, *edge_args, train=True, mutable=["batch_stats"])
            return {"edge": out["edge"]}, {"gen": models.as_isnet_variables(dict(upd))}
        z = models.sample_z(self.cfg, rng, x["source"].shape[0])
        out, upd = self.gen.apply(
            gen,
            x["source"],
            *edge_args,
            z,
            edge_batch_stats=self.options.edge_batch_stats,
            mutable=["batch_stats"],
        )
        return {"image": out["image"], "edge": out["edge"]}, {"gen": dict(upd)}

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
        fake, real = (
            (outputs["edge"], x["target_edge"]) if stage == "pctnet" else (outputs["image"], x["target"])
        )
        if player == "gen":
            return self._gen_loss(stage, variables, frozen, x, fake, real, rng)
        if player in CRITICS[stage]:
            return self._disc_loss(player, variables, x, fake, real, rng)
        raise ValueError(
            f"SCA-GAN stage {stage!r} has players gen, {', '.join(CRITICS[stage])}; not {player!r}"
        )

    def _critic(self, variables: Mapping[str, Any], d_in: jax.Array, rng: jax.Array) -> jax.Array:
        return self.disc.apply({"params": variables["params"]}, d_in, train=True, rngs={"dropout": rng})

    def _gen_loss(self, stage, variables, frozen, x, fake, real, rng) -> LossOutput:
        w = self.weights
        terms: dict[str, jax.Array] = {}
        if w["l1"]:
            terms["l1"] = jnp.mean(jnp.abs(fake - real))
        if w["perceptual"]:
            vgg = {"params": frozen["vgg19"]}
            feats_fake = self.vgg.apply(vgg, perceptual.vgg_input(fake, "imagenet"))
            feats_real = jax.lax.stop_gradient(self.vgg.apply(vgg, perceptual.vgg_input(real, "imagenet")))
            terms["perceptual"] = perceptual.content_loss(feats_fake, feats_real, {PERCEPTUAL_LAYER: 1.0})
        if stage == "isnet" and w["cx"]:
            vgg = {"params": frozen["vgg_conv"]}
            feats_fake = self.vgg_cx.apply(vgg, fake)  # raw [-1, 1], as the original feeds vgg_conv
            feats_real = jax.lax.stop_gradient(self.vgg_cx.apply(vgg, real))
            terms["cx"] = contextual.layered_contextual_loss(feats_fake, feats_real, self.cx_layers)
        critics = CRITICS[stage]
        if w["gan"] and all(c in variables for c in critics):
            keys = jax.random.split(rng, len(critics))
            adv = [
                gan.generator_loss(self._critic(variables[c], self._critic_input(c, fake, x), k), "lsgan")
                for c, k in zip(critics, keys)
            ]
            terms["gan"] = sum(adv) / len(adv)
        total = sum(w[k] * v for k, v in terms.items())
        return total, (terms, {})

    def _disc_loss(self, player, variables, x, fake, real, rng) -> LossOutput:
        real_rng, fake_rng = jax.random.split(rng)
        fake_in = jax.lax.stop_gradient(self._critic_input(player, fake, x))
        real_logits = self._critic(variables[player], self._critic_input(player, real, x), real_rng)
        fake_logits = self._critic(variables[player], fake_in, fake_rng)
        total = self.weights["gan"] * gan.discriminator_loss(real_logits, fake_logits, "lsgan")
        metrics = {"real_logit": jnp.mean(real_logits), "fake_logit": jnp.mean(fake_logits)}
        return total, (metrics, {})

    # ------------------------------------------------------------------------------------------ predict

    def predict(
        self, variables: PlayerVariables, batch: Mapping[str, Any], rng: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """Eval mode (the PCT-Net's running statistics, as the original's test): {"image", "edge"}.

        z ~ N(0, I) comes from ``rng`` (None: key 0), so the same key gives the same image. A ``gen`` that
        holds only the PCT-Net (after stage ``pctnet``) gives its edges, as grey RGB, for ``image``.
        """
        x = self.inputs(batch)
        gen = {k: v for k, v in variables["gen"].items() if k in ("params", "batch_stats")}
        edge_args = (x["source_edge"], x["target_pose"], x["shifted_edges"])
        if set(gen["params"]) == {models.EDGE_GENERATOR}:
            edge = self.pct.apply(models.edge_variables(gen), *edge_args)["edge"]
            return {"image": jnp.repeat(edge, 3, axis=-1), "edge": edge}
        rng = jax.random.key(0) if rng is None else rng
        z = models.sample_z(self.cfg, rng, x["source"].shape[0])
        out = self.gen.apply(gen, x["source"], *edge_args, z)
        return {"image": out["image"], "edge": out["edge"]}


def add_shifted_edges(
    example: Mapping[str, np.ndarray], *, radius: int = bep.RADIUS, mode: str = "compat"
) -> dict[str, np.ndarray]:
    """One pair's host transform: ``{source,target}_edge`` (XDoG of the photos when absent) and
    ``shifted_edges`` (BEP2 of ``ptx.data.shifted_edges``)."""
    out = dict(example)
    for side in ("source", "target"):
        if f"{side}_edge" not in out:
            out[f"{side}_edge"] = edge_lib.xdog(np.asarray(out[f"{side}_image"]))
    if "source_keypoints" in out and "target_keypoints" in out:
        out["shifted_edges"] = bep.shifted_edges(
            out["source_keypoints"], out["target_keypoints"], out["source_edge"], radius=radius, mode=mode
        )
    return out


def build(config) -> SCAGAN:
    """``config.model``: ``ptx.models.scagan.Config`` fields (latent and upsampling sizes default to those of
    ``config.data.image_size``); ``config.loss``: term weights plus ``bep_mode``, ``crop_radius``; top level:
    ``vgg_path``, ``vgg_conv_path``, ``vgg_fallback_random``, ``heatmap_sigma``, ``edge_batch_stats``."""
    model = model_fields(models.Config, config.model, "scagan")
    for key in ("latent_size", "up_sizes"):
        if key in model:
            model[key] = tuple(tuple(v) if isinstance(v, list | tuple) else v for v in model[key])
    cfg = models.Config(**model)
    size = config.get("data", {}).get("image_size")
    if size and "up_sizes" not in model:
        cfg = models.for_image_size(cfg, int(size[0]), int(size[1]))
    loss = dict(config.get("loss", {}))
    settings = {k: loss.pop(k) for k in ("bep_mode", "crop_radius") if k in loss}
    for stage in config.get("stages", ()):
        if stage.name not in STAGES:
            raise ValueError(f"SCA-GAN config.stages: names must be among {STAGES}, got {stage.name!r}")
    options = Options(
        weights={k: float(v) for k, v in loss.items()},
        bep_mode=str(settings.get("bep_mode", "compat")),
        crop_radius=int(settings.get("crop_radius", bep.RADIUS)),
        heatmap_sigma=float(config.get("heatmap_sigma", bep.SIGMA)),
        edge_batch_stats=bool(config.get("edge_batch_stats", True)),
        vgg_path=str(config.get("vgg_path", "")),
        vgg_conv_path=str(config.get("vgg_conv_path", "")),
        vgg_fallback_random=bool(config.get("vgg_fallback_random", False)),
    )
    return SCAGAN(cfg, options)
