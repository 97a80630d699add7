"""VGG perceptual (content) and style losses on dicts of named NHWC activations.

The VGG itself lives in ``ptx.nn.vgg``; these functions only see its outputs, so any feature extractor that
returns ``{layer name: (B, H, W, C)}`` works. What the originals feed VGG differs, hence
``vgg_input``: GFLA passes its [-1, 1] images unchanged (``normalization="none"``); PATN maps them to [0, 1]
and applies the ImageNet mean/std (``normalization="imagenet"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# GFLA's layer choices (external_function.VGGLoss / StyleLoss).
GFLA_CONTENT_LAYERS: dict[str, float] = {
    "relu1_1": 1.0,
    "relu2_1": 1.0,
    "relu3_1": 1.0,
    "relu4_1": 1.0,
    "relu5_1": 1.0,
}
GFLA_STYLE_LAYERS: tuple[str, ...] = ("relu2_2", "relu3_4", "relu4_4", "relu5_2")


def vgg_input(images: jax.Array, normalization: str = "none") -> jax.Array:
    """Map [-1, 1] NHWC images to what the VGG of a given method expects."""
    if normalization == "none":
        return images
    if normalization == "imagenet":
        mean = jnp.asarray(IMAGENET_MEAN, images.dtype)
        std = jnp.asarray(IMAGENET_STD, images.dtype)
        return ((images + 1.0) * 0.5 - mean) / std
    raise ValueError(f"unknown VGG input normalization {normalization!r}; expected 'none' or 'imagenet'")


def _require(feats: Mapping[str, jax.Array], name: str) -> jax.Array:
    if name not in feats:
        raise KeyError(f"VGG features have no layer {name!r}; available: {', '.join(sorted(feats))}")
    return feats[name]


def content_loss(
    feats_x: Mapping[str, jax.Array], feats_y: Mapping[str, jax.Array], weights: Mapping[str, float]
) -> jax.Array:
    """sum_l w_l * mean |phi_l(x) - phi_l(y)| over the named layers."""
    total = jnp.zeros((), jnp.float32)
    for name, w in weights.items():
        a, b = _require(feats_x, name), _require(feats_y, name)
        total = total + w * jnp.mean(jnp.abs(a.astype(jnp.float32) - b.astype(jnp.float32)))
    return total


def gram(features: jax.Array) -> jax.Array:
    """Gram matrix F F^T / (C H W) of NHWC features -> (B, C, C)."""
    b, h, w, c = features.shape
    f = features.reshape(b, h * w, c).astype(jnp.float32)
    return jnp.einsum("bnc,bnd->bcd", f, f, precision=jax.lax.Precision.HIGHEST) / (c * h * w)


def style_loss(
    feats_x: Mapping[str, jax.Array], feats_y: Mapping[str, jax.Array], layers: Sequence[str]
) -> jax.Array:
    """sum_l mean |gram(phi_l(x)) - gram(phi_l(y))|."""
    total = jnp.zeros((), jnp.float32)
    for name in layers:
        total = total + jnp.mean(jnp.abs(gram(_require(feats_x, name)) - gram(_require(feats_y, name))))
    return total
