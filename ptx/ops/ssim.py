"""Differentiable SSIM in jax.numpy, with every knob the originals turn.

Two families use SSIM and they differ in details that move the numbers:

* **Losses** (pSSIM's ``losses/pytorch_msssim``): Gaussian window of ``win_size`` taps, valid filtering (map
  shrinks by ``win_size - 1``), population covariance, data range 1. -> ``ssim_map(..., padding="valid")``.
* **Metrics** (the papers' scripts call scikit-image): reflect-padded filtering over the whole image, then
  the border of ``(win_size - 1) // 2`` pixels is cropped before averaging; uniform (default 7) or Gaussian
  window (``truncate`` 3.5 in skimage >= 0.15 = 11 taps for sigma 1.5, scipy's 4.0 = 13 taps before);
  sample covariance by default. -> ``structural_similarity`` reproduces ``skimage.metrics.structural_similarity``
  for batches of NHWC images (``channel_axis=-1``), per image.

Inputs are NHWC. Statistics are computed on images shifted by a per-image, per-channel constant (SSIM is
invariant to it once the luminance term adds it back) so that float32 keeps skimage's float64 precision on
0..255 data.
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Padding = Literal["valid", "reflect"]


def gaussian_taps(sigma: float, radius: int) -> np.ndarray:
    """Normalised 1-D Gaussian on integer offsets -radius..radius (scipy ``gaussian_filter1d`` weights)."""
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * t * t / (sigma * sigma))
    return g / g.sum()


def uniform_taps(size: int) -> np.ndarray:
    """Box filter of odd ``size`` (scipy ``uniform_filter``)."""
    if size % 2 != 1:
        raise ValueError(f"window size must be odd, got {size}")
    return np.full((size,), 1.0 / size)


def window_taps(window: str, win_size: int, sigma: float = 1.5) -> np.ndarray:
    """1-D taps for a ``win_size``-tap ``"gaussian"`` (sigma) or ``"uniform"`` window."""
    if win_size % 2 != 1 or win_size < 1:
        raise ValueError(f"win_size must be a positive odd number, got {win_size}")
    if window == "gaussian":
        return gaussian_taps(sigma, win_size // 2)
    if window == "uniform":
        return uniform_taps(win_size)
    raise ValueError(f"window must be 'gaussian' or 'uniform', got {window!r}")


def separable_filter(x: jax.Array, taps: np.ndarray, padding: Padding = "valid") -> jax.Array:
    """Filters every channel of NHWC ``x`` with ``taps`` along H then W (correlation, as scipy/torch do).

    ``padding="reflect"`` is scipy's ``mode='reflect'`` (edge sample repeated, numpy ``symmetric``) and keeps
    the size; ``"valid"`` shrinks each spatial axis by ``len(taps) - 1``.
    """
    k = len(taps)
    r = k // 2
    b, h, w, c = x.shape
    if padding == "reflect":
        x = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="symmetric")
    elif padding != "valid":
        raise ValueError(f"padding must be 'valid' or 'reflect', got {padding!r}")
    hp, wp = x.shape[1], x.shape[2]
    if hp < k or wp < k:
        raise ValueError(f"image {h}x{w} is smaller than the {k}-tap SSIM window")
    # Channels folded into the batch: one single-channel conv per axis.
    y = jnp.transpose(x, (0, 3, 1, 2)).reshape(b * c, hp, wp, 1)
    kt = jnp.asarray(taps, x.dtype)
    dn = ("NHWC", "HWIO", "NHWC")
    y = lax.conv_general_dilated(y, kt.reshape(k, 1, 1, 1), (1, 1), "VALID", dimension_numbers=dn)
    y = lax.conv_general_dilated(y, kt.reshape(1, k, 1, 1), (1, 1), "VALID", dimension_numbers=dn)
    return jnp.transpose(y.reshape(b, c, hp - k + 1, wp - k + 1), (0, 2, 3, 1))


def _ssim_map_from_taps(
    x: jax.Array,
    y: jax.Array,
    taps: np.ndarray,
    *,
    data_range: float | jax.Array,
    k1: float,
    k2: float,
    cov_norm: float,
    padding: Padding,
) -> jax.Array:
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"SSIM needs two NHWC batches of one shape, got {x.shape} and {y.shape}")
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    x, y = x.astype(dtype), y.astype(dtype)
    shift = lax.stop_gradient(0.5 * (x.mean(axis=(1, 2), keepdims=True) + y.mean(axis=(1, 2), keepdims=True)))
    xs, ys = x - shift, y - shift
    stats = separable_filter(jnp.concatenate([xs, ys, xs * xs, ys * ys, xs * ys], axis=-1), taps, padding)
    ux, uy, uxx, uyy, uxy = jnp.split(stats, 5, axis=-1)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    mx, my = ux + shift, uy + shift
    r = jnp.asarray(data_range, dtype).reshape(-1, 1, 1, 1)
    c1 = (k1 * r) ** 2
    c2 = (k2 * r) ** 2
    return ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim_map(
    x: jax.Array,
    y: jax.Array,
    *,
    data_range: float | jax.Array = 1.0,
    window: str = "gaussian",
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    use_sample_covariance: bool = False,
    padding: Padding = "valid",
) -> jax.Array:
    """Per-pixel SSIM map (B, H', W', C) of NHWC ``x`` vs ``y`` with a ``win_size``-tap window.

    ``data_range`` is a scalar or one value per image (B,). ``use_sample_covariance`` multiplies the
    (co)variances by N/(N-1), N = win_size**2, as skimage's default does.
    """
    taps = window_taps(window, win_size, sigma)
    n = win_size * win_size
    cov_norm = n / (n - 1.0) if use_sample_covariance else 1.0
    return _ssim_map_from_taps(
        x, y, taps, data_range=data_range, k1=k1, k2=k2, cov_norm=cov_norm, padding=padding
    )


def ssim(x: jax.Array, y: jax.Array, **kwargs) -> jax.Array:
    """Mean of ``ssim_map`` per image (B,); keyword arguments as ``ssim_map`` (default: valid padding)."""
    return ssim_map(x, y, **kwargs).mean(axis=(1, 2, 3))


@functools.partial(
    jax.jit,
    static_argnames=(
        "win_size",
        "gaussian_weights",
        "sigma",
        "truncate",
        "use_sample_covariance",
        "k1",
        "k2",
    ),
)
def structural_similarity(
    x: jax.Array,
    y: jax.Array,
    *,
    data_range: float | jax.Array,
    win_size: int | None = None,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    truncate: float = 3.5,
    use_sample_covariance: bool = True,
    k1: float = 0.01,
    k2: float = 0.03,
) -> jax.Array:
    """``skimage.metrics.structural_similarity(x[i], y[i], channel_axis=-1, ...)`` for each image i (B,).

    Gaussian weights filter with radius ``int(truncate * sigma + 0.5)`` (skimage >= 0.15 forces truncate
    3.5; old ``compare_ssim`` used scipy's 4.0 and ``win_size`` 11); ``win_size`` (default: 2 * radius + 1
    for Gaussian, 7 for uniform) sets the cropped border and the sample-covariance N. ``data_range`` is
    required (scalar or per image), as in skimage for float input.
    """
    if gaussian_weights:
        radius = int(truncate * sigma + 0.5)
        taps = gaussian_taps(sigma, radius)
        win_size = 2 * radius + 1 if win_size is None else win_size
    else:
        win_size = 7 if win_size is None else win_size
        taps = uniform_taps(win_size)
    if win_size % 2 != 1:
        raise ValueError(f"win_size must be odd, got {win_size}")
    n = win_size * win_size
    cov_norm = n / (n - 1.0) if use_sample_covariance else 1.0
    smap = _ssim_map_from_taps(
        x, y, taps, data_range=data_range, k1=k1, k2=k2, cov_norm=cov_norm, padding="reflect"
    )
    pad = (win_size - 1) // 2
    h, w = smap.shape[1], smap.shape[2]
    return smap[:, pad : h - pad, pad : w - pad, :].mean(axis=(1, 2, 3))
