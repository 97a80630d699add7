"""Per-pixel classification losses on low-resolution logit maps (CASD's attention-map cross-entropy, AMCE).

CASD supervises each cross-attention block's energy map (B, h, w, K pre-softmax region scores) with the target
parsing: the logits are upsampled bilinearly to the parsing's size (PyTorch ``nn.Upsample(mode='bilinear')``,
``align_corners=False``) and scored with the mean cross-entropy over all pixels of the batch. For upsampling,
``jax.image.resize(..., "bilinear")`` is that same interpolation (half-pixel centres; at the border it renormalises
over the in-image taps, which equals PyTorch's clamp of the source coordinate).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def upsample_bilinear(logits: jax.Array, size: tuple[int, int]) -> jax.Array:
    """NHWC bilinear resize to ``size`` (H, W), align_corners=False."""
    b, _, _, k = logits.shape
    return jax.image.resize(logits.astype(jnp.float32), (b, *size, k), "bilinear")


def upsampled_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean cross-entropy of ``logits`` (B, h, w, K), upsampled to the (B, H, W) int ``labels``' size."""
    up = upsample_bilinear(logits, labels.shape[1:3])
    log_p = jax.nn.log_softmax(up, axis=-1)
    picked = jnp.take_along_axis(log_p, labels[..., None].astype(jnp.int32), axis=-1)
    return -jnp.mean(picked)
