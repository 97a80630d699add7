"""Def-GAN deformable skip connections: part-wise affine transforms, part masks and the masked warp.

Geometry (host-side numpy, per pair; the original's ``pose_transform.py`` semantics):

* :func:`affine_transforms` fits 10 affine maps (body, head, 8 limb segments) from the **target** pose to the
  **source** pose (the inverse map a warp needs), as the first 8 entries of each row-major 3x3 matrix.
  Fits use total least squares on Hartley-normalised points (scikit-image's ``AffineTransform.estimate``).
  Limbs are fitted on rectangles around the segment; a limb missing in the target gives ``NO_POINT``
  (translation 1000: samples fall outside, the part contributes zeros); a limb missing in the source falls
  back to its mirror (R<->L).
* :func:`part_masks` rasterises the target's parts (body all ones, head square, limb rectangles with
  scikit-image 0.13's even-odd point-in-polygon rule).
* :func:`uniform_transform`: the single body(+knees) fit of ``warp_skip="full"``.

Keypoints are ``(18, 2)`` (y, x) in pixels, COCO-18 order, -1 = missing (either coordinate).

Warp (:func:`affine_warp`, jnp/Pallas, differentiable in the features only): nearest-neighbour sampling with
round-half-away-from-zero in float32, zeros outside, transforms given in full-resolution pixels (only the
translation is divided by the integer down-scale factor), masks down-sampled by taking every s-th pixel,
then ``max`` (paper) or ``avg`` over parts.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import pallas as pl

from ptx.ops._dispatch import interpret_mode, resolve_impl, with_reference_vjp

__all__ = [
    "KEYPOINT_NAMES",
    "NO_POINT",
    "PART_NAMES",
    "affine_transforms",
    "affine_warp",
    "batch_warp_inputs",
    "fit_affine",
    "part_masks",
    "points_in_polygon",
    "uniform_transform",
]

KEYPOINT_NAMES = (
    "nose", "neck", "Rsho", "Relb", "Rwri", "Lsho", "Lelb", "Lwri", "Rhip", "Rkne", "Rank", "Lhip", "Lkne",
    "Lank", "Leye", "Reye", "Lear", "Rear",
)  # fmt: skip
PART_NAMES = (
    "body", "head", "Rhip-Rkne", "Lhip-Lkne", "Rkne-Rank", "Lkne-Lank", "Rsho-Relb", "Lsho-Lelb", "Relb-Rwri",
    "Lelb-Lwri",
)  # fmt: skip
# Limb segments in part order: (from, to, extension of the transform rectangle, extension of the mask rectangle).
LIMBS = (
    ("Rhip", "Rkne", 0.1, 0.1),
    ("Lhip", "Lkne", 0.1, 0.1),
    ("Rkne", "Rank", 0.3, 0.5),
    ("Lkne", "Lank", 0.3, 0.5),
    ("Rsho", "Relb", 0.1, 0.1),
    ("Lsho", "Lelb", 0.1, 0.1),
    ("Relb", "Rwri", 0.3, 0.5),
    ("Lelb", "Lwri", 0.3, 0.5),
)
BODY = ("Rhip", "Lhip", "Lsho", "Rsho")
HEAD = ("nose", "Leye", "Reye", "Lear", "Rear")
KNEES = ("Rkne", "Lkne")
NO_POINT = np.array([[1.0, 0.0, 1000.0], [0.0, 1.0, 1000.0], [0.0, 0.0, 1.0]])


# ----------------------------------------------------------------------------------------------------------
# Host-side geometry.


def _named(keypoints: np.ndarray) -> dict[str, np.ndarray]:
    """Present joints as ``name -> (x, y)`` float64 (a joint with either coordinate == -1 is missing)."""
    kp = np.asarray(keypoints, np.float64)
    if kp.shape != (18, 2):
        raise ValueError(f"keypoints must be (18, 2) (y, x), got {kp.shape}")
    return {n: kp[i, ::-1].copy() for i, n in enumerate(KEYPOINT_NAMES) if kp[i, 0] != -1 and kp[i, 1] != -1}


def _torso_size(kp: dict[str, np.ndarray]) -> float:
    """RMS of the two shoulder-hip distances: the scale of every part rectangle."""
    right = np.sum((kp["Rhip"] - kp["Rsho"]) ** 2)
    left = np.sum((kp["Lhip"] - kp["Lsho"]) ** 2)
    return float(np.sqrt((right + left) / 2.0))


def _require_body(kp: dict[str, np.ndarray], which: str) -> None:
    missing = [n for n in BODY if n not in kp]
    if missing:
        raise ValueError(
            f"Def-GAN geometry needs Rhip, Lhip, Lsho, Rsho in the {which} pose; missing {missing} "
            "(the original's pair lists exclude such images)"
        )


def _normalisation(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hartley normalisation: centre, then scale so the RMS distance to the centre is sqrt(2)."""
    centre = points.mean(axis=0)
    rms = np.sqrt(np.sum((points - centre) ** 2) / len(points))
    scale = np.sqrt(2.0) / rms if rms > 0 else np.nan
    matrix = np.array([[scale, 0.0, -scale * centre[0]], [0.0, scale, -scale * centre[1]], [0.0, 0.0, 1.0]])
    return matrix, (points - centre) * scale


def fit_affine(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """3x3 affine map taking ``src (N,2)`` points to ``dst (N,2)`` by total least squares (NaN if degenerate).

    Same estimator as scikit-image's ``AffineTransform.estimate`` (which the original calls): the smallest
    right singular vector of the normalised 2N x 7 homogeneous system, then de-normalised. It differs from an
    ordinary least-squares fit when N > 3.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    ms, s = _normalisation(src)
    md, d = _normalisation(dst)
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(d))):
        return np.full((3, 3), np.nan)
    spread = np.linalg.svd(s, compute_uv=False)
    if len(s) < 3 or spread[-1] < 1e-9 * spread[0]:
        return np.full((3, 3), np.nan)  # collinear source points: the map is not determined
    n = len(s)
    a = np.zeros((2 * n, 7))
    a[:n, 0:2], a[:n, 2], a[:n, 6] = s, 1.0, -d[:, 0]
    a[n:, 3:5], a[n:, 5], a[n:, 6] = s, 1.0, -d[:, 1]
    v = np.linalg.svd(a)[2][-1]
    if v[6] == 0:
        return np.full((3, 3), np.nan)
    h = np.array([[v[0], v[1], v[2]], [v[3], v[4], v[5]], [0.0, 0.0, v[6]]]) / v[6]
    h = np.linalg.inv(md) @ h @ ms
    return h / h[2, 2]


def _usable(matrix: np.ndarray) -> np.ndarray:
    """The original keeps a fit unless ``np.linalg.inv`` raises; NaN/singular fits (which differ between
    scikit-image versions) become ``NO_POINT`` here so they cannot poison a training step."""
    if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-12:
        return NO_POINT
    return matrix


def limb_polygon(fr: np.ndarray, to: np.ndarray, size: float, inc_to: float) -> np.ndarray:
    """Rectangle (4, 2) (x, y) around segment fr->to: the start pushed back by 10% of the segment, then the end
    pushed forward by ``inc_to`` of the *extended* segment, half-width 0.2 * ``size``."""
    fr = fr + (fr - to) * 0.1
    to = to + (to - fr) * inc_to
    normal = np.array([-(fr - to)[1], (fr - to)[0]])
    length = np.linalg.norm(normal)
    if length == 0:
        return np.array([fr + 1, fr - 1, to - 1, to + 1])
    offset = size * 0.2 * normal / length
    return np.array([fr + offset, fr - offset, to - offset, to + offset])


def _mirror(name: str) -> str:
    return ("L" if name[0] == "R" else "R") + name[1:]


def affine_transforms(kp_from: np.ndarray, kp_to: np.ndarray) -> np.ndarray:
    """The 10 part transforms (10, 8) float32, each mapping target (x, y) -> source (x, y). See module doc."""
    src, tgt = _named(kp_from), _named(kp_to)
    _require_body(src, "source")
    _require_body(tgt, "target")
    size_src, size_tgt = _torso_size(src), _torso_size(tgt)

    def pts(kp, names):
        return np.array([kp[n] for n in names])

    mats = [fit_affine(pts(tgt, BODY), pts(src, BODY))]
    head = [n for n in HEAD if n in src and n in tgt]
    if head:
        names = [*head, "Lsho", "Rsho"]
        mats.append(fit_affine(pts(tgt, names), pts(src, names)))
    else:
        mats.append(NO_POINT)
    for fr, to, inc_to, _ in LIMBS:
        if fr not in tgt or to not in tgt:
            mats.append(NO_POINT)
            continue
        if fr not in src or to not in src:
            fr_s, to_s = _mirror(fr), _mirror(to)
        else:
            fr_s, to_s = fr, to
        if fr_s not in src or to_s not in src:
            mats.append(NO_POINT)
            continue
        poly_tgt = limb_polygon(tgt[fr], tgt[to], size_tgt, inc_to)
        poly_src = limb_polygon(src[fr_s], src[to_s], size_src, inc_to)
        mats.append(fit_affine(poly_tgt, poly_src))
    return np.stack([_usable(m) for m in mats]).reshape(-1, 9)[:, :8].astype(np.float32)


def uniform_transform(kp_from: np.ndarray, kp_to: np.ndarray) -> np.ndarray:
    """``warp_skip="full"``: one fit (1, 8) on the body joints plus the knees present in both poses."""
    src, tgt = _named(kp_from), _named(kp_to)
    _require_body(src, "source")
    _require_body(tgt, "target")
    names = [*BODY, *(n for n in KNEES if n in src and n in tgt)]
    mat = fit_affine(np.array([tgt[n] for n in names]), np.array([src[n] for n in names]))
    return _usable(mat).reshape(1, 9)[:, :8].astype(np.float32)


def points_in_polygon(rows: np.ndarray, cols: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd ray casting (scikit-image 0.13 ``grid_points_in_poly`` rule, half-open edges).

    ``vertices (V, 2)`` are (row, col); ``rows``/``cols`` broadcastable integer grids. Boundary points follow
    the crossing test exactly (newer scikit-image counts them all as inside; the paper used 0.13).
    """
    inside = np.zeros(np.broadcast(rows, cols).shape, bool)
    vr, vc = vertices[:, 0], vertices[:, 1]
    j = len(vertices) - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(len(vertices)):
            straddles = ((vc[i] <= cols) & (cols < vc[j])) | ((vc[j] <= cols) & (cols < vc[i]))
            cross = rows < (vr[j] - vr[i]) * (cols - vc[i]) / (vc[j] - vc[i]) + vr[i]
            inside ^= straddles & cross
            j = i
    return inside


def part_masks(kp_to: np.ndarray, image_size: Sequence[int]) -> np.ndarray:
    """The 10 part masks (10, H, W) float32 of the target pose (see module doc)."""
    h, w = int(image_size[0]), int(image_size[1])
    tgt = _named(kp_to)
    _require_body(tgt, "target")
    size = _torso_size(tgt)
    masks = np.zeros((10, h, w), np.float32)
    masks[0] = 1.0
    head = [tgt[n] for n in HEAD if n in tgt]
    if head:
        cx, cy = np.mean(head, axis=0).astype(int)
        half = int(0.4 * size)
        masks[1, max(cy - half, 0) : min(cy + half, h), max(cx - half, 0) : min(cx + half, w)] = 1.0
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    for p, (fr, to, _, inc_mask) in enumerate(LIMBS, start=2):
        if fr in tgt and to in tgt:
            poly = limb_polygon(tgt[fr], tgt[to], size, inc_mask)[:, ::-1]
            masks[p] = points_in_polygon(rows, cols, poly)
    return masks


def batch_warp_inputs(
    kp_from: np.ndarray, kp_to: np.ndarray, image_size: Sequence[int], mode: str = "mask"
) -> dict[str, np.ndarray]:
    """Per-batch warp inputs from keypoints ``(B, 18, 2)``: ``transforms (B,T,8)`` and, for ``mask``,
    ``masks (B,10,H,W)``. ``mode`` is the original's ``warp_skip``: ``mask`` (10 parts) or ``full`` (1)."""
    if mode == "mask":
        return {
            "transforms": np.stack([affine_transforms(a, b) for a, b in zip(kp_from, kp_to)]),
            "masks": np.stack([part_masks(b, image_size) for b in kp_to]),
        }
    if mode == "full":
        return {"transforms": np.stack([uniform_transform(a, b) for a, b in zip(kp_from, kp_to)])}
    raise ValueError(f"mode must be 'mask' or 'full', got {mode!r}")


# ----------------------------------------------------------------------------------------------------------
# The warp (device side).


def _round_half_away(v: jax.Array) -> jax.Array:
    """C's ``std::round`` (``jnp.round`` rounds half to even)."""
    return jnp.sign(v) * jnp.floor(jnp.abs(v) + 0.5)


def _scale_translations(transforms: jax.Array, h: int, w: int, init_size: tuple[int, int]) -> jax.Array:
    """Divide a2 by the row factor and b2 by the column factor, as the original layer does."""
    div = jnp.array([1, 1, init_size[0] / h, 1, 1, init_size[1] / w, 1, 1], jnp.float32)
    return transforms.astype(jnp.float32) / div


def _downsample_masks(masks: jax.Array, h: int, w: int) -> jax.Array:
    """Legacy nearest resize (no half-pixel centres): row i reads floor(i * H0 / h), i.e. ``[::s]``."""
    h0, w0 = masks.shape[-2:]
    rows = np.minimum((np.arange(h) * h0) // h, h0 - 1)
    cols = np.minimum((np.arange(w) * w0) // w, w0 - 1)
    return masks[..., rows, :][..., cols]


def _warp_indices(transforms: jax.Array, h: int, w: int) -> tuple[jax.Array, jax.Array]:
    """Flat source index and validity, each ``(..., T, h, w)``, for transforms ``(..., T, 8)`` (float32)."""
    ys = lax.broadcasted_iota(jnp.int32, (h, w), 0).astype(jnp.float32)
    xs = lax.broadcasted_iota(jnp.int32, (h, w), 1).astype(jnp.float32)
    t = transforms[..., None, None, :]
    x_in = _round_half_away(t[..., 0] * xs + t[..., 1] * ys + t[..., 2])
    y_in = _round_half_away(t[..., 3] * xs + t[..., 4] * ys + t[..., 5])
    valid = (x_in >= 0) & (x_in < w) & (y_in >= 0) & (y_in < h)
    idx = jnp.clip(y_in, 0, h - 1).astype(jnp.int32) * w + jnp.clip(x_in, 0, w - 1).astype(jnp.int32)
    return idx, valid


def _warp_one(flat, transforms, masks, h, w, aggregation):
    """One sample: ``flat (h*w, C)``, ``transforms (T, 8)`` scaled, ``masks (T, h, w)`` or None."""
    idx, valid = _warp_indices(transforms, h, w)
    warped = jnp.where(valid[..., None], flat[idx], jnp.zeros((), flat.dtype))  # (T, h, w, C)
    if masks is not None:
        warped = warped * masks[..., None].astype(flat.dtype)
    if aggregation == "max":
        return jnp.max(warped, axis=0)
    if aggregation == "avg":
        total = jnp.sum(warped, axis=0)
        count = jnp.sum(masks, axis=0)[..., None].astype(flat.dtype)
        out = total / count
        return jnp.where(jnp.isnan(out), jnp.zeros((), flat.dtype), out)
    return jnp.moveaxis(warped, 0, -2).reshape(h, w, -1)  # "none": parts stacked T-major on channels


def _warp_xla(features, transforms, masks, aggregation):
    b, h, w, c = features.shape
    flat = features.reshape(b, h * w, c)
    if masks is None:
        return jax.vmap(lambda f, t: _warp_one(f, t, None, h, w, aggregation))(flat, transforms)
    return jax.vmap(lambda f, t, m: _warp_one(f, t, m, h, w, aggregation))(flat, transforms, masks)


def _warp_pallas(features, transforms, masks, aggregation):
    """Grid over the batch; each program warps its sample's feature map with all T parts."""
    b, h, w, c = features.shape
    t = transforms.shape[1]
    out_c = c * t if aggregation == "none" else c
    has_masks = masks is not None

    def kernel(feat_ref, tr_ref, *refs):
        *mask_ref, out_ref = refs
        m = mask_ref[0][0] if has_masks else None
        out_ref[0] = _warp_one(feat_ref[0], tr_ref[0], m, h, w, aggregation).astype(out_ref.dtype)

    in_specs = [
        pl.BlockSpec((1, h * w, c), lambda i: (i, 0, 0)),
        pl.BlockSpec((1, t, 8), lambda i: (i, 0, 0)),
    ]
    args = [features.reshape(b, h * w, c), transforms]
    if has_masks:
        in_specs.append(pl.BlockSpec((1, t, h, w), lambda i: (i, 0, 0, 0)))
        args.append(masks)
    return pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((b, h, w, out_c), features.dtype),
        grid=(b,),
        in_specs=in_specs,
        out_specs=pl.BlockSpec((1, h, w, out_c), lambda i: (i, 0, 0, 0)),
        interpret=interpret_mode(),
    )(*args)


@functools.cache
def _warp_impl(aggregation: str, has_masks: bool, impl: str):
    """Jitted warp for one configuration; the features are the only differentiable input."""

    def xla(features, transforms, masks):
        return _warp_xla(features, transforms, masks if has_masks else None, aggregation)

    if impl == "xla":
        fn = xla
    else:

        def pallas(features, transforms, masks):
            return _warp_pallas(features, transforms, masks if has_masks else None, aggregation)

        fn = with_reference_vjp(pallas, xla)
    return jax.jit(fn)


def affine_warp(
    features: jax.Array,
    transforms: jax.Array,
    masks: jax.Array | None = None,
    *,
    init_image_size: Sequence[int],
    aggregation: str = "max",
    impl: str = "auto",
) -> jax.Array:
    """Def-GAN ``AffineTransformLayer``: warp ``features (B,h,w,C)`` by each of ``transforms (B,T,8)`` and
    aggregate -> ``(B,h,w,C)`` (``(B,h,w,T*C)`` for ``aggregation="none"``).

    ``transforms`` are in pixels of ``init_image_size`` (H0, W0) (from :func:`affine_transforms`); ``masks``
    ``(B,T,H0,W0)`` (from :func:`part_masks`) or None (``warp_skip="full"``). ``max`` includes the zeros of
    masked-out parts, as the original. Gradients flow to ``features`` only.
    """
    if aggregation not in ("max", "avg", "none"):
        raise ValueError(f"aggregation must be 'max', 'avg' or 'none', got {aggregation!r}")
    if features.ndim != 4 or transforms.ndim != 3 or transforms.shape[-1] != 8:
        raise ValueError(
            f"expected features (B,h,w,C) and transforms (B,T,8), got {features.shape}, {transforms.shape}"
        )
    if aggregation == "avg" and masks is None:
        raise ValueError("aggregation='avg' divides by the mask count and needs masks")
    _, h, w, _ = features.shape
    init = (int(init_image_size[0]), int(init_image_size[1]))
    tr = lax.stop_gradient(_scale_translations(transforms, h, w, init))
    if masks is not None:
        if masks.shape[:2] != transforms.shape[:2]:
            raise ValueError(f"masks {masks.shape} must be (B,T,H0,W0) with (B,T) = {transforms.shape[:2]}")
        masks = lax.stop_gradient(_downsample_masks(jnp.asarray(masks), h, w).astype(features.dtype))
    else:
        masks = jnp.zeros((0,), features.dtype)  # placeholder argument for the jitted implementation
    return _warp_impl(aggregation, masks.ndim == 4, resolve_impl(impl))(features, tr, masks)
