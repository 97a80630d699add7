"""GFLA's sampling-correctness loss: does the flow fetch, for each target position, the most similar source feature?

For one flow at one VGG layer (T = VGG(target), S = VGG(source), NHWC (B, h, w, C)):

* ``c_max[t]`` = max over every source position s of cos(S[s], T[t]) (the best any flow could do);
* ``S_w`` = S resampled at the flowed positions by GFLA's Gaussian ``resample2d`` (4x4 taps, sigma 2);
* ``c[t]`` = cos(S_w[t], T[t]);
* loss = mean_(b,t) exp(-c / (c_max + 1e-8)) - e^-1 (0 when every target position gets its best match).

The cosine matrix is (h w) x (h w) per sample: 1024^2 at 1/8 and 4096^2 at 1/4 of a 256^2 image. It is built
one sample at a time (``lax.map``), so the peak is one such matrix, never the batch of them. VGG features are
of data images, so the only gradient path is through the flow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

EPS = 1e-8

# Attention layer number (counted from the output, resolution 1/2^L) -> VGG layer at that resolution.
# The original's list is ['rel1_1', 'relu2_1', 'relu3_1', 'relu4_1'] indexed by L; L = 0 names no real layer.
LAYER_FOR_ATTENTION: dict[int, str] = {1: "relu2_1", 2: "relu3_1", 3: "relu4_1"}

Resample = Callable[[jax.Array, jax.Array], jax.Array]


def _gaussian_resample(image: jax.Array, flow: jax.Array) -> jax.Array:
    from ptx.ops import gaussian_resample  # imported lazily: ops may pick a kernel at call time

    return gaussian_resample(image, flow, kernel_size=4, dilation=1, sigma=2.0)


def resize_nearest(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """torch ``F.interpolate(mode='nearest')`` on NHWC: source index floor(dst * in / out); values unchanged."""
    h, w = x.shape[1:3]
    if (h, w) == tuple(size):
        return x
    iy = np.minimum(np.floor(np.arange(size[0]) * (h / size[0])).astype(np.int32), h - 1)
    ix = np.minimum(np.floor(np.arange(size[1]) * (w / size[1])).astype(np.int32), w - 1)
    return x[:, iy][:, :, ix]


def best_cosine(target: jax.Array, source: jax.Array) -> jax.Array:
    """max over source positions of cos(source[s], target[t]) -> (B, h*w), one sample at a time."""
    b, h, w, c = target.shape

    def one(ts):
        t, s = ts
        t = t.reshape(h * w, c)
        s = s.reshape(-1, c)
        tn = t / (jnp.linalg.norm(t, axis=-1, keepdims=True) + EPS)
        sn = s / (jnp.linalg.norm(s, axis=-1, keepdims=True) + EPS)
        sim = jnp.einsum("sc,tc->st", sn, tn, precision=lax.Precision.HIGHEST)
        return jnp.max(sim, axis=0)

    return lax.map(one, (target.astype(jnp.float32), source.astype(jnp.float32)))


def cosine(a: jax.Array, b: jax.Array) -> jax.Array:
    """torch ``F.cosine_similarity`` over the last axis: a.b / (max(|a|, eps) max(|b|, eps))."""
    na = jnp.maximum(jnp.linalg.norm(a, axis=-1), EPS)
    nb = jnp.maximum(jnp.linalg.norm(b, axis=-1), EPS)
    return jnp.sum(a * b, axis=-1) / (na * nb)


def sampling_correctness(
    target: jax.Array, source: jax.Array, flow: jax.Array, *, resample: Resample | None = None
) -> jax.Array:
    """Correctness of one flow (B, hf, wf, 2) (x, y pixels) against VGG features (B, h, w, C) of one layer."""
    if target.shape != source.shape:
        raise ValueError(f"target features {target.shape} and source features {source.shape} differ in shape")
    b, h, w, c = target.shape
    flow = resize_nearest(flow, (h, w))
    c_max = best_cosine(target, source)
    warped = (resample or _gaussian_resample)(source.astype(jnp.float32), flow.astype(jnp.float32))
    c_t = cosine(warped.reshape(b, h * w, c), target.reshape(b, h * w, c).astype(jnp.float32))
    return jnp.mean(jnp.exp(-c_t / (c_max + EPS))) - math.exp(-1.0)


def correctness_loss(
    target_feats: Mapping[str, jax.Array],
    source_feats: Mapping[str, jax.Array],
    flows: Sequence[jax.Array],
    attn_layers: Sequence[int],
    *,
    resample: Resample | None = None,
) -> jax.Array:
    """Sum over flows (deepest first) of ``sampling_correctness`` at the VGG layer of each attention layer.

    Flow i pairs with attention layer sorted(attn_layers, reverse=True)[i]: fashion [1/8 <-> relu4_1,
    1/4 <-> relu3_1], market [1/4 <-> relu3_1].
    """
    used = sorted((int(a) for a in attn_layers), reverse=True)
    if len(flows) > len(used):
        raise ValueError(f"{len(flows)} flows but only {len(used)} attention layers {list(attn_layers)}")
    total = jnp.zeros((), jnp.float32)
    for flow, layer in zip(flows, used):
        if layer not in LAYER_FOR_ATTENTION:
            raise ValueError(
                f"no VGG layer for attention layer {layer}; supported: {sorted(LAYER_FOR_ATTENTION)}"
            )
        name = LAYER_FOR_ATTENTION[layer]
        total = total + sampling_correctness(target_feats[name], source_feats[name], flow, resample=resample)
    return total
