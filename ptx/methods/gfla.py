"""GFLA recipe (Ren et al., CVPR 2020): flow estimator first, then the whole model end to end.

Players: ``gen`` (stage ``flow``: ``PoseFlowNetGenerator``; stage ``full``: ``PoseGenerator``, whose flow net sits
under the same ``flow_net`` key so the trainer carries it over) and ``disc`` (``ResDiscriminator``, stage ``full``).

* stage ``flow`` (gen): ``flow_correctness`` * sampling correctness + ``flow_regularization`` * affine regulariser
  (20 and 0.01 in the original);
* stage ``full``: disc first (LSGAN, real target vs the detached fake), then gen: 5 L1 + 5 correctness +
  2 adversarial + 0.0025 regulariser + 0.5 VGG content + 500 VGG style.

Each step runs the generator once (``forward``); the discriminator trains on that pass's detached image, then the
generator's loss is taken against the updated discriminator, as the original's ``optimize_parameters``. The
frozen VGG19 is ``frozen(stage)["vgg19"]``: an argument of the jitted step, never part of the train state. Images become [-1, 1] and keypoints become sigma-6 Gaussian heatmaps on
device. Weights start as the original's ``init_weights('orthogonal', 0.02)``: every conv kernel orthogonal with
gain 0.02, biases 0, norm scales 1. Metrics are the unweighted terms (the trainer adds the weighted total).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp

from ptx.losses import correctness, flow_regularization, gan, perceptual
from ptx.methods.common import VGG19_FILE, NoPairHooks, model_fields, resolve_vgg, to_unit, vgg_subset
from ptx.methods.protocol import ENCODE_SOURCE, Frozen, LossOutput, Outputs, PlayerVariables, StateUpdates
from ptx.models import gfla as models
from ptx.nn import vgg as vgg_lib

STAGES = ("flow", "full")

DEFAULT_WEIGHTS: dict[str, float] = {
    "flow_correctness": 20.0,  # stage flow
    "flow_regularization": 0.01,
    "l1": 5.0,  # stage full
    "correctness": 5.0,
    "adversarial": 2.0,
    "regularization": 0.0025,
    "content": 0.5,
    "style": 500.0,
    "warp_l1": 0.0,  # both stages; not in the original (see _warp_l1)
}
VGG_FILE = VGG19_FILE
# Terms read from VGG19 features: with all of them at weight 0 (the CPU demo) no VGG is loaded or run.
VGG_TERMS = ("flow_correctness", "correctness", "content", "style")


@dataclasses.dataclass(frozen=True)
class Options:
    """Recipe settings that are not network architecture (``config.loss`` and a few top-level keys)."""

    weights: Mapping[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    gan_mode: str = "lsgan"
    heatmap_sigma: float = 6.0
    vgg_path: str = ""
    vgg_fallback_random: bool = False  # paper: a missing VGG file is an error
    init_gain: float = 0.02  # orthogonal init gain; 0 keeps the modules' own initialisers
    stage_players: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)


def orthogonal_reinit(params: Any, rng: jax.Array, gain: float) -> Any:
    """The original's init_weights('orthogonal', gain): conv kernels orthogonal(gain), biases 0, rest kept."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
    init = jax.nn.initializers.orthogonal(scale=gain, column_axis=-1)
    out = {}
    for i, (path, leaf) in enumerate(sorted(flat.items())):
        if path[-1] == "kernel":
            out[path] = init(jax.random.fold_in(rng, i), leaf.shape, leaf.dtype)
        elif path[-1] == "bias":
            out[path] = jnp.zeros_like(leaf)
        else:
            out[path] = leaf
    return flax.traverse_util.unflatten_dict(out)


class GFLA(NoPairHooks):
    """The recipe (see ``ptx.methods.protocol.Method``)."""

    players = ("gen", "disc")
    generator = "gen"
    capabilities = frozenset({ENCODE_SOURCE})
    sample_fields = ()

    def __init__(self, cfg: models.Config, options: Options):
        unknown = sorted(set(options.weights) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise ValueError(
                f"config.loss has unknown weights {unknown}; GFLA weights: {sorted(DEFAULT_WEIGHTS)}"
            )
        if options.gan_mode not in gan.MODES:
            raise ValueError(f"config.loss.gan_mode {options.gan_mode!r}: expected one of {gan.MODES}")
        self.cfg = cfg
        self.options = options
        self.weights = {**DEFAULT_WEIGHTS, **options.weights}
        self.pose_generator = models.PoseGenerator(cfg)
        self.flow_generator = models.PoseFlowNetGenerator(cfg)
        self.disc = models.ResDiscriminator(cfg)
        self.vgg_full = vgg_lib.VGG(
            "vgg19", layers=sorted({*perceptual.GFLA_CONTENT_LAYERS, *self._style_layers()})
        )
        self.vgg_corr = vgg_lib.VGG("vgg19", layers=self._corr_layers())
        self._vgg_params: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------------------ inputs

    def _style_layers(self) -> tuple[str, ...]:
        return perceptual.GFLA_STYLE_LAYERS

    def _corr_layers(self) -> list[str]:
        return sorted({correctness.LAYER_FOR_ATTENTION[a] for a in self.cfg.attn_layer})

    def inputs(self, batch: Mapping[str, Any]) -> dict[str, jax.Array]:
        """Device-side inputs: images in [-1, 1], pose heatmaps (B, H, W, 18) (off-image joints keep their tails,
        as in GFLA)."""
        from ptx.data.heatmaps import gaussian_heatmaps

        source = to_unit(batch["source_image"])
        size = source.shape[1:3]
        sigma = self.options.heatmap_sigma
        return {
            "source": source,
            "target": to_unit(batch["target_image"]),
            "source_pose": gaussian_heatmaps(batch["source_keypoints"], size, sigma, keep_outside=True),
            "target_pose": gaussian_heatmaps(batch["target_keypoints"], size, sigma, keep_outside=True),
        }

    def frozen(self, stage: str) -> Frozen:
        """The VGG19 convolutions up to the deepest layer a loss reads, as numpy, loaded once; nothing when no
        term with a nonzero weight reads VGG features."""
        self._stage_players(stage)
        if not self._uses_vgg():
            return {}
        if self._vgg_params is None:
            params = resolve_vgg(
                self.options.vgg_path,
                self.options.vgg_fallback_random,
                needed_by="GFLA's perceptual, style and correctness losses",
            )
            self._vgg_params = vgg_subset(params, {*self.vgg_full.layers, *self.vgg_corr.layers})
        return {"vgg19": self._vgg_params}

    def _uses_vgg(self) -> bool:
        return any(self.weights[k] for k in VGG_TERMS)

    def _stage_players(self, stage: str) -> tuple[str, ...]:
        if stage not in STAGES:
            raise ValueError(f"GFLA has stages {STAGES}, not {stage!r}")
        return tuple(self.options.stage_players.get(stage, ("gen",) if stage == "flow" else self.players))

    # ------------------------------------------------------------------------------------------ init

    def init(self, rng: jax.Array, batch: Mapping[str, Any], stage: str) -> PlayerVariables:
        x = self.inputs(batch)
        g_rng, d_rng, gi_rng, di_rng = jax.random.split(rng, 4)
        net = self.flow_generator if stage == "flow" else self.pose_generator
        gen = dict(net.init(g_rng, x["source"], x["source_pose"], x["target_pose"]))
        if self.options.init_gain:
            gen["params"] = orthogonal_reinit(gen["params"], gi_rng, self.options.init_gain)
        out = {"gen": gen}
        if "disc" in self._stage_players(stage):
            disc = dict(self.disc.init(d_rng, x["target"]))
            if self.options.init_gain:
                disc["params"] = orthogonal_reinit(disc["params"], di_rng, self.options.init_gain)
            out["disc"] = disc
        return out

    # ------------------------------------------------------------------------------------------ pieces

    def _generate(self, gen_vars: Mapping[str, Any], x: Mapping[str, jax.Array]) -> dict[str, Any]:
        """Full generator when its params have the source/target nets, else the stage-1 flow net alone."""
        params = {"params": gen_vars["params"]}
        net = self.pose_generator if "target" in gen_vars["params"] else self.flow_generator
        return net.apply(params, x["source"], x["source_pose"], x["target_pose"])

    def _disc(self, disc_vars: Mapping[str, Any], image: jax.Array) -> tuple[jax.Array, dict[str, Any]]:
        """Training-mode D forward: one power iteration per spectral-normed conv, as torch does."""
        logits, updates = self.disc.apply(dict(disc_vars), image, update_stats=True, mutable=["spectral"])
        return logits, dict(updates)

    def _correctness(self, vgg: Mapping[str, Any], x, flows, target_feats=None) -> jax.Array:
        names = self._corr_layers()
        if target_feats is None:
            target_feats = self.vgg_corr.apply({"params": vgg}, x["target"])
        source_feats = self.vgg_corr.apply({"params": vgg}, x["source"])
        target_feats = {n: jax.lax.stop_gradient(target_feats[n]) for n in names}
        source_feats = {n: jax.lax.stop_gradient(source_feats[n]) for n in names}
        return correctness.correctness_loss(target_feats, source_feats, flows, self.cfg.attn_layer)

    def _warp_l1(self, x, flows) -> jax.Array:
        """Sum over flows of L1 between the source warped by the flow and the target, both (antialiased) resized to
        the flow's size. Not in the original; the CPU demo uses it because the correctness loss needs VGG
        features that tell places apart, and seeded random VGG features (no download) hardly do."""
        from ptx.ops import resample

        total = jnp.zeros((), jnp.float32)
        for flow in flows:
            b, h, w, _ = flow.shape
            small = [
                jax.image.resize(x[k], (b, h, w, x[k].shape[-1]), "linear") for k in ("source", "target")
            ]
            total = total + jnp.mean(jnp.abs(resample(small[0], flow) - small[1]))
        return total

    def _regularization(self, flows) -> jax.Array:
        return flow_regularization.multi_affine_regularization(flows, self.cfg.kernel_sizes)

    # ------------------------------------------------------------------------------------------ losses

    def forward(
        self, stage: str, variables: PlayerVariables, frozen: Frozen, batch: Mapping[str, Any], rng: jax.Array
    ) -> tuple[Outputs, StateUpdates]:
        """The stage's generator (flow net alone in ``flow``): ``{flows[, image]}``; GFLA has no train-mode state
        or noise in its generator."""
        del frozen, rng
        self._stage_players(stage)
        out = self._generate(variables["gen"], self.inputs(batch))
        return {k: out[k] for k in ("image", "flows") if k in out}, {}

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
        del rng  # GFLA's losses are deterministic
        x = self.inputs(batch)
        vgg = frozen.get("vgg19")
        if stage == "flow" and player == "gen":
            return self._flow_loss(vgg, x, outputs)
        if stage == "full" and player == "disc":
            return self._disc_loss(variables, x, outputs)
        if stage == "full" and player == "gen":
            return self._gen_loss(variables, vgg, x, outputs)
        raise ValueError(f"GFLA has no loss for player {player!r} in stage {stage!r}")

    def _flow_loss(self, vgg, x, outputs: Outputs) -> LossOutput:
        """Weighted terms; a term at weight 0 is neither computed nor reported."""
        w = self.weights
        flows = outputs["flows"]
        terms = {"regularization": self._regularization(flows)}
        weights = {"regularization": w["flow_regularization"]}
        if w["flow_correctness"]:
            terms["correctness"] = self._correctness(vgg, x, flows)
            weights["correctness"] = w["flow_correctness"]
        if w["warp_l1"]:
            terms["warp_l1"] = self._warp_l1(x, flows)
            weights["warp_l1"] = w["warp_l1"]
        return sum(weights[k] * v for k, v in terms.items()), (terms, {})

    def _disc_loss(self, variables: PlayerVariables, x, outputs: Outputs) -> LossOutput:
        fake = jax.lax.stop_gradient(outputs["image"])
        real_logits, upd = self._disc(variables["disc"], x["target"])
        fake_logits, upd = self._disc({**variables["disc"], **upd}, fake)
        total = gan.discriminator_loss(real_logits, fake_logits, self.options.gan_mode)
        metrics = {"real_logit": jnp.mean(real_logits), "fake_logit": jnp.mean(fake_logits)}
        return total, (metrics, {"disc": upd})

    def _gen_loss(self, variables: PlayerVariables, vgg, x, outputs: Outputs) -> LossOutput:
        """Weighted terms; VGG terms at weight 0 (and warp_l1 at 0) are neither computed nor reported."""
        w = self.weights
        fake, flows = outputs["image"], outputs["flows"]
        logits, disc_upd = self._disc(variables["disc"], fake)
        terms = {
            "l1": jnp.mean(jnp.abs(fake - x["target"])),
            "adversarial": gan.generator_loss(logits, self.options.gan_mode),
            "regularization": self._regularization(flows),
        }
        if w["content"] or w["style"] or w["correctness"]:
            real_feats = jax.tree.map(
                jax.lax.stop_gradient, self.vgg_full.apply({"params": vgg}, x["target"])
            )
            if w["correctness"]:
                terms["correctness"] = self._correctness(vgg, x, flows, target_feats=real_feats)
            if w["content"] or w["style"]:
                fake_feats = self.vgg_full.apply({"params": vgg}, fake)
                terms["content"] = perceptual.content_loss(
                    fake_feats, real_feats, perceptual.GFLA_CONTENT_LAYERS
                )
                terms["style"] = perceptual.style_loss(fake_feats, real_feats, self._style_layers())
        if w["warp_l1"]:
            terms["warp_l1"] = self._warp_l1(x, flows)
        total = sum(w[k] * v for k, v in terms.items())
        return total, (terms, {"disc": disc_upd})

    # ------------------------------------------------------------------------------------------ predict

    def predict(
        self, variables: PlayerVariables, batch: Mapping[str, Any], rng: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """{image, warped, flow0.., mask0..} (deepest first); stage-1 params give image = warped.

        ``warped`` is the source image warped by the finest flow (the stage-1 result). Flows and masks come as
        flat keys, one array each, because the trainer turns every output into a single numpy array.
        """
        x = self.inputs(batch)
        out = self._generate(variables["gen"], x)
        warped = warp_source(x["source"], out["flows"][-1])
        result = {"image": out.get("image", warped), "warped": warped}
        result.update({f"flow{i}": f for i, f in enumerate(out["flows"])})
        result.update({f"mask{i}": m for i, m in enumerate(out["masks"])})
        return result

    def encode_source(self, variables: PlayerVariables, batch: Mapping[str, Any]) -> Any:
        """Source features of the full generator, to reuse across many target poses (animation); None for
        stage-1 (flow net only) params, whose prediction has no source encoder."""
        if "target" not in variables["gen"]["params"]:
            return None
        source = to_unit(batch["source_image"])
        params = {"params": variables["gen"]["params"]}
        return self.pose_generator.apply(params, source, method=models.PoseGenerator.encode_source)

    def predict_from_source(
        self, variables: PlayerVariables, feats: Any, batch: Mapping[str, Any]
    ) -> dict[str, jax.Array]:
        """``predict`` with source features from ``encode_source`` (broadcast over the batch when encoded once)."""
        if feats is None:
            return {"image": self.predict(variables, batch)["image"]}
        x = self.inputs(batch)
        b = x["source"].shape[0]
        feats = jax.tree.map(lambda f: jnp.broadcast_to(f, (b, *f.shape[1:])), feats)
        params = {"params": variables["gen"]["params"]}
        out = self.pose_generator.apply(
            params,
            feats,
            x["source"],
            x["source_pose"],
            x["target_pose"],
            method=models.PoseGenerator.generate,
        )
        return {"image": out["image"]}


def warp_source(image: jax.Array, flow: jax.Array) -> jax.Array:
    """Warp a full-resolution image by a low-resolution flow: bilinear upsampling, values scaled to pixels."""
    from ptx.ops import resample

    b, h, w, _ = image.shape
    fh, fw = flow.shape[1:3]
    up = jax.image.resize(flow, (b, h, w, 2), "bilinear")
    up = up * jnp.asarray([w / fw, h / fh], up.dtype)
    return resample(image, up)


def build(config) -> GFLA:
    """``config.model``: ``ptx.models.gfla.Config`` fields; ``config.loss``: weights (+ ``gan_mode``);
    top level: ``vgg_path``, ``vgg_fallback_random``, ``heatmap_sigma``, ``init_gain``."""
    model = model_fields(models.Config, config.model, "gfla")
    loss = dict(config.get("loss", {}))
    gan_mode = loss.pop("gan_mode", "lsgan")
    stages = {s.name: tuple(s.players) + tuple(s.get("freeze", ())) for s in config.get("stages", ())}
    options = Options(
        weights={k: float(v) for k, v in loss.items()},
        gan_mode=gan_mode,
        heatmap_sigma=float(config.get("heatmap_sigma", 6.0)),
        vgg_path=str(config.get("vgg_path", "")),
        vgg_fallback_random=bool(config.get("vgg_fallback_random", False)),
        init_gain=float(config.get("init_gain", 0.02)),
        stage_players=stages,
    )
    return GFLA(models.Config(**model), options)
