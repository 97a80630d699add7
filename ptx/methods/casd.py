"""CASD recipe (Zhou et al., ECCV 2022): one stage, players ``gen``, ``disc_image`` (D_PP), ``disc_pose`` (D_PB).

Update order per step, as the original's ``optimize_parameters``: the generator pass, G, then D_PP, then D_PB.

Inputs made on the device from a batch: source / target images in [-1, 1]; the target pose as the original's 30
channels (18 one-pixel keypoint maps at the rounded joint positions, ``ptx.data.heatmaps.point_maps``, then the
12 limb distance maps, ``casd_limb_maps``); source / target parsing (LIP labels, 255 = none) merged to the 8
regions with ``ptx.data.parsing.CASD_LIP_TABLE`` (labels in no region give an all-zero pixel, as the original).

Generator loss (``config.loss`` weights; a zero weight removes the term)::

    l1 * mean|fake - target| + perceptual * mean|vgg19_relu1_2(fake) - vgg19_relu1_2(target)|  (ImageNet-normalised)
    + gan * (LSGAN(D_PB(fake)) + LSGAN(D_PP(fake))) / 2
    + amce * (CE(up4(energy3), target regions) + CE(up4(energy4), target regions))
    + content * sum_l mean|phi_l(fake) - phi_l(target)|, relu{1..5}_1      (raw [-1, 1] VGG19 input)
    + style * sum_l mean|gram(phi_l(fake)) - gram(phi_l(target))|, relu2_2, relu3_4, relu4_4, relu5_2
    + lpips * mean LPIPS-vgg(fake, target)
    + contextual * (CX(r32(fake), r32(target)) + CX(r42(fake), r42(target)))   (vgg_conv.pth, raw [-1, 1] input)

The original's weights: l1 1, perceptual 1, gan 5, amce 0.1, content 0.5, style 200, lpips 1, contextual 0.1.
CX is ADGAN's ``CXLoss(sigma=0.5, b=1)`` (``ptx.losses.contextual``, target-mean centring) on Gatys' conv-only
VGG19 ``vgg_conv.pth`` (``vgg_conv_path``; a different file from the torchvision VGG19 of the other terms).
Each critic: ``gan * 0.5 * (MSE(D(real), 1) + MSE(D(fake), 0))`` on the detached fake (no image pool).

Frozen networks (``frozen(stage)``): the loss VGG19 (up to relu5_2), with a contextual weight vgg_conv (up to
relu4_2) and, with an LPIPS weight, LPIPS-vgg. The
style encoder's own VGG19 is part of the generator (its ``vgg`` collection, as in the original checkpoint): a
fresh ``init`` loads it from ``vgg_path`` when the config keeps torchvision's widths, and it is never trained.

Batch statistics: training uses the model config's ``spade_stats`` (the original: ``batch``; ``spade_group``
mimics its per-GPU statistics). ``predict`` uses ``predict_spade_stats`` (default ``sample``): every output is
independent of the rest of the batch and equals the original's ``test.py`` (which runs batch 1); set it to
``batch`` to reproduce the original's batched calls.

Editing (``EDIT_REGIONS``, for ``ptx.edit``): ``encode_styles`` gives the (B, 8, dim) region codes of a source,
``decode_with_styles`` renders any codes in a target pose, and ``predict`` is the two composed; ``region_names``
(``ptx.data.parsing.CASD_REGIONS``) and ``region_groups`` (``head`` = hair + face, ``clothes``) name the rows.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ptx.data.heatmaps import casd_limb_maps, point_maps
from ptx.data.parsing import CASD_LIP_TABLE, CASD_REGIONS, lookup_table
from ptx.losses import contextual, gan, perceptual, segmentation
from ptx.methods.common import NoPairHooks, model_fields, resolve_vgg, to_unit, vgg_subset
from ptx.methods.protocol import (
    EDIT_REGIONS,
    SOURCE_PARSING,
    Frozen,
    LossOutput,
    Outputs,
    PlayerVariables,
    StateUpdates,
)
from ptx.models import casd as models
from ptx.nn import vgg as vgg_lib
from ptx.nn import vgg_conv

PLAYERS = ("gen", "disc_image", "disc_pose")
STAGE = "train"
TERMS = ("l1", "perceptual", "gan", "amce", "content", "style", "lpips", "contextual")
DEFAULT_WEIGHTS: dict[str, float] = {
    "l1": 1.0,
    "perceptual": 1.0,
    "gan": 5.0,
    "amce": 0.1,
    "content": 0.5,
    "style": 200.0,
    "lpips": 1.0,
    "contextual": 0.1,
}
PERCEPTUAL_LAYER = "relu1_2"
CONTENT_LAYERS = perceptual.GFLA_CONTENT_LAYERS  # relu1_1 .. relu5_1, weight 1 (the original's VGGLoss)
STYLE_LAYERS = perceptual.GFLA_STYLE_LAYERS  # relu2_2, relu3_4, relu4_4, relu5_2
CX_LAYERS = dict(contextual.SCAGAN_LAYERS)  # vgg_conv r32 + r42, weight 1 each; sigma 0.5 (default)
_REGION_OF_LABEL = lookup_table(CASD_LIP_TABLE)  # uint8 (256,): LIP label -> region, 255 = none
# Named sets of regions that editing moves together (``ptx.edit``): a head swap takes hair and face.
REGION_GROUPS: dict[str, tuple[str, ...]] = {
    "head": ("hair", "face"),
    "clothes": ("upper_clothes", "lower_clothes"),
}


@dataclasses.dataclass(frozen=True)
class Options:
    """Recipe settings that are not architecture (``config.loss`` and a few top-level keys)."""

    weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    predict_spade_stats: str = "sample"
    vgg_path: str = ""
    vgg_conv_path: str = ""  # Gatys' vgg_conv.pth (contextual only)
    vgg_fallback_random: bool = False
    lpips_trunk_path: str = ""  # vgg16-397923af.pth
    lpips_lin_path: str = ""  # lpips/weights/v0.1/vgg.pth (default: the installed lpips package's)


def region_masks(parsing: jax.Array, regions: int = 8) -> jax.Array:
    """uint8 LIP label maps (B, H, W) -> float32 one-hot regions (B, H, W, K); unlisted labels are all-zero."""
    ids = jnp.asarray(_REGION_OF_LABEL)[jnp.asarray(parsing).astype(jnp.int32)]
    return jax.nn.one_hot(ids, regions, dtype=jnp.float32)  # id 255 -> a zero row


def pose_input(keypoints: jax.Array, size: tuple[int, int]) -> jax.Array:
    """(B, 18, 2) (y, x) keypoints -> the original's 30 channels: one-pixel maps at the rounded joints, limb maps."""
    kps = jnp.where(keypoints == -1, -1.0, jnp.round(keypoints))
    return jnp.concatenate([point_maps(kps, size), casd_limb_maps(kps, size)], axis=-1)


class CASD(NoPairHooks):
    """The recipe (``ptx.methods.protocol.Method``)."""

    players = PLAYERS
    generator = "gen"
    capabilities = frozenset({EDIT_REGIONS})
    sample_fields = (SOURCE_PARSING,)
    region_names = CASD_REGIONS  # row k of the style codes is region k of CASD_LIP_TABLE
    region_groups = REGION_GROUPS

    def __init__(self, cfg: models.Config, options: Options):
        unknown = sorted(set(options.weights) - set(TERMS))
        if unknown:
            raise ValueError(f"CASD loss weights {unknown} are not terms; known: {TERMS}")
        if options.predict_spade_stats not in models.SPADE_STATS:
            raise ValueError(f"predict_spade_stats must be one of {models.SPADE_STATS}")
        self.cfg = cfg
        self.options = options
        self.weights = {**{t: 0.0 for t in TERMS}, **{k: float(v) for k, v in options.weights.items()}}
        self.gen = models.Generator(cfg)
        self.sampler = models.Generator(dataclasses.replace(cfg, spade_stats=options.predict_spade_stats))
        self.disc = models.Discriminator(cfg)
        self.vgg_perceptual = vgg_lib.VGG("vgg19", layers=(PERCEPTUAL_LAYER,))
        self.vgg_loss = vgg_lib.VGG("vgg19", layers=(*CONTENT_LAYERS, *STYLE_LAYERS))
        self.vgg_cx = vgg_lib.VGG("vgg19", layers=tuple(CX_LAYERS))
        self._frozen: Frozen | None = None

    # ------------------------------------------------------------------------------------------ inputs

    def inputs(
        self, batch: Mapping[str, Any], *, target: bool = True, parsing: bool = True
    ) -> dict[str, jax.Array]:
        source = to_unit(batch["source_image"])
        size = source.shape[1:3]
        x = {"source": source, "pose": pose_input(batch["target_keypoints"], size)}
        if parsing:
            x["source_regions"] = region_masks(batch["source_parsing"], self.cfg.regions)
        if target:
            x["target"] = to_unit(batch["target_image"])
            x["target_regions"] = region_masks(batch["target_parsing"], self.cfg.regions)
        return x

    def _uses_vgg(self) -> bool:
        return any(self.weights[t] for t in ("perceptual", "content", "style"))

    def _vgg19(self) -> dict[str, Any]:
        return resolve_vgg(
            self.options.vgg_path, self.options.vgg_fallback_random, needed_by="CASD's VGG losses"
        )

    def _vgg_conv(self) -> dict[str, Any]:
        """vgg_conv.pth from ``vgg_conv_path``; else, when allowed, seeded random weights with a warning (demos,
        tests); else an error naming the file. Same rule as SCA-GAN's (methods do not import each other)."""
        path = os.path.expanduser(self.options.vgg_conv_path) if self.options.vgg_conv_path else ""
        if path and os.path.isfile(path):
            return vgg_conv.load_vgg_conv(path)
        if not self.options.vgg_fallback_random:
            raise FileNotFoundError(
                f"CASD's contextual loss needs {vgg_conv.WHERE}, not found at {path!r}; pass "
                "--config.vgg_conv_path=/path/vgg_conv.pth (or --config.loss.contextual=0 to train without it)"
            )
        warnings.warn(
            f"{vgg_conv.FILE} not found{' at ' + path if path else ''}: CASD's contextual loss uses seeded random "
            "VGG19 features (fine for demos and tests, not for paper numbers)",
            stacklevel=3,
        )
        return vgg_lib.random_params("vgg19", seed=1)

    def _lpips(self) -> dict[str, Any]:
        """LPIPS-vgg from its two files; when they are missing and ``vgg_fallback_random`` allows, a seeded random
        VGG16 trunk with unit lin weights and a warning (benchmarks and demos time the same work)."""
        from ptx.evaluate import lpips

        opt = self.options
        try:
            return lpips.load_lpips("vgg", opt.lpips_trunk_path, opt.lpips_lin_path or None)
        except FileNotFoundError as e:
            if not opt.vgg_fallback_random:
                raise
            warnings.warn(
                f"{e}: CASD's LPIPS term uses a seeded random VGG16 (not for paper numbers)", stacklevel=3
            )
        widths = (64, 128, 256, 512, 512)
        return {"net": vgg_lib.random_params("vgg16", seed=2)} | {
            f"lin{i}": np.ones(w, np.float32) for i, w in enumerate(widths)
        }

    def frozen(self, stage: str = STAGE) -> Frozen:
        """The loss VGG19 up to relu5_2, with a contextual weight vgg_conv up to relu4_2, and with an LPIPS weight
        LPIPS-vgg (numpy, loaded once)."""
        _check_stage(stage)
        if self._frozen is None:
            frozen: Frozen = {}
            if self._uses_vgg():
                frozen["vgg19"] = vgg_subset(
                    self._vgg19(), (*CONTENT_LAYERS, *STYLE_LAYERS, PERCEPTUAL_LAYER)
                )
            if self.weights["contextual"]:
                frozen["vgg_conv"] = vgg_subset(self._vgg_conv(), CX_LAYERS)
            if self.weights["lpips"]:
                frozen["lpips"] = jax.tree.map(np.asarray, self._lpips())
            self._frozen = frozen
        return self._frozen

    # ------------------------------------------------------------------------------------------ init

    def init(self, rng: jax.Array, batch: Mapping[str, Any], stage: str = STAGE) -> PlayerVariables:
        """Only shapes matter here: a batch without parsing maps (``ptx.api``'s shape batch) is fine."""
        _check_stage(stage)
        x = self.inputs(batch, target=False, parsing="source_parsing" in batch)
        x.setdefault("source_regions", jnp.zeros((*x["source"].shape[:3], self.cfg.regions)))
        g_rng, pp_rng, pb_rng = jax.random.split(rng, 3)
        gen = dict(self.gen.init({"params": g_rng}, x["pose"], x["source"], x["source_regions"]))
        if self.cfg.vgg_widths == models.Config().vgg_widths:  # torchvision's VGG19: load its weights
            gen["vgg"] = {"enc_style": {"vgg": jax.tree.map(jnp.asarray, self._vgg19())}}
        out = {"gen": gen}
        for player, key in (("disc_image", pp_rng), ("disc_pose", pb_rng)):
            out[player] = dict(self.disc.init({"params": key}, self._critic_input(player, x["source"], x)))
        return out

    def _critic_input(self, player: str, image: jax.Array, x: Mapping[str, jax.Array]) -> jax.Array:
        """D_PP judges (image, source image); D_PB (image, target keypoint + limb maps): 6 / 33 channels."""
        return jnp.concatenate([image, x["source"] if player == "disc_image" else x["pose"]], axis=-1)

    # ------------------------------------------------------------------------------------------ step

    def forward(
        self, stage: str, variables: PlayerVariables, frozen: Frozen, batch: Mapping[str, Any], rng: jax.Array
    ) -> tuple[Outputs, StateUpdates]:
        """The step's one generator pass: {image, energy3, energy4} (no state changes; no randomness)."""
        del frozen, rng
        _check_stage(stage)
        x = self.inputs(batch, target=False)
        out = self.gen.apply(variables["gen"], x["pose"], x["source"], x["source_regions"])
        return {k: out[k] for k in ("image", "energy3", "energy4")}, {}

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
        del rng
        _check_stage(stage)
        x = self.inputs(batch)
        if player == "gen":
            return self._gen_loss(variables, frozen, x, outputs)
        if player in ("disc_image", "disc_pose"):
            return self._disc_loss(player, variables, x, outputs["image"])
        raise ValueError(f"CASD has players {PLAYERS}, not {player!r}")

    def _gen_loss(self, variables: PlayerVariables, frozen: Frozen, x, outputs: Outputs) -> LossOutput:
        w = self.weights
        fake, target = outputs["image"], x["target"]
        terms: dict[str, jax.Array] = {}
        if w["l1"]:
            terms["l1"] = jnp.mean(jnp.abs(fake - target))
        if w["perceptual"]:
            feats = self._vgg_pair(self.vgg_perceptual, frozen, fake, target, "imagenet")
            terms["perceptual"] = perceptual.content_loss(*feats, {PERCEPTUAL_LAYER: 1.0})
        if w["content"] or w["style"]:
            feats = self._vgg_pair(self.vgg_loss, frozen, fake, target, "none")
            if w["content"]:
                terms["content"] = perceptual.content_loss(*feats, CONTENT_LAYERS)
            if w["style"]:
                terms["style"] = perceptual.style_loss(*feats, STYLE_LAYERS)
        if w["amce"]:
            labels = jnp.argmax(x["target_regions"], axis=-1)  # a pixel in no region counts as region 0
            terms["amce"] = sum(
                segmentation.upsampled_cross_entropy(outputs[e], labels) for e in ("energy3", "energy4")
            )
        if w["lpips"]:
            from ptx.evaluate import lpips

            terms["lpips"] = jnp.mean(lpips.LPIPS("vgg").apply({"params": frozen["lpips"]}, fake, target))
        if w["contextual"]:
            terms["contextual"] = self.contextual_term(frozen, fake, target)
        if w["gan"]:
            adv = [
                gan.generator_loss(self.disc.apply(variables[p], self._critic_input(p, fake, x)), "lsgan")
                for p in ("disc_pose", "disc_image")
            ]
            terms["gan"] = 0.5 * (adv[0] + adv[1])
        total = sum(w[k] * v for k, v in terms.items())
        return total, (terms, {})

    def contextual_term(self, frozen: Frozen, fake: jax.Array, target: jax.Array) -> jax.Array:
        """Unweighted CX on vgg_conv r32 + r42, raw [-1, 1] images as the original feeds vgg_conv; the target's
        features are constants (only the fake carries gradient)."""
        params = {"params": frozen["vgg_conv"]}
        feats_fake = self.vgg_cx.apply(params, fake)
        feats_real = jax.lax.stop_gradient(self.vgg_cx.apply(params, target))
        return contextual.layered_contextual_loss(feats_fake, feats_real, CX_LAYERS)

    @staticmethod
    def _vgg_pair(vgg: vgg_lib.VGG, frozen: Frozen, fake, target, normalization: str):
        params = {"params": frozen["vgg19"]}
        feats_fake = vgg.apply(params, perceptual.vgg_input(fake, normalization))
        feats_real = jax.lax.stop_gradient(vgg.apply(params, perceptual.vgg_input(target, normalization)))
        return feats_fake, feats_real

    def _disc_loss(self, player: str, variables: PlayerVariables, x, fake) -> LossOutput:
        disc = variables[player]
        real_logits = self.disc.apply(disc, self._critic_input(player, x["target"], x))
        fake_logits = self.disc.apply(disc, jax.lax.stop_gradient(self._critic_input(player, fake, x)))
        total = self.weights["gan"] * gan.discriminator_loss(real_logits, fake_logits, "lsgan")
        metrics = {"real_logit": jnp.mean(real_logits), "fake_logit": jnp.mean(fake_logits)}
        return total, (metrics, {})

    # ------------------------------------------------------------------------------------------ predict

    def predict(
        self, variables: PlayerVariables, batch: Mapping[str, Any], rng: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """{image, energy3, energy4, parsing}: ``parsing`` is the predicted target region map (argmax of the
        last block's energies upsampled to the frame; int32 (B, H, W), ids of ``CASD_LIP_TABLE``'s regions)."""
        del rng
        return self.decode_with_styles(variables, self.encode_styles(variables, batch), batch)

    # ------------------------------------------------------------------------------------------ editing
    # EDIT_REGIONS (``ptx.edit``): predict split at the region codes, so callers can swap or mix rows.

    def encode_styles(self, variables: PlayerVariables, batch: Mapping[str, Any]) -> jax.Array:
        """Region style codes (B, K, dim) of ``source_image`` with its ``source_parsing``; row k is region
        ``region_names[k]`` (a region absent from the parsing holds the image-wide mean, as the original)."""
        source = to_unit(batch["source_image"])
        regions = region_masks(batch["source_parsing"], self.cfg.regions)
        return self.sampler.apply(variables["gen"], source, regions, method=models.Generator.encode_style)

    def decode_with_styles(
        self, variables: PlayerVariables, styles: jax.Array, batch: Mapping[str, Any]
    ) -> dict[str, jax.Array]:
        """``predict``'s outputs for region codes ``styles`` (B, K, dim) in the pose ``target_keypoints``
        (pixels of the ``source_image`` frame, which sets the output size)."""
        size = batch["source_image"].shape[1:3]
        pose = pose_input(batch["target_keypoints"], size)
        out = self.sampler.apply(variables["gen"], pose, styles, method=models.Generator.render)
        return {**out, "parsing": models.predicted_parsing(out["energy4"], size)}


def _check_stage(stage: str) -> None:
    if stage != STAGE:
        raise ValueError(f"CASD has one stage {STAGE!r}, not {stage!r}")


def build(config) -> CASD:
    """``config.model``: ``ptx.models.casd.Config`` fields; ``config.loss``: term weights; top level:
    ``vgg_path``, ``vgg_conv_path``, ``vgg_fallback_random``, ``predict_spade_stats``, ``lpips_trunk_path``, ``lpips_lin_path``."""
    model = model_fields(models.Config, config.model, "casd")
    for stage in config.get("stages", ()):
        name = stage["name"]  # a ConfigDict, or a plain dict when read back from a run's config.json
        if name != STAGE:
            raise ValueError(f"CASD config.stages: one stage named {STAGE!r} expected, got {name!r}")
    options = Options(
        weights={k: float(v) for k, v in dict(config.get("loss", {})).items()},
        predict_spade_stats=str(config.get("predict_spade_stats", "sample")),
        vgg_path=str(config.get("vgg_path", "")),
        vgg_conv_path=str(config.get("vgg_conv_path", "")),
        vgg_fallback_random=bool(config.get("vgg_fallback_random", False)),
        lpips_trunk_path=str(config.get("lpips_trunk_path", "")),
        lpips_lin_path=str(config.get("lpips_lin_path", "")),
    )
    return CASD(models.Config(**model), options)
