"""Deformable GANs recipe (Siarohin et al., CVPR 2018), the original Keras training (card section 5).

Players, in the original's order each step: ``disc`` (the 42-channel patch discriminator), then ``gen``. One
stage, ``train``. Generator loss (``config.loss``)::

    gan * -mean(log(D(fake) + 1e-7)) + l1 * sum_layers st_loss(real_l, fake_l)

where ``st_loss`` is mean |real - fake| (``nn_area`` 1) or the nearest-neighbour loss over ``nn_area`` x
``nn_area`` windows (``ptx.losses.nearest_neighbour``), on the images (no ``content_layers``) or on VGG19
features named as Keras names them (``block1_conv2`` for the paper's "full" model, ``block2_conv1`` for
"feature matching"). Discriminator loss: ``-mean(log(D(real) + 1e-7)) - mean(log(1 - D(fake) + 1e-7))``
(summed, no weight). Adam(2e-4, 0.5, 0.999) for both, no decay, from the config.

Per-pair host work (``host_transform``): the 10 part transforms and masks (``warp_skip="mask"``) or the one
body transform (``full``) of ``ptx.ops.affine``, computed from the keypoints in the network's frame; masks
travel as uint8. ``pair_filter`` drops pairs whose source or target lacks a hip or a shoulder, as the
original's pair lists do (the part geometry needs all four).

VGG for the content losses: the paper used Keras' ImageNet VGG19 (``vgg19_weights_tf_dim_ordering_tf_kernels_
notop.h5``, read with h5py) with the original's input, RGB/BGR mean quirk included (``ptx.nn.keras_vgg``); that
is what ``vgg_path`` ending in ``.h5`` gives. A torchvision ``.pth`` works too (ImageNet mean/std input, the
same architecture, different weights: not the paper's features). Demos and tests may fall back to seeded
random weights.

Frames: when the data is smaller than the network's ``image_size`` (256x176 DeepFashion in the original's
256x256 frame, ``ptx.models.defgan`` docs), images are padded by edge replication, keypoints shifted, and the
generated image cropped back; the discriminator sees real and fake padded the same way, so the pad carries no
signal. Outputs and predictions are at the data's size.

Deviations from the original, all forced by ptx's one-batch, one-forward step (``ptx.methods.protocol``): the
original draws a fresh batch for D's step and another for G's, and D's real half comes from a different batch
than its fake half; here both players see the step's one batch and its one generator pass (dropout drawn
once). Adam's epsilon sits where optax puts it (Keras 2.0.8 adds 1e-8 to sqrt(v) before its bias correction,
an epsilon larger by 1/sqrt(1 - b2^t): a difference only while v is ~1e-16).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ptx.data.heatmaps import gaussian_heatmaps
from ptx.losses import nearest_neighbour, sigmoid_bce
from ptx.methods.common import model_fields, resolve_vgg, to_unit, vgg_subset
from ptx.methods.protocol import Frozen, LossOutput, Outputs, PlayerVariables, StateUpdates
from ptx.models import defgan as models
from ptx.nn import keras_vgg
from ptx.nn import vgg as vgg_lib
from ptx.ops import affine

PLAYERS = ("disc", "gen")
STAGE = "train"
BODY_JOINTS = tuple(affine.KEYPOINT_NAMES.index(n) for n in affine.BODY)


@dataclasses.dataclass(frozen=True)
class Options:
    """Recipe settings that are not architecture (``config.loss`` and top-level keys); ``cmd.py`` names in
    comments."""

    l1: float = 100.0  # --l1_penalty_weight
    gan: float = 1.0  # --gan_penalty_weight
    nn_area: int = 1  # --nn_loss_area_size
    content_layers: tuple[str, ...] = ()  # --content_loss_layer (Keras names); () = on the images
    dropout_at_test: bool = False  # --use_dropout_test
    vgg_path: str = ""
    vgg_fallback_random: bool = False


def _is_keras_file(path: str) -> bool:
    return path.endswith((".h5", ".hdf5"))


def has_body_joints(view: Mapping[str, Any]) -> bool:
    """source or target lacks Rhip, Lhip, Lsho or Rsho (as in the original's pair lists)

    True for the pairs kept: both poses show both hips and both shoulders, which the part geometry needs.
    """
    for side in ("source_keypoints", "target_keypoints"):
        kp = np.asarray(view[side])[list(BODY_JOINTS)]
        if np.any(kp == -1):
            return False
    return True


@dataclasses.dataclass(frozen=True)
class WarpInputs:
    """Def-GAN part transforms and masks of a pair, in the network frame (``ptx.ops.affine``)"""

    frame: tuple[int, int]
    mode: str  # "mask" | "full"

    def __call__(self, pair: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        size = pair["source_image"].shape[:2]
        src = models.keypoints_to_frame(np.asarray(pair["source_keypoints"], np.float32), size, self.frame)
        tgt = models.keypoints_to_frame(np.asarray(pair["target_keypoints"], np.float32), size, self.frame)
        if self.mode == "full":
            added = {"transforms": affine.uniform_transform(src, tgt)}
        else:
            added = {
                "transforms": affine.affine_transforms(src, tgt),
                "masks": affine.part_masks(tgt, self.frame).astype(np.uint8),
            }
        # The whole pair: callers that stack the transform's result directly (tests/test_method_contract.py)
        # see every field; the pipeline's merge is the same either way.
        return {**pair, **added}


class DefGAN:
    """The recipe (``ptx.methods.protocol.Method``)."""

    players = PLAYERS
    generator = "gen"
    capabilities = frozenset()
    sample_fields = ()

    def __init__(self, cfg: models.Config, options: Options):
        self.cfg = cfg
        self.options = options
        self.gen = models.Generator(cfg)
        self.disc = models.Discriminator(cfg)
        self.vgg_layers = tuple(keras_vgg.keras_layer(n) for n in options.content_layers)
        self.vgg = vgg_lib.VGG("vgg19", layers=self.vgg_layers) if self.vgg_layers else None
        # The input convention follows the weights actually used: Keras' file, or torchvision's / random ones.
        self.keras_vgg = _is_keras_file(options.vgg_path) and os.path.isfile(
            os.path.expanduser(options.vgg_path)
        )
        self._vgg_params: dict[str, Any] | None = None
        if options.nn_area < 1 or options.nn_area % 2 == 0:
            raise ValueError(f"Def-GAN nn_area must be odd and >= 1, got {options.nn_area}")

    # ------------------------------------------------------------------------------------------ hooks

    def host_transform(self, split: str) -> WarpInputs | None:
        del split
        if self.cfg.warp_skip == "none":
            return None
        return WarpInputs(self.cfg.image_size, self.cfg.warp_skip)

    def pair_filter(self, split: str):
        del split
        return has_body_joints

    # ------------------------------------------------------------------------------------------ inputs

    def inputs(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """Images in [-1, 1] and heatmaps in the network frame, the warp inputs, the data size."""
        frame = self.cfg.image_size
        source, target = to_unit(batch["source_image"]), to_unit(batch["target_image"])
        size = tuple(source.shape[1:3])
        x: dict[str, Any] = {"size": size, "target": target}
        x["source"] = models.pad_to_frame(source, frame)
        for side in ("source", "target"):
            kp = models.keypoints_to_frame(jnp.asarray(batch[f"{side}_keypoints"], jnp.float32), size, frame)
            x[f"{side}_pose"] = gaussian_heatmaps(kp, frame, self.cfg.heatmap_sigma, keep_outside=True)
        x["transforms"] = jnp.asarray(batch["transforms"], jnp.float32) if "transforms" in batch else None
        x["masks"] = jnp.asarray(batch["masks"], jnp.float32) if "masks" in batch else None
        if self.cfg.warp_skip != "none" and x["transforms"] is None:
            raise KeyError("Def-GAN batches need 'transforms' (and 'masks'): run the method's host_transform")
        return x

    def frozen(self, stage: str = STAGE) -> Frozen:
        """VGG19 up to the deepest content layer (numpy, loaded once) when a content loss is on; else nothing."""
        self._check_stage(stage)
        if not self.vgg_layers:
            return {}
        if self._vgg_params is None:
            path = self.options.vgg_path
            if self.keras_vgg:
                params = keras_vgg.load_keras_vgg19(os.path.expanduser(path))
            elif _is_keras_file(path) and not self.options.vgg_fallback_random:
                raise FileNotFoundError(
                    f"Def-GAN's content loss needs Keras' VGG19 weights {keras_vgg.WEIGHT_FILE}, not found at "
                    f"{path!r} (Keras downloads it to ~/.keras/models/; or pass a torchvision vgg19 .pth)"
                )
            else:
                path = "" if _is_keras_file(path) else path
                params = resolve_vgg(
                    path, self.options.vgg_fallback_random, needed_by="Def-GAN's content loss"
                )
            self._vgg_params = vgg_subset(params, self.vgg_layers)
        return {"vgg19": self._vgg_params}

    # ------------------------------------------------------------------------------------------ init

    def init(self, rng: jax.Array, batch: Mapping[str, Any], stage: str = STAGE) -> PlayerVariables:
        self._check_stage(stage)
        x = self.inputs(batch)
        g_rng, d_rng = jax.random.split(rng)
        gen = self.gen.init({"params": g_rng}, *self._gen_args(x))
        disc = self.disc.init({"params": d_rng}, *self._disc_args(x, x["target"]))
        return {"gen": dict(gen), "disc": dict(disc)}

    # ------------------------------------------------------------------------------------------ pieces

    @staticmethod
    def _check_stage(stage: str) -> None:
        if stage != STAGE:
            raise ValueError(f"Def-GAN has one stage {STAGE!r}, not {stage!r}")

    @staticmethod
    def _gen_args(x) -> tuple:
        return x["source"], x["source_pose"], x["target_pose"], x["transforms"], x["masks"]

    def _disc_args(self, x, image: jax.Array) -> tuple:
        """D inputs in the network frame; ``image`` (data size) is padded as the source is."""
        return (
            x["source"],
            x["source_pose"],
            models.pad_to_frame(image, self.cfg.image_size),
            x["target_pose"],
        )

    def _generate(self, gen_vars: Mapping[str, Any], x, rng: jax.Array | None, train: bool) -> jax.Array:
        rngs = {"dropout": rng} if rng is not None else {}
        out = self.gen.apply({"params": gen_vars["params"]}, *self._gen_args(x), train=train, rngs=rngs)
        return models.crop_from_frame(out["image"], x["size"])

    def _d(self, disc_vars: Mapping[str, Any], x, image: jax.Array) -> jax.Array:
        return self.disc.apply({"params": disc_vars["params"]}, *self._disc_args(x, image))

    def _features(self, frozen: Frozen, images: jax.Array) -> dict[str, jax.Array]:
        if self.keras_vgg:
            vgg_in = keras_vgg.defgan_preprocess(images)
        else:
            vgg_in = vgg_lib.imagenet_normalize(images)
        return self.vgg.apply({"params": frozen["vgg19"]}, vgg_in)

    # ------------------------------------------------------------------------------------------ step

    def forward(
        self, stage: str, variables: PlayerVariables, frozen: Frozen, batch: Mapping[str, Any], rng: jax.Array
    ) -> tuple[Outputs, StateUpdates]:
        """The step's one train-mode generator pass (decoder dropout from ``rng``): ``{image}`` at data size."""
        del frozen
        self._check_stage(stage)
        return {"image": self._generate(variables["gen"], self.inputs(batch), rng, train=True)}, {}

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
        self._check_stage(stage)
        x = self.inputs(batch)
        fake = outputs["image"]
        if player == "disc":
            real_term, fake_term = sigmoid_bce.discriminator_terms(
                self._d(variables["disc"], x, x["target"]), self._d(variables["disc"], x, fake)
            )
            return real_term + fake_term, ({"true": real_term, "fake": fake_term}, {})
        if player != "gen":
            raise ValueError(f"Def-GAN has players {PLAYERS}, not {player!r}")
        opt = self.options
        terms: dict[str, jax.Array] = {}
        if opt.gan:
            terms["gan"] = sigmoid_bce.generator_loss(self._d(variables["disc"], x, fake))
        if opt.l1:
            if self.vgg_layers:
                feats_fake = self._features(frozen, fake)
                feats_real = jax.lax.stop_gradient(self._features(frozen, x["target"]))
                pairs = [(feats_real[n], feats_fake[n]) for n in self.vgg_layers]
            else:
                pairs = [(x["target"], fake)]
            terms["l1"] = sum(nearest_neighbour.reconstruction_loss(r, f, opt.nn_area) for r, f in pairs)
        total = opt.gan * terms.get("gan", 0.0) + opt.l1 * terms.get("l1", 0.0)
        return jnp.asarray(total, jnp.float32), (terms, {})

    # ------------------------------------------------------------------------------------------ predict

    def predict(
        self, variables: PlayerVariables, batch: Mapping[str, Any], rng: jax.Array | None = None
    ) -> dict[str, jax.Array]:
        """Learning phase 0 (no dropout) as the original's test.py, unless ``dropout_at_test`` (then ``rng``)."""
        x = self.inputs(batch)
        train = self.options.dropout_at_test
        if train and rng is None:
            raise ValueError("Def-GAN dropout_at_test needs an rng for predict")
        return {"image": self._generate(variables["gen"], x, rng if train else None, train=train)}


def build(config) -> DefGAN:
    """``config.model``: ``ptx.models.defgan.Config`` fields; ``config.loss``: ``l1``, ``gan``, ``nn_area``,
    ``content_layers``, ``dropout_at_test``; top level: ``vgg_path``, ``vgg_fallback_random``."""
    model = model_fields(models.Config, config.model, "defgan")
    loss = dict(config.get("loss", {}))
    fields = {f.name for f in dataclasses.fields(Options)} - {"vgg_path", "vgg_fallback_random"}
    unknown = sorted(set(loss) - fields)
    if unknown:
        raise ValueError(f"config.loss has unknown keys {unknown}; Def-GAN loss keys: {sorted(fields)}")
    for stage in config.get("stages", ()):
        if stage.name != STAGE:
            raise ValueError(f"Def-GAN config.stages: one stage named {STAGE!r} expected, got {stage.name!r}")
    layers = loss.pop("content_layers", ())
    layers = tuple(n for n in (layers.split(",") if isinstance(layers, str) else layers) if n and n != "none")
    options = Options(
        **loss,
        content_layers=layers,
        vgg_path=str(config.get("vgg_path", "")),
        vgg_fallback_random=bool(config.get("vgg_fallback_random", False)),
    )
    return DefGAN(models.Config(**model), options)
