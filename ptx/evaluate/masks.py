"""Person masks from keypoints for mask-SSIM / mask-IS (PATN / Def-GAN ``pose_utils.produce_ma_mask``).

For each of 23 limbs with both joints present: the quadrilateral joint +- r * unit normal (r = 4 px) is filled
(pixel centres at integer (row, col), as skimage.draw.polygon: boundary included since 0.16, half-open
even-odd rule in 0.13/0.14); a disk (d^2 / r^2 < 1, as
skimage.draw.disk) at every present joint; then a binary closing: dilation followed by erosion with a 5x5
square (reflect borders, as skimage.morphology). Host-side numpy: masks are data, computed once per image.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ptx.data.keypoints import DEFGAN_MA_MASK_LIMBS, MISSING


def _fill_polygon(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray, rule: str = "modern") -> None:
    """Sets the pixels of ``mask`` inside the polygon, as skimage.draw.polygon.

    ``modern`` (skimage >= 0.16): inside, on an edge or on a vertex (O'Rourke's ray crossing).
    ``legacy`` (skimage 0.13/0.14, the originals' era): even-odd crossing, half-open boundary.
    """
    h, w = mask.shape
    r0, r1 = max(0, int(np.floor(rows.min()))), min(h - 1, int(np.ceil(rows.max())))
    c0, c1 = max(0, int(np.floor(cols.min()))), min(w - 1, int(np.ceil(cols.max())))
    if r0 > r1 or c0 > c1:
        return
    rr, cc = np.mgrid[r0 : r1 + 1, c0 : c1 + 1].astype(np.float64)
    n = len(rows)
    if rule == "legacy":
        inside = np.zeros(rr.shape, bool)
        for i in range(n):
            ri, ci, rj, cj = rows[i], cols[i], rows[i - 1], cols[i - 1]
            if ri == rj:
                continue
            crosses = ((ri <= rr) & (rr < rj)) | ((rj <= rr) & (rr < ri))
            inside ^= crosses & (cc < (cj - ci) * (rr - ri) / (rj - ri) + ci)
    elif rule == "modern":
        vertex = np.zeros(rr.shape, bool)
        right = np.zeros(rr.shape, bool)
        left = np.zeros(rr.shape, bool)
        x1, y1 = cols[-1] - cc, rows[-1] - rr
        with np.errstate(divide="ignore", invalid="ignore"):
            for i in range(n):
                x0, y0 = cols[i] - cc, rows[i] - rr
                vertex |= (np.abs(x0) < 1e-12) & (np.abs(y0) < 1e-12)
                t = (x0 * y1 - x1 * y0) / (y1 - y0)
                right ^= ((y0 > 0) != (y1 > 0)) & (t > 0)
                left ^= ((y0 < 0) != (y1 < 0)) & (t < 0)
                x1, y1 = x0, y0
        inside = vertex | right | left  # odd crossings on either side: inside or on an edge
    else:
        raise ValueError(f"polygon rule must be 'modern' or 'legacy', got {rule!r}")
    mask[r0 : r1 + 1, c0 : c1 + 1] |= inside


def person_mask(
    keypoints: np.ndarray, size: tuple[int, int], radius: float = 4, rule: str = "modern"
) -> np.ndarray:
    """(18, 2) (y, x) keypoints (-1 missing) -> bool (H, W) mask, as ``produce_ma_mask``.

    ``rule`` picks skimage's polygon rasterisation (see ``_fill_polygon``); they differ on boundary pixels.
    """
    kp = np.asarray(keypoints, np.float64)
    h, w = int(size[0]), int(size[1])
    mask = np.zeros((h, w), bool)
    present = np.all(kp != MISSING, axis=-1)
    for a, b in DEFGAN_MA_MASK_LIMBS:
        if not (present[a] and present[b]):
            continue
        d = kp[a] - kp[b]
        length = np.linalg.norm(d)
        if length == 0:
            continue
        normal = radius * np.array([-d[1], d[0]]) / length
        quad = np.stack([kp[a] + normal, kp[a] - normal, kp[b] - normal, kp[b] + normal])
        _fill_polygon(mask, quad[:, 0], quad[:, 1], rule)
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    for y, x in kp[present]:
        mask |= ((rr - y) / radius) ** 2 + ((cc - x) / radius) ** 2 < 1
    square = np.ones((5, 5), bool)
    mask = ndimage.grey_dilation(mask.astype(np.uint8), footprint=square, mode="reflect")
    mask = ndimage.grey_erosion(mask, footprint=square, mode="reflect")
    return mask.astype(bool)


def person_masks(
    keypoints: np.ndarray, size: tuple[int, int], radius: float = 4, rule: str = "modern"
) -> np.ndarray:
    """Batched ``person_mask``: (B, 18, 2) -> (B, H, W) bool."""
    return np.stack([person_mask(k, size, radius, rule) for k in np.asarray(keypoints)])
