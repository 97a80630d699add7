"""SCA-GAN's BEP2 input: the source edge map cut around each source joint and pasted at the target joint.

Pure numpy, one pair at a time, for the input pipeline's per-pair host transform (reference card
``shared/reference/scagan.md`` §1, ``crop_shift``). Two modes:

``"compat"`` (default; what the released PCT-Net was trained on) reproduces the original bit for bit:

1. joints are re-read from the sigma-12 heatmaps as the first (row-major) pixel of each channel's maximum,
   missing when that maximum is <= 0.1 (:func:`reextract_keypoints`; for integer in-image joints this is the
   joint itself);
2. for every joint present in both poses (the test looks at the column only), the window rows
   ``[sy - r, sy + r)``, cols ``[sx - r, sx + r)`` of the INVERTED edge image (lines bright), clipped to the
   image, is pasted into that joint's channel at top-left ``(ty - h // 2, tx - w // 2)`` clipped at 0 and
   bottom-right clipped at the border; a window cut by the border is refilled with ``np.resize`` (flat
   re-flow of the pixels, not a spatial crop);
3. the channels start as ones and the result is ``255 - channels``: a float array, which torchvision's
   ``ToTensor`` does not scale, so ``Normalize(0.5, 0.5)`` makes it ``2 v - 1``: 507 outside the windows and
   ``2 * edge - 1`` (509 background, -1 lines) inside, i.e. the stored edge's polarity at ~255x its scale.

``"clean"``: the same idea on the network's edge scale: -1 everywhere except inside each window, where the
source neighbourhood keeps its offset to the joint (pixels falling outside the image are dropped), with the
source edge map's own convention (lines +1, background -1, like the ``EP`` inputs). Not compatible with
converted weights; meant for training from scratch.

Edges are uint8 HxW with 255 background and 0 lines (the PNGs of the original's ``trainE/diff`` folders and
``ptx.data.edges.xdog``); keypoints (18, 2) as (y, x) pixels, -1 missing.
"""

from __future__ import annotations

import numpy as np

MODES = ("compat", "clean")
SIGMA = 12.0  # SCA-GAN's pose maps (tool/generate_pose_map_fashion.py)
RADIUS = 20  # --crop_radius
THRESHOLD = 0.1  # map_to_cord


def keypoint_map(y: float, x: float, size: tuple[int, int], sigma: float = SIGMA) -> np.ndarray:
    """One joint's map as the original stores it: exp(-d^2 / (2 sigma^2)) in float64, saved as float32."""
    rows = np.arange(size[0], dtype=np.float64)[:, None]
    cols = np.arange(size[1], dtype=np.float64)[None, :]
    return np.exp(-((rows - y) ** 2 + (cols - x) ** 2) / (2 * sigma**2)).astype(np.float32)


def reextract_keypoints(
    keypoints: np.ndarray, size: tuple[int, int], sigma: float = SIGMA, threshold: float = THRESHOLD
) -> np.ndarray:
    """Joints as the original's ``map_to_cord`` reads them back from the sigma-``sigma`` heatmaps -> int (18, 2).

    A joint with a -1 coordinate has an all-zero map (missing, -1). An integer joint inside the image is its
    own argmax with peak 1; other joints (off-image, fractional) are located on their computed map.
    """
    kps = np.asarray(keypoints, np.float64)
    out = np.full(kps.shape, -1, np.int64)
    h, w = size
    for i, (y, x) in enumerate(kps):
        if y == -1 or x == -1:
            continue
        if y == int(y) and x == int(x) and 0 <= y < h and 0 <= x < w:
            out[i] = (int(y), int(x))
            continue
        m = keypoint_map(y, x, size, sigma)
        if m.max() > threshold:
            out[i] = np.unravel_index(int(np.argmax(m)), m.shape)  # first maximum in row-major order
    return out


def _window(centre: int, radius: int, limit: int) -> tuple[int, int]:
    return max(centre - radius, 0), min(centre + radius, limit)


def _compat(src: np.ndarray, tgt: np.ndarray, inverted: np.ndarray, radius: int) -> np.ndarray:
    h, w = inverted.shape
    plates = np.ones((h, w, len(src)), np.float32)
    for i, ((sy, sx), (ty, tx)) in enumerate(zip(src, tgt)):
        if sx < 0 or tx < 0:
            continue
        y0, y1 = _window(sy, radius, h)
        x0, x1 = _window(sx, radius, w)
        crop = inverted[y0:y1, x0:x1]
        ty0, tx0 = max(ty - (y1 - y0) // 2, 0), max(tx - (x1 - x0) // 2, 0)
        ty1, tx1 = min(ty0 + (y1 - y0), h), min(tx0 + (x1 - x0), w)
        plates[ty0:ty1, tx0:tx1, i] = np.resize(crop, (ty1 - ty0, tx1 - tx0))
    values = np.float32(255.0) - plates
    return (values - np.float32(0.5)) / np.float32(0.5)  # Normalize(0.5, 0.5) of an unscaled float array


def _clean(src: np.ndarray, tgt: np.ndarray, edge_unit: np.ndarray, radius: int) -> np.ndarray:
    h, w = edge_unit.shape
    out = np.full((h, w, len(src)), -1.0, np.float32)
    for i, ((sy, sx), (ty, tx)) in enumerate(zip(src, tgt)):
        if min(sy, sx, ty, tx) < 0:
            continue
        dy, dx = ty - sy, tx - sx
        y0, y1 = max(sy - radius, 0, -dy), min(sy + radius, h, h - dy)
        x0, x1 = max(sx - radius, 0, -dx), min(sx + radius, w, w - dx)
        if y0 < y1 and x0 < x1:
            out[y0 + dy : y1 + dy, x0 + dx : x1 + dx, i] = edge_unit[y0:y1, x0:x1]
    return out


def _present(kps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Rounded joints, -1 where missing or off the image (clean mode)."""
    kps = np.asarray(kps, np.float64)
    r = np.round(kps).astype(np.int64)
    ok = (kps[:, 0] != -1) & (kps[:, 1] != -1) & (r[:, 0] >= 0) & (r[:, 0] < size[0])
    ok &= (r[:, 1] >= 0) & (r[:, 1] < size[1])
    return np.where(ok[:, None], r, -1)


def shifted_edges(
    source_keypoints: np.ndarray,
    target_keypoints: np.ndarray,
    source_edge: np.ndarray,
    *,
    radius: int = RADIUS,
    mode: str = "compat",
    sigma: float = SIGMA,
) -> np.ndarray:
    """BEP2 for one pair: float32 (H, W, 18) network input (see the module docstring for both modes).

    ``source_edge``: uint8 (H, W), 255 background / 0 lines; keypoints (18, 2) (y, x), -1 missing.
    """
    if mode not in MODES:
        raise ValueError(f"shifted_edges mode {mode!r}; expected one of {MODES}")
    edge = np.asarray(source_edge)
    if edge.ndim != 2 or edge.dtype != np.uint8:
        raise ValueError(f"source_edge must be a uint8 HxW edge map, got {edge.dtype} {edge.shape}")
    size = edge.shape
    if mode == "compat":
        src = reextract_keypoints(source_keypoints, size, sigma)
        tgt = reextract_keypoints(target_keypoints, size, sigma)
        return _compat(src, tgt, 255 - edge, radius)
    edge_unit = (255 - edge).astype(np.float32) / 127.5 - 1.0  # the EP convention: lines +1
    return _clean(_present(source_keypoints, size), _present(target_keypoints, size), edge_unit, radius)
