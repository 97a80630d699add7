"""The pSSIM study's losses (Shi et al., BMVC 2020; card ``shared/reference/pssim.md``).

* :func:`part_masks` -- 11 soft masks from the target keypoints (background, then head, 8 limbs, torso):
  an anisotropic Gaussian along each limb, peak-normalised; background = 1 - max of the parts.
* :func:`part_ssim` -- ``FPart_BSSIM``: the mean of a foreground term (per image, colour channel and part,
  SSIM of whole-image mask-weighted moments, no window) and a background term (windowed SSIM of the
  background-masked images). A missing part contributes exactly 1, as in the original.
* :func:`ssim_value` -- the ``SSIM`` loss module: windowed SSIM of images mapped to [0, 1].
* :func:`gram_style` -- the ``Style`` term: L1 between Gram matrices of one feature map.
* :data:`RECONSTRUCTION_TERMS` -- the original's ``--L1_type`` choices as the loss terms they switch on.

All values are similarities (higher is better); losses use ``1 - value``. Images are NHWC in [-1, 1]; masks are
NHWC with 11 channels. Windowed SSIM is ``ptx.ops.ssim.ssim_map`` with valid filtering.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ptx.data.keypoints import MISSING, NUM_KEYPOINTS, PSSIM_PARTS
from ptx.losses import perceptual
from ptx.ops import ssim as ssim_lib

C1 = 0.01**2  # data range 1
C2 = 0.03**2
TRAIN_WINDOW = (7, 0.8)  # win_size, win_sigma of the official train scripts and of tool/getPartSSIM.py

# The original's --L1_type values -> the G reconstruction terms they enable (weights come from the config).
# "PerSSIM" is left out: as committed it calls its loss constructor with the wrong arguments (card section 4).
RECONSTRUCTION_TERMS: dict[str, tuple[str, ...]] = {
    "origin": ("l1",),
    "perL1": ("perceptual",),
    "SSIM": ("ssim",),
    "Style": ("style",),
    "l1_plus_perL1": ("l1", "perceptual"),
    "SSIM_plus_perL1_l1": ("l1", "perceptual", "ssim"),
    "FPart_BSSIM_plus_perL1_L1": ("l1", "perceptual", "pssim"),
    "FPart_BSSIM_plus_perL1_style": ("style", "perceptual", "pssim"),
}


def part_masks(keypoints: jax.Array, size: tuple[int, int]) -> jax.Array:
    """(B, 18, 2) (y, x) keypoints -> (B, H, W, 11) float32 masks (``make_gaussain_limb_masks``).

    Part p spans endpoints p0, p1 (the torso: mean of the shoulders to mean of the hips). Its Gaussian has
    variance max(5, |p1 - p0|^2 / 1.2) along the limb and sigma_perp^2 across it, is centred at the midpoint
    and divided by (its maximum over the pixel grid + 1e-6). A part with any missing joint is all zero.
    """
    kps = jnp.asarray(keypoints, jnp.float32)
    if kps.ndim != 3 or kps.shape[1:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"part_masks: expected keypoints (B, {NUM_KEYPOINTS}, 2) as (y, x), got {kps.shape}")
    h, w = int(size[0]), int(size[1])
    rows = jnp.arange(h, dtype=jnp.float32)[:, None]
    cols = jnp.arange(w, dtype=jnp.float32)[None, :]
    present = jnp.all(kps != MISSING, axis=-1)  # (B, 18)
    parts = []
    for _, joints, sigma_perp in PSSIM_PARTS:
        idx = jnp.asarray(joints)
        ok = jnp.all(present[:, idx], axis=-1)  # (B,)
        if len(joints) == 2:
            p0, p1 = kps[:, joints[0]], kps[:, joints[1]]
        else:  # torso: shoulders' mean to hips' mean
            p0 = 0.5 * (kps[:, joints[0]] + kps[:, joints[1]])
            p1 = 0.5 * (kps[:, joints[2]] + kps[:, joints[3]])
        parts.append(jnp.where(ok[:, None, None], _limb_gaussian(p0, p1, sigma_perp, rows, cols), 0.0))
    fg = jnp.stack(parts, axis=-1)  # (B, H, W, 10)
    bg = 1.0 - fg.max(axis=-1, keepdims=True)
    return jnp.concatenate([bg, fg], axis=-1)


def _limb_gaussian(
    p0: jax.Array, p1: jax.Array, sigma_perp: float, rows: jax.Array, cols: jax.Array
) -> jax.Array:
    """(B, H, W) anisotropic Gaussian of one part for every image; p0, p1 are (B, 2) (y, x)."""
    (y0, x0), (y1, x1) = p0.T, p1.T
    cy, cx = 0.5 * (y0 + y1), 0.5 * (x0 + x1)
    var_par = jnp.maximum(5.0, ((y1 - y0) ** 2 + (x1 - x0) ** 2) / 1.2)
    var_perp = sigma_perp**2
    theta = jnp.arctan2(x1 - x0, y0 - y1)
    cos2, sin2, sin2t = jnp.cos(theta) ** 2, jnp.sin(theta) ** 2, jnp.sin(2 * theta)
    a = cos2 / (2 * var_par) + sin2 / (2 * var_perp)
    b = -sin2t / (4 * var_par) + sin2t / (4 * var_perp)
    c = sin2 / (2 * var_par) + cos2 / (2 * var_perp)
    dr = rows[None] - cy[:, None, None]  # (B, H, 1)
    dc = cols[None] - cx[:, None, None]  # (B, 1, W)
    e = a[:, None, None] * dr**2 + 2 * b[:, None, None] * dr * dc + c[:, None, None] * dc**2
    g = jnp.exp(-e)
    return g / (g.max(axis=(1, 2), keepdims=True) + 1e-6)


def _to_unit(x: jax.Array) -> jax.Array:
    return (x.astype(jnp.float32) + 1.0) * 0.5


def foreground_ssim(x: jax.Array, y: jax.Array, part_mask: jax.Array) -> jax.Array:
    """(B,) mean over 3 channels x 10 parts of SSIM from mask-weighted whole-image moments ([-1, 1] inputs)."""
    x01, y01 = _to_unit(x), _to_unit(y)
    m = part_mask[..., 1:].astype(jnp.float32)  # (B, H, W, P)
    wgt = m / (m.sum(axis=(1, 2), keepdims=True) + 1e-6)
    hp = jax.lax.Precision.HIGHEST

    def moment(a):
        return jnp.einsum("bhwc,bhwp->bcp", a, wgt, precision=hp)

    mx, my = moment(x01), moment(y01)
    vx = moment(x01 * x01) - mx * mx
    vy = moment(y01 * y01) - my * my
    vxy = moment(x01 * y01) - mx * my
    s = ((2 * mx * my + C1) / (mx * mx + my * my + C1)) * ((2 * vxy + C2) / (vx + vy + C2))
    return s.mean(axis=(1, 2))


def background_ssim(
    x: jax.Array, y: jax.Array, part_mask: jax.Array, win_size: int = 7, win_sigma: float = 0.8
) -> jax.Array:
    """(B,) windowed (valid) SSIM of the [0, 1] images multiplied by the soft background mask."""
    bg = part_mask[..., :1].astype(jnp.float32)
    smap = ssim_lib.ssim_map(_to_unit(x) * bg, _to_unit(y) * bg, win_size=win_size, sigma=win_sigma)
    return smap.mean(axis=(1, 2, 3))


def part_ssim_per_image(
    x: jax.Array, y: jax.Array, part_mask: jax.Array, win_size: int = 7, win_sigma: float = 0.8
) -> tuple[jax.Array, jax.Array]:
    """(foreground (B,), background (B,)) terms of pSSIM."""
    _check(x, y, part_mask)
    return foreground_ssim(x, y, part_mask), background_ssim(x, y, part_mask, win_size, win_sigma)


def part_ssim(
    x: jax.Array, y: jax.Array, part_mask: jax.Array, win_size: int = 7, win_sigma: float = 0.8
) -> jax.Array:
    """pSSIM (``FPart_BSSIM``, size_average): (mean foreground + mean background) / 2, a scalar."""
    fg, bg = part_ssim_per_image(x, y, part_mask, win_size, win_sigma)
    return 0.5 * (fg.mean() + bg.mean())


def ssim_value(x: jax.Array, y: jax.Array, win_size: int = 11, win_sigma: float = 1.5) -> jax.Array:
    """The ``SSIM`` loss module's value: Gaussian-window valid SSIM of [0, 1]-mapped images, batch mean."""
    if x.shape != y.shape:
        raise ValueError(f"ssim_value: shapes differ, {x.shape} vs {y.shape}")
    return ssim_lib.ssim_map(_to_unit(x), _to_unit(y), win_size=win_size, sigma=win_sigma).mean()


def gram_style(feat_x: jax.Array, feat_y: jax.Array) -> jax.Array:
    """``Style`` term: mean |G(fx) - G(fy)| with G = F F^T / (h w c) (``ptx.losses.perceptual.gram``)."""
    return jnp.mean(jnp.abs(perceptual.gram(feat_x) - perceptual.gram(feat_y)))


def _check(x: jax.Array, y: jax.Array, part_mask: jax.Array) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"pSSIM needs two NHWC batches of one shape, got {x.shape} and {y.shape}")
    if part_mask.shape != (*x.shape[:3], 1 + len(PSSIM_PARTS)):
        raise ValueError(
            f"pSSIM part_mask must be (B, H, W, {1 + len(PSSIM_PARTS)}) matching the images {x.shape}, "
            f"got {part_mask.shape}"
        )


@functools.partial(jax.jit, static_argnames=("win_size", "win_sigma"))
def part_ssim_from_keypoints(
    x: jax.Array, y: jax.Array, keypoints: jax.Array, win_size: int = 7, win_sigma: float = 0.8
) -> jax.Array:
    """pSSIM with the masks built from the TARGET keypoints (the evaluation protocol of getPartSSIM.py)."""
    return part_ssim(x, y, part_masks(keypoints, x.shape[1:3]), win_size, win_sigma)
