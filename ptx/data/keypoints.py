"""The body vocabulary shared by data and methods: the 18 joints, limbs, part groups, parsing labels, flips.

Joint order is the COCO-18 / OpenPose order of the originals' annotation CSVs (``name:keypoints_y:keypoints_x``,
each field a JSON list of 18 integers, -1 = missing). Keypoints are ``(y, x)`` = (row, column) in pixels of
their image; a joint is missing when either coordinate is -1. Joints 14-17 are OpenPose's REye, LEye, REar,
LEar (the originals' plot legend ``LABELS`` calls them Leye, Reye, Lear, Rear; the limb graph and the data
follow OpenPose: ear 16 links to the right shoulder).

:data:`PARTS` groups the joints into head, torso, arms and legs. Part groupings differ between methods, so each
method's is given under its name with the card that defines it (``shared/reference/*.md``):

* :data:`PSSIM_PARTS` -- the 10 soft part masks of pSSIM (``make_gaussain_limb_masks``): 9 limbs given by two
  joints and a torso given by the mean of the shoulders and the mean of the hips, with the perpendicular sigma.
* :data:`DEFGAN_PARTS` -- Def-GAN's 10 affine parts in its order (body, head, 8 limbs) with the ``inc_to``
  extension of the transforms and of the masks; :data:`DEFGAN_MA_MASK_LIMBS` -- the 23 polygons of
  ``produce_ma_mask`` (masked SSIM / IS).
* :data:`CASD_LIMBS` -- the 12 limbs of CASD's limb distance maps (BPD).

Parsing labels (LIP), their flip and CASD's region merge live in :mod:`ptx.data.parsing` (``LIP_CLASSES``,
``LIP_FLIP_PERM`` and ``CASD_REGIONS`` are re-exported here for older imports).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np

from ptx.data.parsing import CASD_REGIONS, LIP_CLASSES, LIP_FLIP_PERM  # noqa: F401 (re-exported)

NUM_KEYPOINTS = 18
MISSING = -1

NAMES = (
    "nose", "neck", "Rsho", "Relb", "Rwri", "Lsho", "Lelb", "Lwri", "Rhip",
    "Rkne", "Rank", "Lhip", "Lkne", "Lank", "Reye", "Leye", "Rear", "Lear",
)  # fmt: skip
INDEX = {name: i for i, name in enumerate(NAMES)}

# OpenPose's 19 limb pairs (0-based), the skeleton the originals draw (PATN's ``LIMB_SEQ``): arms, legs, head,
# and the two shoulder-ear links.
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (2, 16), (5, 17),
)  # fmt: skip

# Left <-> right swap: FLIP_PERM[i] is the joint that lands on slot i after a horizontal flip.
FLIP_PERM = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)

# Coarse body parts by joint (for visualisation, masks and sanity checks); method-specific groupings follow.
PARTS = {
    "head": (0, 14, 15, 16, 17),
    "torso": (1, 2, 5, 8, 11),
    "right_arm": (2, 3, 4),
    "left_arm": (5, 6, 7),
    "right_leg": (8, 9, 10),
    "left_leg": (11, 12, 13),
}

# pSSIM (pssim.md section 3): mask channel k+1 for entry k; (joints, sigma_perp). The torso's endpoints are the
# mean of its first two joints (shoulders) and the mean of its last two (hips).
PSSIM_PARTS = (
    ("head", (0, 1), 9.0),
    ("right_upper_arm", (2, 3), 9.0),
    ("right_forearm", (3, 4), 9.0),
    ("left_upper_arm", (5, 6), 9.0),
    ("left_forearm", (6, 7), 9.0),
    ("right_thigh", (8, 9), 9.0),
    ("right_shin", (9, 10), 9.0),
    ("left_thigh", (11, 12), 9.0),
    ("left_shin", (12, 13), 9.0),
    ("torso", (2, 5, 8, 11), 13.0),
)

# Def-GAN (defgan.md section 2), in its part order: (name, joints, inc_to of the transforms, inc_to of the masks).
# "body" is fitted on Rhip, Lhip, Lsho, Rsho (its mask is all ones); "head" on the shared head joints plus both
# shoulders (its mask is a square around the mean of the head joints). Limbs go from joints[0] to joints[1].
DEFGAN_BODY_JOINTS = (8, 11, 5, 2)
DEFGAN_HEAD_JOINTS = (16, 17, 15, 14, 0)  # Rear, Lear, Leye, Reye, nose
DEFGAN_PARTS = (
    ("body", DEFGAN_BODY_JOINTS, None, None),
    ("head", DEFGAN_HEAD_JOINTS, None, None),
    ("right_thigh", (8, 9), 0.1, 0.1),
    ("left_thigh", (11, 12), 0.1, 0.1),
    ("right_shin", (9, 10), 0.3, 0.5),
    ("left_shin", (12, 13), 0.3, 0.5),
    ("right_upper_arm", (2, 3), 0.1, 0.1),
    ("left_upper_arm", (5, 6), 0.1, 0.1),
    ("right_forearm", (3, 4), 0.3, 0.5),
    ("left_forearm", (6, 7), 0.3, 0.5),
)
# Mirror fallback of Def-GAN's limbs (a source limb missing is replaced by the other side's).
DEFGAN_MIRROR = {2: 3, 3: 2, 4: 5, 5: 4, 6: 7, 7: 6, 8: 9, 9: 8}
# produce_ma_mask: the OpenPose limbs with the ears linked to the neck, plus Rhip-Lhip, Lhip-Lsho, Rhip-Rsho,
# Lear-Rear (0-based).
DEFGAN_MA_MASK_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17), (1, 16), (1, 17), (8, 11), (11, 5), (8, 2), (16, 17),
)  # fmt: skip

# CASD's limb distance maps (casd.md, BPD): arms, shoulders, torso-to-hips, legs; no head limbs.
CASD_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
)  # fmt: skip


def is_present(keypoints: np.ndarray) -> np.ndarray:
    """Boolean (..., 18): True where neither coordinate is -1 (the originals' missing test)."""
    kps = np.asarray(keypoints)
    return np.all(kps != MISSING, axis=-1)


def flip_keypoints(keypoints: np.ndarray, width: int) -> np.ndarray:
    """Horizontal flip of (..., 18, 2) (y, x) keypoints in an image ``width`` pixels wide.

    Column x goes to ``width - 1 - x`` (the pixel a mirrored image puts it on) and left/right joints swap
    slots; missing joints stay exactly as they were (-1). Flipping twice gives the input back.
    """
    kps = np.asarray(keypoints)
    if kps.shape[-2:] != (NUM_KEYPOINTS, 2):
        raise ValueError(
            f"flip_keypoints: expected (..., {NUM_KEYPOINTS}, 2) keypoints, got shape {kps.shape}"
        )
    present = is_present(kps)
    flipped_x = np.where(present, (width - 1) - kps[..., 1], kps[..., 1])
    out = np.stack([kps[..., 0], flipped_x], axis=-1).astype(kps.dtype, copy=False)
    return out[..., FLIP_PERM, :]


def parse_keypoint_list(text: str, *, where: str = "keypoint list") -> np.ndarray:
    """One CSV field such as ``"[12, 40, -1, ...]"`` -> int64 array of 18 values.

    ``where`` names the file, row and column for the error message (e.g. ``"fasion-annotation-test.csv, line 7,
    column keypoints_y"``).
    """
    try:
        values = json.loads(text)
    except (json.JSONDecodeError, TypeError) as e:
        raise ValueError(
            f"{where}: expected a JSON list of {NUM_KEYPOINTS} integers, got {text!r} ({e})"
        ) from e
    if not isinstance(values, list):
        raise ValueError(f"{where}: expected a JSON list of {NUM_KEYPOINTS} integers, got {text!r}")
    if len(values) != NUM_KEYPOINTS:
        raise ValueError(f"{where}: expected {NUM_KEYPOINTS} keypoints (COCO-18 order), got {len(values)}")
    for i, v in enumerate(values):
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(
                f"{where}: entry {i} ({NAMES[i]}) is {v!r}; expected a finite integer pixel or -1"
            )
        if isinstance(v, bool) or not isinstance(v, int | float) or float(v) != int(v):
            raise ValueError(f"{where}: entry {i} ({NAMES[i]}) is {v!r}; expected an integer pixel or -1")
    return np.asarray([int(v) for v in values], np.int64)


def parse_keypoints_yx(y_text: str, x_text: str, *, where: str = "annotation row") -> np.ndarray:
    """The two CSV fields ``keypoints_y`` and ``keypoints_x`` -> float32 (18, 2) (y, x), -1 where missing.

    A joint with only one coordinate -1 is made fully missing (both -1), as every original treats it.
    """
    ys = parse_keypoint_list(y_text, where=f"{where}, column keypoints_y")
    xs = parse_keypoint_list(x_text, where=f"{where}, column keypoints_x")
    kps = np.stack([ys, xs], axis=-1).astype(np.float32)
    kps[~is_present(kps)] = MISSING
    return kps


def format_keypoint_list(values: Sequence[float]) -> str:
    """Inverse of :func:`parse_keypoint_list`: 18 numbers -> ``"[12, 40, -1, ...]"`` (integers, CSV style)."""
    return json.dumps([int(round(float(v))) for v in values])


# Skeleton colours, one per limb of LIMBS (hue wheel, as OpenPose visualisations do).
_LIMB_COLOURS = np.array(
    [
        [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0], [0, 255, 0],
        [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255], [0, 0, 255], [85, 0, 255],
        [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85], [200, 200, 200],
    ],
    np.uint8,
)  # fmt: skip


def draw_skeleton(
    keypoints: np.ndarray, size: tuple[int, int], *, line_width: int | None = None
) -> np.ndarray:
    """uint8 (h, w, 3) picture of a pose on black: coloured limbs and joints (the "target pose" panels).

    Limbs are drawn only when both of their joints are present; joints outside the image are clipped away.
    """
    from PIL import Image, ImageDraw

    h, w = int(size[0]), int(size[1])
    kps = np.asarray(keypoints, np.float64).reshape(NUM_KEYPOINTS, 2)
    present = is_present(kps)
    lw = line_width or max(1, round(min(h, w) / 44))
    image = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(image)
    for (a, b), colour in zip(LIMBS, _LIMB_COLOURS):
        if present[a] and present[b]:
            draw.line(
                [(kps[a, 1], kps[a, 0]), (kps[b, 1], kps[b, 0])], fill=tuple(int(c) for c in colour), width=lw
            )
    r = lw * 0.9 + 0.5
    for i in np.flatnonzero(present):
        y, x = kps[i]
        colour = tuple(int(c) for c in _LIMB_COLOURS[i % len(_LIMB_COLOURS)])
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    return np.asarray(image, np.uint8)
