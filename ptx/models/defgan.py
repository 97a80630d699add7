"""Deformable GANs (Siarohin et al., CVPR 2018) in NHWC flax.linen: the generator with deformable skip
connections and the 42-channel patch discriminator, layer for layer as the original Keras code
(reference card ``shared/reference/defgan.md`` sections 3-4), so ``ptx.convert.defgan`` loads the original's
Keras weights and the PyTorch port's state dicts.

Generator (``warp_skip`` ``mask`` / ``full``): an appearance encoder on ``cat(source image, source pose)`` and a
pose encoder on the target pose, each a 3x3 conv (bias, no activation) then stride-2 blocks (LeakyReLU 0.2,
4x4 conv without bias, instance norm; the deepest without norm). The four highest-resolution appearance
features are warped part by part into the target pose (``ptx.ops.affine.affine_warp``: 10 affine maps and part
masks for ``mask``, one map for ``full``) and every skip is ``cat(appearance, pose)``. The decoder goes deepest
first: ReLU, 4x4 transposed conv (no bias, ``padding`` 1 = Keras ``valid`` + 1 px crop), instance norm,
element-wise dropout 0.5 in its first three blocks (training only), then ``cat(x, skip)``; the last level is
ReLU, 3x3 conv with bias, tanh. ``warp_skip="none"`` (the paper's baseline) is one encoder on
``cat(source image, source pose, target pose)`` with single-width skips.

Instance norm is keras-contrib's ``axis=None`` form (``ptx.nn.keras_norm``): statistics over (H, W, C) per
sample, one scalar gamma/beta, ``(x - mean) / (std + 1e-3)``. ``norm="torch"`` switches to the PyTorch port's
``sqrt(var + 1e-3)`` (to reproduce the port's outputs; not the paper's network).

Depth: the original has 6 levels when ``max(image_size) == 128`` (Market 128x64) and 7 otherwise (its
DeepFashion frame is the raw 256x256 In-shop image). Widths default to that rule; any explicit widths with at
least 4 levels work, with H and W divisible by 2**(levels - 1).

**256x176 frames** (ptx's DeepFashion data, PATN's crop of the 256x256 images): 176 does not halve six times
(176 = 11 * 16), so no depth of this network fits it. ptx's answer is the original's own frame: the data is
padded back to 256x256 (40 columns each side, which is exactly what the 176 crop removed), keypoints shifted by
the same offset before the geometry and heatmaps are computed, the 7-level network runs on the 256x256 frame and
the output is cropped back to 256x176 (:func:`frame_offset`, :func:`pad_to_frame`, :func:`crop_from_frame`,
:func:`keypoints_to_frame`; the recipe applies them when its ``Config.image_size`` is larger than the data).
Converted official fashion weights therefore run unchanged on 256x176 data. The image pad replicates the
border pixels (the removed columns were background); heatmaps are computed in the frame, so a joint near the
border keeps its full Gaussian.

Discriminator (``disc_type=call``): ``cat(source image, source pose, image, target pose)``, a 4x4 stride-2
'valid' conv with bias and no activation, then LeakyReLU blocks of ``disc_filters[1:]`` and a last 1-channel block
without norm, sigmoid, flattened: (B, P) patch probabilities (P = 3 at 128x64, 49 at 256x256).

Initialisation as Keras: glorot-uniform kernels, zero biases, IN gamma 1 / beta 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ptx.nn import layers
from ptx.nn.keras_norm import FORMULAS, KerasInstanceNorm
from ptx.ops.affine import affine_warp

WARP_SKIPS = ("mask", "full", "none")
AGGREGATIONS = ("max", "avg")
NUM_WARPED_SKIPS = 4  # the original warps skips i < 4 only
NUM_PARTS = 10

_glorot = nn.initializers.glorot_uniform()


def default_filters(image_size: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The original's (encoder, decoder) widths: 6 levels if max(image_size) == 128, else 7."""
    if max(image_size) == 128:
        return (64, 128, 256, 512, 512, 512), (512, 512, 512, 256, 128, 3)
    return (64, 128, 256, 512, 512, 512, 512), (512, 512, 512, 512, 256, 128, 3)


@dataclasses.dataclass(frozen=True)
class Config:
    """Options of the original's ``make_generator`` / ``make_discriminator`` (``cmd.py`` names where they exist).

    ``image_size`` is the network's frame (H, W); data of a smaller size is padded into it (module doc).
    Empty ``encoder_filters`` / ``decoder_filters`` mean the original's size rule (:func:`default_filters`).
    """

    image_size: tuple[int, int] = (128, 64)
    warp_skip: str = "mask"  # mask (paper "full"/"dsc"), full (one affine map), none (baseline)
    warp_agg: str = "max"
    encoder_filters: tuple[int, ...] = ()
    decoder_filters: tuple[int, ...] = ()
    disc_filters: tuple[int, ...] = (64, 128, 256, 512)  # first conv, then blocks; a 1-channel block follows
    norm: str = "keras"  # keras-contrib formula; "torch" = the PyTorch port's
    use_input_pose: bool = True
    image_nc: int = 3
    pose_nc: int = 18
    heatmap_sigma: float = 6.0
    warp_impl: str = "auto"

    def __post_init__(self):
        object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))
        for name in ("encoder_filters", "decoder_filters", "disc_filters"):
            object.__setattr__(self, name, tuple(int(w) for w in getattr(self, name)))
        if self.warp_skip not in WARP_SKIPS:
            raise ValueError(f"defgan Config.warp_skip={self.warp_skip!r}; expected one of {WARP_SKIPS}")
        if self.warp_agg not in AGGREGATIONS:
            raise ValueError(f"defgan Config.warp_agg={self.warp_agg!r}; expected one of {AGGREGATIONS}")
        if self.warp_skip == "full" and self.warp_agg != "max":
            raise ValueError(
                "defgan Config: warp_skip='full' has one transform and no masks; warp_agg must be 'max'"
            )
        if self.norm not in FORMULAS:
            raise ValueError(f"defgan Config.norm={self.norm!r}; expected one of {FORMULAS}")
        enc, dec = self.encoder, self.decoder
        if len(enc) != len(dec) or len(enc) < NUM_WARPED_SKIPS:
            raise ValueError(
                f"defgan Config: encoder {enc} and decoder {dec} widths need the same number of levels, "
                f"at least {NUM_WARPED_SKIPS} (the four warped skips)"
            )
        if len(self.disc_filters) < 1:
            raise ValueError("defgan Config.disc_filters needs at least the first conv's width")
        m = self.size_multiple
        if self.image_size[0] % m or self.image_size[1] % m:
            raise ValueError(
                f"defgan Config.image_size={self.image_size} must be divisible by {m} (2**(levels-1)) for "
                f"{len(enc)} levels; pad the data into a larger frame (see ptx.models.defgan docs)"
            )

    @property
    def encoder(self) -> tuple[int, ...]:
        return self.encoder_filters or default_filters(self.image_size)[0]

    @property
    def decoder(self) -> tuple[int, ...]:
        return self.decoder_filters or default_filters(self.image_size)[1]

    @property
    def size_multiple(self) -> int:
        return 2 ** (len(self.encoder) - 1)

    @property
    def num_transforms(self) -> int:
        return {"mask": NUM_PARTS, "full": 1, "none": 0}[self.warp_skip]


VARIANTS: dict[str, Config] = {
    "market": Config(image_size=(128, 64)),
    "fashion": Config(image_size=(256, 256)),
    "market_baseline": Config(image_size=(128, 64), warp_skip="none"),
    "fashion_baseline": Config(image_size=(256, 256), warp_skip="none"),
    "tiny": Config(
        image_size=(32, 16),
        encoder_filters=(4, 8, 8, 8),
        decoder_filters=(8, 8, 4, 3),
        disc_filters=(4, 8),
    ),
}


# ----------------------------------------------------------------------------------------------------------
# Frames (256x176 data in the original's 256x256 network frame).


def frame_offset(data_size: Sequence[int], frame: Sequence[int]) -> tuple[int, int]:
    """(top, left) offset of centred ``data_size`` inside ``frame``; both differences must be even."""
    dh, dw = int(frame[0]) - int(data_size[0]), int(frame[1]) - int(data_size[1])
    if dh < 0 or dw < 0 or dh % 2 or dw % 2:
        raise ValueError(
            f"data of size {tuple(data_size)} cannot be centred in the network frame {tuple(frame)}"
        )
    return dh // 2, dw // 2


def pad_to_frame(x: jax.Array, frame: Sequence[int], mode: str = "edge") -> jax.Array:
    """NHWC ``x`` centred in ``frame`` (``edge``: replicate the border; ``constant``: zeros)."""
    top, left = frame_offset(x.shape[1:3], frame)
    if top == 0 and left == 0:
        return x
    pads = ((0, 0), (top, top), (left, left), (0, 0))
    return jnp.pad(x, pads, mode=mode)


def crop_from_frame(x: jax.Array, data_size: Sequence[int]) -> jax.Array:
    """The centred ``data_size`` window of NHWC ``x`` (inverse of :func:`pad_to_frame`)."""
    top, left = frame_offset(data_size, x.shape[1:3])
    return x[:, top : top + int(data_size[0]), left : left + int(data_size[1])]


def keypoints_to_frame(keypoints, data_size: Sequence[int], frame: Sequence[int]):
    """(..., 18, 2) (y, x) keypoints shifted into the frame; missing joints (-1) stay -1 (numpy or jnp)."""
    top, left = frame_offset(data_size, frame)
    xp = jnp if isinstance(keypoints, jax.Array) else np
    missing = (keypoints[..., :1] == -1) | (keypoints[..., 1:] == -1)
    shifted = keypoints + xp.asarray([top, left], dtype=keypoints.dtype)
    return xp.where(missing, xp.asarray(-1, keypoints.dtype), shifted)


# ----------------------------------------------------------------------------------------------------------
# Networks.


class Block(nn.Module):
    """The original's ``block``: activation, stride-2 4x4 conv (down) or transposed conv (up), no bias,
    [instance norm], [element-wise dropout 0.5 in training]."""

    features: int
    down: bool = True
    norm: str | None = "keras"  # None: no norm
    dropout: bool = False
    leaky: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        x = layers.leaky_relu(x, 0.2) if self.leaky else nn.relu(x)
        if self.down:
            conv = layers.Conv2d(self.features, 4, stride=2, padding=1, use_bias=False, kernel_init=_glorot)
        else:
            conv = layers.ConvTranspose2d(
                self.features, 4, stride=2, padding=1, output_padding=0, use_bias=False, kernel_init=_glorot
            )
        x = conv(x)
        if self.norm is not None:
            x = KerasInstanceNorm(self.norm)(x)
        if self.dropout:
            x = nn.Dropout(0.5, deterministic=not train)(x)
        return x


class Encoder(nn.Module):
    """3x3 conv (bias, no activation), then down blocks; the deepest without norm. Returns every level."""

    filters: tuple[int, ...]
    norm: str

    @nn.compact
    def __call__(self, x: jax.Array) -> list[jax.Array]:
        x = layers.Conv2d(self.filters[0], 3, padding=1, use_bias=True, kernel_init=_glorot)(x)
        out = [x]
        last = len(self.filters) - 1
        for i in range(1, len(self.filters)):
            x = Block(self.filters[i], norm=None if i == last else self.norm, name=f"Block_{i}")(x)
            out.append(x)
        return out


class Decoder(nn.Module):
    """Skips deepest first; dropout in the first three up blocks; ReLU + 3x3 conv + tanh at the last level."""

    filters: tuple[int, ...]
    norm: str

    @nn.compact
    def __call__(self, skips: Sequence[jax.Array], *, train: bool = False) -> jax.Array:
        n = len(self.filters)
        x = None
        for i, (skip, nf) in enumerate(zip(reversed(skips), self.filters)):
            x = skip if i == 0 else jnp.concatenate([x, skip], axis=-1)
            if i == n - 1:
                x = layers.Conv2d(nf, 3, padding=1, use_bias=True, kernel_init=_glorot, name="Conv_out")(
                    nn.relu(x)
                )
            else:
                x = Block(nf, down=False, norm=self.norm, dropout=i < 3, leaky=False, name=f"Block_{i}")(
                    x, train=train
                )
        return jnp.tanh(x)


def _check(x: jax.Array | None, channels: int, size: tuple[int, int], what: str) -> None:
    if x is None or x.ndim != 4 or x.shape[-1] != channels or tuple(x.shape[1:3]) != size:
        shape = None if x is None else x.shape
        raise ValueError(f"Def-GAN {what}: expected (B, {size[0]}, {size[1]}, {channels}), got {shape}")


class Generator(nn.Module):
    """-> ``{"image": (B, H, W, 3) in [-1, 1]}``; the decoder skips (shallow first) are sown as
    ``intermediates/skip_i``.

    ``source`` (B,H,W,3) in [-1, 1]; ``source_pose``, ``target_pose`` (B,H,W,18) heatmaps; ``transforms``
    (B,T,8) target->source maps in frame pixels (T = 10 for ``mask``, 1 for ``full``) and ``masks`` (B,10,H,W)
    for ``mask`` (from ``ptx.ops.affine.batch_warp_inputs``). ``train`` turns the decoder's dropout on (rng
    ``"dropout"``).
    """

    config: Config

    @nn.compact
    def __call__(
        self,
        source: jax.Array,
        source_pose: jax.Array,
        target_pose: jax.Array,
        transforms: jax.Array | None = None,
        masks: jax.Array | None = None,
        *,
        train: bool = False,
    ) -> dict[str, jax.Array]:
        cfg = self.config
        size = cfg.image_size
        _check(source, cfg.image_nc, size, "source image")
        _check(source_pose, cfg.pose_nc, size, "source pose")
        _check(target_pose, cfg.pose_nc, size, "target pose")
        appearance = [source, source_pose] if cfg.use_input_pose else [source]
        if cfg.warp_skip == "none":
            skips = Encoder(cfg.encoder, cfg.norm, name="encoder")(
                jnp.concatenate([*appearance, target_pose], axis=-1)
            )
        else:
            app = Encoder(cfg.encoder, cfg.norm, name="encoder_app")(jnp.concatenate(appearance, axis=-1))
            pose = Encoder(cfg.encoder, cfg.norm, name="encoder_pose")(target_pose)
            skips = [
                jnp.concatenate([self._warp(a, transforms, masks) if i < NUM_WARPED_SKIPS else a, p], axis=-1)
                for i, (a, p) in enumerate(zip(app, pose))
            ]
        for i, skip in enumerate(skips):
            self.sow("intermediates", f"skip_{i}", skip)
        image = Decoder(cfg.decoder, cfg.norm, name="decoder")(skips, train=train)
        return {"image": image}

    def _warp(self, features: jax.Array, transforms, masks) -> jax.Array:
        cfg = self.config
        b, t = features.shape[0], cfg.num_transforms
        if transforms is None or tuple(transforms.shape) != (b, t, 8):
            got = None if transforms is None else transforms.shape
            raise ValueError(f"Def-GAN warp_skip={cfg.warp_skip!r} needs transforms ({b}, {t}, 8), got {got}")
        if cfg.warp_skip == "mask":
            want = (b, NUM_PARTS, *cfg.image_size)
            if masks is None or tuple(masks.shape) != want:
                raise ValueError(
                    f"Def-GAN warp_skip='mask' needs masks {want}, got {getattr(masks, 'shape', None)}"
                )
        else:
            masks = None
        return affine_warp(
            features,
            transforms,
            masks,
            init_image_size=cfg.image_size,
            aggregation=cfg.warp_agg,
            impl=cfg.warp_impl,
        )


class Discriminator(nn.Module):
    """``disc_type=call`` -> (B, P) patch probabilities (after the sigmoid, as the original's output)."""

    config: Config

    @nn.compact
    def __call__(
        self, source: jax.Array, source_pose: jax.Array, image: jax.Array, target_pose: jax.Array
    ) -> jax.Array:
        cfg = self.config
        parts = (
            [source, source_pose, image, target_pose] if cfg.use_input_pose else [source, image, target_pose]
        )
        x = jnp.concatenate(parts, axis=-1)
        x = layers.Conv2d(cfg.disc_filters[0], 4, stride=2, padding=0, use_bias=True, kernel_init=_glorot)(x)
        for i, nf in enumerate(cfg.disc_filters[1:], start=1):
            x = Block(nf, norm=cfg.norm, name=f"Block_{i}")(x)
        x = Block(1, norm=None, name=f"Block_{len(cfg.disc_filters)}")(x)
        return jax.nn.sigmoid(x).reshape(x.shape[0], -1)
