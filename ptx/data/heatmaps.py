"""Keypoints -> pose heatmaps on device (jnp). The originals precompute these to disk (~160 GB); we never do.

All originals (PATN/pSSIM ``cords_to_map``, GFLA, Def-GAN, SCA-GAN, CASD) use the same formula per joint k:

    map[row, col, k] = exp(-((row - y_k)^2 + (col - x_k)^2) / (2 sigma^2))        peak 1, no cut-off

with an all-zero channel when either coordinate of the joint is -1. They differ in three details, all
switchable here:

* ``truncate_centres``: GFLA truncates the (rescaled) centre toward zero with ``int()`` (gfla.md section 7);
  PATN, Def-GAN, SCA-GAN and CASD use the CSV's integer coordinates as they are (same thing for integers).
  Default True: a no-op on integer keypoints, GFLA's behaviour on resized ones.
* ``keep_outside``: every original keeps the Gaussian tail of a joint that lies outside the image (GFLA:
  "points moved outside the image still leave their Gaussian tail"; the others have no test at all). ptx's
  contract (issue 2) zeroes such channels by default; pass ``keep_outside=True`` for bit-level parity with any
  original. The difference only shows for joints moved off-image by augmentation or resizing -- the CSVs and the
  puppets renderer mark off-image joints -1.
* sigma: 6 for PATN, pSSIM, GFLA, Def-GAN, CASD; 12 for SCA-GAN.

:func:`point_maps` reproduces the uint8 truncation quirk of PATN's fashion script and CASD's preprocessing (a 1 at
the joint's pixel, 0 elsewhere); :func:`casd_limb_maps` gives CASD's 12 limb distance maps.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ptx.data.keypoints import CASD_LIMBS, MISSING, NUM_KEYPOINTS


def _centres(kps, size, truncate_centres: bool, keep_outside: bool):
    h, w = size
    y, x = kps[..., 0], kps[..., 1]
    valid = (y != MISSING) & (x != MISSING)
    if truncate_centres:
        y, x = jnp.trunc(y), jnp.trunc(x)
    if not keep_outside:
        valid &= (y >= 0) & (y <= h - 1) & (x >= 0) & (x <= w - 1)
    return y, x, valid, h, w


def gaussian_heatmaps(
    keypoints,
    size: tuple[int, int],
    sigma: float = 6.0,
    *,
    truncate_centres: bool = True,
    keep_outside: bool = False,
):
    """(..., 18, 2) (y, x) keypoints -> float32 (..., h, w, 18) Gaussian maps, peak 1; jittable, batched.

    ``size``, ``sigma`` and the flags must be static under ``jit``. A joint is "outside" when its (truncated)
    centre is not within [0, h-1] x [0, w-1]. The map is separable, exp(a + b) = exp(a) exp(b), so it costs
    (h + w) exponentials per joint; the product differs from the originals' single exp by float rounding only
    (< 1e-6).
    """
    kps = jnp.asarray(keypoints, jnp.float32)
    if kps.shape[-2:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"expected keypoints of shape (..., {NUM_KEYPOINTS}, 2) as (y, x), got {kps.shape}")
    size = (int(size[0]), int(size[1]))
    return _gaussian_heatmaps(kps, size, float(sigma), bool(truncate_centres), bool(keep_outside))


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _gaussian_heatmaps(kps, size, sigma, truncate_centres, keep_outside):
    # One compiled computation per (shape, options) even when called eagerly; inlined under an outer jit.
    y, x, valid, h, w = _centres(kps, size, truncate_centres, keep_outside)
    inv = -1.0 / (2.0 * float(sigma) ** 2)
    rows = jnp.arange(h, dtype=jnp.float32)
    cols = jnp.arange(w, dtype=jnp.float32)
    gy = jnp.exp(inv * (rows[:, None] - y[..., None, :]) ** 2)  # (..., h, 18)
    gx = jnp.exp(inv * (cols[:, None] - x[..., None, :]) ** 2)  # (..., w, 18)
    gy = jnp.where(valid[..., None, :], gy, 0.0)
    return gy[..., :, None, :] * gx[..., None, :, :]


def point_maps(keypoints, size: tuple[int, int], *, keep_outside: bool = False):
    """(..., h, w, 18) maps with 1 at each present joint's pixel: the originals' Gaussian written into uint8.

    PATN's fashion script and CASD allocate the heatmap array as uint8, so every value below 1 truncates to 0
    (patn.md section 5, casd.md "BP"). Equal to ``floor`` of the Gaussian maps without centre truncation, which
    is what this computes (non-integer centres give all-zero channels there too).
    """
    maps = gaussian_heatmaps(keypoints, size, 1.0, truncate_centres=False, keep_outside=keep_outside)
    return jnp.floor(maps)


def casd_limb_maps(keypoints, size: tuple[int, int], *, reproduce_coincident_quirk: bool = True):
    """CASD's limb "distance" maps (BPD): (..., 18, 2) keypoints -> float32 (..., h, w, 12).

    For each limb of :data:`ptx.data.keypoints.CASD_LIMBS`, every pixel gets exp(-0.1 * its distance to the
    infinite line through the two joints) (casd.md, "BPD"); the channel is zero when either joint is missing.
    CASD reads the joints back from its uint8 point maps, so a joint outside the image counts as missing here
    too; with the CSVs' integer keypoints this equals the original exactly. When both joints coincide the
    original fills the channel with the Frobenius norm of the whole (2, h, w) offset field, without exp; kept
    by default (``reproduce_coincident_quirk=False`` gives a zero channel instead).
    """
    kps = jnp.asarray(keypoints, jnp.float32)
    if kps.shape[-2:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"expected keypoints of shape (..., {NUM_KEYPOINTS}, 2) as (y, x), got {kps.shape}")
    return _casd_limb_maps(kps, (int(size[0]), int(size[1])), bool(reproduce_coincident_quirk))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _casd_limb_maps(kps, size, quirk):
    y, x, valid, h, w = _centres(kps, size, False, False)
    a_idx = jnp.array([a for a, _ in CASD_LIMBS])
    b_idx = jnp.array([b for _, b in CASD_LIMBS])
    y0, x0, y1, x1 = y[..., a_idx], x[..., a_idx], y[..., b_idx], x[..., b_idx]  # (..., 12)
    ok = valid[..., a_idx] & valid[..., b_idx]
    dy, dx = y1 - y0, x1 - x0
    norm = jnp.sqrt(dy * dy + dx * dx)
    rows = jnp.arange(h, dtype=jnp.float32)[:, None, None]  # (h, 1, 1)
    cols = jnp.arange(w, dtype=jnp.float32)[None, :, None]  # (1, w, 1)
    ry = rows - y0[..., None, None, :]
    rx = cols - x0[..., None, None, :]
    # |cross(p - p0, d)| / |d|: distance to the line through the two joints
    dist = (
        jnp.abs(ry * dx[..., None, None, :] - rx * dy[..., None, None, :])
        / jnp.maximum(norm, 1e-12)[..., None, None, :]
    )
    maps = jnp.exp(-0.1 * dist)
    coincident = norm == 0
    if quirk:
        # Frobenius norm of the offset field: sqrt(sum over the grid of (r - y0)^2 + (c - x0)^2)
        r = jnp.arange(h, dtype=jnp.float32)
        c = jnp.arange(w, dtype=jnp.float32)
        s_rows = w * jnp.sum((r - y0[..., None]) ** 2, axis=-1)
        s_cols = h * jnp.sum((c - x0[..., None]) ** 2, axis=-1)
        const = jnp.sqrt(s_rows + s_cols)
        maps = jnp.where(coincident[..., None, None, :], const[..., None, None, :], maps)
    else:
        ok = ok & ~coincident
    return jnp.where(ok[..., None, None, :], maps, 0.0)
