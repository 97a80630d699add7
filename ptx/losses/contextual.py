"""Contextual (CX) loss (Mechrez et al., ECCV 2018) on NHWC feature maps, as SCA-GAN and CASD use it.

Both originals take ADGAN's ``CXLoss(sigma=0.5, b=1.0)`` on relu3_2 and relu4_2 of a Gatys-style VGG19
(``vgg_conv.pth``, raw [-1, 1] input) and sum it over the layers, times ``lambda_cx`` (0.1). Per layer, with
T the target's features and I the generated image's:

1. centre both by the mean of T (``centre="target_batch"``: over batch AND space, per channel, as the
   originals; ``"target_sample"``: per sample over space; ``"none"``);
2. L2-normalise every position's channel vector (the originals add no epsilon; ``norm_eps`` can);
3. d_ij = (1 - cos(I_i, T_j)) / 2 for every generated position i and target position j (per sample);
4. relative distance r_ij = d_ij / (min_j d_ij + eps), eps = 1e-5;
5. CX_ij = exp((b - r_ij) / sigma) / sum_j exp((b - r_ij) / sigma): a softmax over j of -r_ij / sigma, so
   the band width b cancels (the originals' b = 1 changes nothing) and is not a parameter here;
6. per sample CX = mean_j max_i CX_ij; loss = mean over the batch of -log CX.

Memory is one (H W) x (H W) matrix per sample and layer (relu3_2 at 256x176: 2816^2 floats = 32 MB).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

CENTRES = ("target_batch", "target_sample", "none")
SCAGAN_LAYERS: dict[str, float] = {"relu3_2": 1.0, "relu4_2": 1.0}  # ADGAN / SCA-GAN / CASD: r32 + r42
SIGMA = 0.5
EPS = 1e-5


def _centred(generated: jax.Array, target: jax.Array, centre: str) -> tuple[jax.Array, jax.Array]:
    if centre == "none":
        return generated, target
    axes = (0, 1, 2) if centre == "target_batch" else (1, 2)
    mean = jnp.mean(target, axis=axes, keepdims=True)
    return generated - mean, target - mean


def _unit(x: jax.Array, eps: float) -> jax.Array:
    norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True))
    return x / (norm + eps) if eps else x / norm


def contextual_similarity(
    generated: jax.Array,
    target: jax.Array,
    *,
    sigma: float = SIGMA,
    eps: float = EPS,
    centre: str = "target_batch",
    norm_eps: float = 0.0,
) -> jax.Array:
    """Per-sample CX similarity (B,) of two (B, H, W, C) feature maps (steps 1-6 of the module doc, no log)."""
    if centre not in CENTRES:
        raise ValueError(f"contextual centre {centre!r}; expected one of {CENTRES}")
    if generated.shape != target.shape or generated.ndim != 4:
        raise ValueError(
            f"contextual: need two (B, H, W, C) maps of one shape, got {generated.shape}, {target.shape}"
        )
    i, t = _centred(generated.astype(jnp.float32), target.astype(jnp.float32), centre)
    b, c = i.shape[0], i.shape[-1]
    i = _unit(i, norm_eps).reshape(b, -1, c)
    t = _unit(t, norm_eps).reshape(b, -1, c)
    cos = jnp.einsum("bic,bjc->bij", i, t, precision=jax.lax.Precision.HIGHEST)
    dist = (1.0 - cos) / 2.0
    relative = dist / (jnp.min(dist, axis=2, keepdims=True) + eps)
    cx = jax.nn.softmax(-relative / sigma, axis=2)  # normalised over target positions j
    return jnp.mean(jnp.max(cx, axis=1), axis=1)


def contextual_loss(
    generated: jax.Array,
    target: jax.Array,
    *,
    sigma: float = SIGMA,
    eps: float = EPS,
    centre: str = "target_batch",
    norm_eps: float = 0.0,
) -> jax.Array:
    """One layer's CX loss: mean over the batch of -log CX (``CXLoss(featureT=target, featureI=generated)``)."""
    cx = contextual_similarity(generated, target, sigma=sigma, eps=eps, centre=centre, norm_eps=norm_eps)
    return jnp.mean(-jnp.log(cx))


def layered_contextual_loss(
    feats_generated: Mapping[str, jax.Array],
    feats_target: Mapping[str, jax.Array],
    layers: Mapping[str, float] | Sequence[str] = SCAGAN_LAYERS,
    **options,
) -> jax.Array:
    """sum_l w_l * contextual_loss(phi_l(generated), phi_l(target)) over named layers (a list means weight 1).

    ``options`` go to :func:`contextual_loss` (sigma, eps, centre, norm_eps).
    """
    weights = dict(layers) if isinstance(layers, Mapping) else {name: 1.0 for name in layers}
    total = jnp.zeros((), jnp.float32)
    for name, w in weights.items():
        missing = [n for n, f in (("generated", feats_generated), ("target", feats_target)) if name not in f]
        if missing:
            raise KeyError(f"contextual loss: no layer {name!r} in the {' and '.join(missing)} features")
        total = total + w * contextual_loss(feats_generated[name], feats_target[name], **options)
    return total
