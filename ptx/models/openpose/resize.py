"""The resizes of the two reference pipelines, as linear maps along each axis (NumPy, host side).

Each resize is separable: ``out = Ry @ image @ Rx.T`` per channel, with ``R`` an (out, in) matrix whose rows
hold the interpolation weights of one output pixel. Building the matrices explicitly pins the three things
that differ between libraries (card ``openpose.md`` sections 4, 5 and 9): the kernel, the pixel-centre
mapping and what is read outside the image.

* pytorch-openpose (OpenCV ``INTER_CUBIC``): Keys cubic with a = -0.75, coefficients computed in float32 as
  OpenCV does, source = (dst + 0.5) * scale - 0.5, taps outside clamped to the edge. uint8 images go through
  OpenCV's fixed-point path (11-bit coefficients, exact integer arithmetic, rounded), reproduced exactly.
* the dataset scripts (scikit-image 0.13 ``resize``, mode 'constant'): bilinear (order 1) or Catmull-Rom
  (order 3) with zeros outside the image, then the output clipped to the input's range.
"""

from __future__ import annotations

import numpy as np

_CV_COEF_BITS = 11  # OpenCV's INTER_RESIZE_COEF_BITS


def _cv2_cubic_coefficients(t: np.ndarray) -> np.ndarray:
    """OpenCV's ``interpolateCubic`` in float32: weights of taps -1, 0, 1, 2 for fractional offsets ``t``."""
    a = np.float32(-0.75)
    one = np.float32(1)
    t = t.astype(np.float32)
    tp = t + one
    omt = one - t
    c0 = ((a * tp - np.float32(5) * a) * tp + np.float32(8) * a) * tp - np.float32(4) * a
    c1 = ((a + np.float32(2)) * t - (a + np.float32(3))) * t * t + one
    c2 = ((a + np.float32(2)) * omt - (a + np.float32(3))) * omt * omt + one
    c3 = one - c0 - c1 - c2
    return np.stack([c0, c1, c2, c3], axis=-1)


def _catmull_rom_coefficients(t: np.ndarray) -> np.ndarray:
    """scikit-image's ``cubic_interpolation`` weights (Keys a = -0.5) for taps -1, 0, 1, 2."""
    t2, t3 = t * t, t * t * t
    return np.stack(
        [
            -0.5 * t + t2 - 0.5 * t3,
            1 - 2.5 * t2 + 1.5 * t3,
            0.5 * t + 2 * t2 - 1.5 * t3,
            -0.5 * t2 + 0.5 * t3,
        ],
        axis=-1,
    )


def _matrix(n_in: int, first_tap: np.ndarray, weights: np.ndarray, border: str) -> np.ndarray:
    """(out, in) matrix from each output's first tap index and tap weights; ``border`` 'clamp' or 'zero'."""
    n_out, n_taps = weights.shape
    taps = first_tap[:, None] + np.arange(n_taps)[None, :]
    rows = np.repeat(np.arange(n_out)[:, None], n_taps, axis=1)
    if border == "clamp":
        taps = np.clip(taps, 0, n_in - 1)
    else:
        inside = (taps >= 0) & (taps < n_in)
        rows, taps, weights = rows[inside], taps[inside], weights[inside]
    out = np.zeros((n_out, n_in), weights.dtype)
    np.add.at(out, (rows, taps), weights)
    return out


def cv2_cubic_matrix(n_in: int, n_out: int, inv_scale: float | None = None) -> np.ndarray:
    """float64 (n_out, n_in) weights of ``cv2.resize(..., INTER_CUBIC)`` along one axis.

    ``inv_scale`` is OpenCV's fx/fy when the call gives one (``cv2.resize(img, (0, 0), fx=m)``); otherwise the
    scale is ``n_out / n_in`` (a call with an explicit size). Positions are rounded to float32 as OpenCV does.
    """
    scale = 1.0 / (inv_scale if inv_scale is not None else n_out / n_in)
    pos = ((np.arange(n_out) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(pos).astype(np.int64)
    coeff = _cv2_cubic_coefficients(pos - first.astype(np.float32))
    return _matrix(n_in, first - 1, coeff.astype(np.float64), "clamp")


def _cv2_fixed_point_matrix(n_in: int, n_out: int, inv_scale: float | None) -> np.ndarray:
    scale = 1.0 / (inv_scale if inv_scale is not None else n_out / n_in)
    pos = ((np.arange(n_out) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(pos).astype(np.int64)
    coeff = _cv2_cubic_coefficients(pos - first.astype(np.float32))
    fixed = np.rint(coeff.astype(np.float64) * (1 << _CV_COEF_BITS)).astype(np.int64)
    return _matrix(n_in, first - 1, fixed, "clamp")


def cv2_cubic_resize(image: np.ndarray, size: tuple[int, int], factor: float | None = None) -> np.ndarray:
    """``cv2.resize(image, (w, h), interpolation=INTER_CUBIC)`` for (H, W[, C]) images.

    ``factor`` stands for a call with ``fx = fy = factor`` (the output ``size`` must then be OpenCV's rounded
    one). uint8 input gives uint8 output through OpenCV's fixed-point arithmetic; floats give float64.
    """
    h, w = int(size[0]), int(size[1])
    if image.shape[:2] == (h, w):
        return image.copy()  # OpenCV copies when the size does not change
    if image.dtype == np.uint8:
        ry = _cv2_fixed_point_matrix(image.shape[0], h, factor)
        rx = _cv2_fixed_point_matrix(image.shape[1], w, factor)
        # Integer sums below 2**53, so float64 GEMMs give them exactly.
        acc = np.rint(apply(image, ry.astype(np.float64), rx.astype(np.float64))).astype(np.int64)
        shift = 2 * _CV_COEF_BITS
        return np.clip((acc + (1 << (shift - 1))) >> shift, 0, 255).astype(np.uint8)
    return apply(
        image, cv2_cubic_matrix(image.shape[0], h, factor), cv2_cubic_matrix(image.shape[1], w, factor)
    )


def skimage_matrix(n_in: int, n_out: int, order: int) -> np.ndarray:
    """float64 (n_out, n_in) weights of scikit-image 0.13 ``resize(..., order, mode='constant', cval=0)``:
    half-pixel mapping, bilinear (1) or Catmull-Rom (3) weights, zeros read outside the image."""
    pos = (np.arange(n_out) + 0.5) * (float(n_in) / n_out) - 0.5
    first = np.floor(pos).astype(np.int64)
    t = pos - first
    if order == 1:
        return _matrix(n_in, first, np.stack([1 - t, t], axis=-1), "zero")
    if order == 3:
        return _matrix(n_in, first - 1, _catmull_rom_coefficients(t), "zero")
    raise ValueError(f"skimage_matrix: order {order} not supported (the dataset scripts use 1 and 3)")


def skimage_resize(image: np.ndarray, size: tuple[int, int], order: int) -> np.ndarray:
    """scikit-image 0.13 ``resize(image, size, order, preserve_range=True)`` (mode 'constant', clip=True):
    float64, clipped to the input's [min, max] over all channels; where 0 lies outside that range, outputs
    that are exactly 0 stay 0 (0.13's ``preserve_cval``)."""
    image = np.asarray(image, np.float64)
    out = apply(
        image, skimage_matrix(image.shape[0], size[0], order), skimage_matrix(image.shape[1], size[1], order)
    )
    lo, hi = image.min(), image.max()
    keep_zero = (out == 0) if not (lo <= 0 <= hi) else None
    out = np.clip(out, lo, hi)
    if keep_zero is not None:
        out[keep_zero] = 0
    return out


def apply(image: np.ndarray, ry: np.ndarray, rx: np.ndarray) -> np.ndarray:
    """``Ry @ image @ Rx.T`` over the first two axes of an (H, W[, C]) array, in float64, as two plain GEMMs
    (the result is a transposed view: (H_out, W_out[, C]) with W_out outermost in memory)."""
    image = np.asarray(image, np.float64)
    h, w, rest = image.shape[0], image.shape[1], image.shape[2:]
    c = int(np.prod(rest, dtype=np.int64))
    rows = (ry @ image.reshape(h, w * c)).reshape(-1, w, c)  # (H_out, w, c)
    cols = rx @ rows.transpose(1, 0, 2).reshape(w, -1)  # (W_out, H_out * c)
    return cols.reshape(rx.shape[0], ry.shape[0], *rest).swapaxes(0, 1)
