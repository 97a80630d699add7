"""Pose inputs as people have them: arrays, OpenPose JSON files, rows of the originals' annotation CSVs.

Everything becomes an 18x2 float32 array, (y, x) in pixels of its image, -1 where a joint is missing, in the
COCO-18 order of the originals' CSVs (nose, neck, Rsho, Relb, Rwri, Lsho, Lelb, Lwri, Rhip, Rkne, Rank, Lhip,
Lkne, Lank, Leye, Reye, Lear, Rear). OpenPose's COCO-18 output uses the same index order; BODY-25 is mapped
(its MidHip and foot points are dropped). Bad input raises :class:`PoseError` saying what was expected.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import numpy as np

NUM_KEYPOINTS = 18
# BODY-25 index of each COCO-18 joint (same joints, BODY-25 inserts MidHip at 8 and feet at 19..24).
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
# OpenPose writes a confidence per joint; below this a joint counts as missing (0 means "not detected").
DEFAULT_MIN_CONFIDENCE = 0.05


class PoseError(ValueError):
    """A pose that cannot be used: the message says which input and what was expected."""


PoseLike = Any  # np.ndarray | list | str | os.PathLike


def validate_keypoints(
    kps: np.ndarray, *, frame: tuple[int, int] | None = None, what: str = "pose"
) -> np.ndarray:
    """Checks an 18x2 (y, x) array: shape, finiteness, at least two joints, joints inside ``frame`` (h, w)."""
    arr = np.asarray(kps, dtype=np.float64)
    if arr.shape != (NUM_KEYPOINTS, 2):
        raise PoseError(
            f"{what}: expected {NUM_KEYPOINTS} keypoints as an array of shape (18, 2) with (y, x) per joint "
            f"(-1 for a missing joint), got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        bad = sorted({int(i) for i in np.argwhere(~np.isfinite(arr))[:, 0]})
        raise PoseError(f"{what}: keypoints {bad} are NaN or infinite; use -1 for a missing joint")
    missing = np.all(arr == -1, axis=1)
    negative = np.any(arr < 0, axis=1) & ~missing
    if np.any(negative):
        idx = [int(i) for i in np.nonzero(negative)[0]]
        raise PoseError(
            f"{what}: keypoints {idx} have a negative coordinate (outside the image); "
            "mark a missing joint with -1 for both y and x"
        )
    present = ~missing
    if present.sum() < 2:
        raise PoseError(f"{what}: at least 2 keypoints must be present, got {int(present.sum())}")
    if frame is not None:
        h, w = frame
        out = present & ((arr[:, 0] > h - 1) | (arr[:, 1] > w - 1))
        if np.any(out):
            idx = [int(i) for i in np.nonzero(out)[0]]
            raise PoseError(
                f"{what}: keypoints {idx} lie outside the {h}x{w} image (y must be < {h}, x < {w}); "
                "keypoints are (y, x) in pixels of that image"
            )
    result = np.where(present[:, None], arr, -1.0)
    return result.astype(np.float32)


def from_openpose_json(
    path: str | os.PathLike, *, person: int = 0, min_confidence: float = DEFAULT_MIN_CONFIDENCE
) -> np.ndarray:
    """Reads an OpenPose ``*_keypoints.json`` (COCO-18 or BODY-25 ``pose_keypoints_2d``) -> 18x2 (y, x)."""
    path = pathlib.Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PoseError(f"{path}: cannot read OpenPose JSON ({e})") from e
    people = data.get("people") if isinstance(data, dict) else None
    if not people:
        raise PoseError(f"{path}: no 'people' in this OpenPose file (no person was detected)")
    if person >= len(people):
        raise PoseError(f"{path}: asked for person {person} but the file has {len(people)}")
    flat = people[person].get("pose_keypoints_2d") or people[person].get("pose_keypoints")
    if flat is None:
        raise PoseError(f"{path}: person {person} has no 'pose_keypoints_2d'")
    vals = np.asarray(flat, dtype=np.float64)
    if vals.size % 3:
        raise PoseError(f"{path}: pose_keypoints_2d has {vals.size} numbers, expected x, y, c per joint")
    joints = vals.reshape(-1, 3)
    if len(joints) == 25:
        joints = joints[list(BODY25_TO_COCO18)]
    elif len(joints) != NUM_KEYPOINTS:
        raise PoseError(f"{path}: {len(joints)} joints; expected 18 (COCO-18) or 25 (BODY-25)")
    kps = np.stack([joints[:, 1], joints[:, 0]], axis=1)
    kps[joints[:, 2] < min_confidence] = -1
    return validate_keypoints(kps, what=str(path))


def from_csv_row(row: str, *, what: str = "annotation row") -> tuple[str, np.ndarray]:
    """Parses ``name:[y0, ...]:[x0, ...]`` as in the originals' annotation CSVs -> (name, 18x2)."""
    parts = row.strip().split(":")
    if len(parts) != 3:
        raise PoseError(
            f"{what}: expected 'name:keypoints_y:keypoints_x' (3 ':'-separated fields), got {len(parts)} fields"
        )
    name, ys, xs = parts
    try:
        y, x = json.loads(ys), json.loads(xs)
    except json.JSONDecodeError as e:
        raise PoseError(f"{what}: keypoint lists must be JSON lists of integers ({e})") from e
    if (
        not (isinstance(y, list) and isinstance(x, list))
        or len(y) != NUM_KEYPOINTS
        or len(x) != NUM_KEYPOINTS
    ):
        raise PoseError(f"{what}: expected two lists of {NUM_KEYPOINTS} integers")
    kps = np.stack([np.asarray(y, np.float64), np.asarray(x, np.float64)], axis=1)
    return name, validate_keypoints(kps, what=f"{what} ({name})")


def read_pose(pose: PoseLike, *, frame: tuple[int, int] | None = None, what: str = "pose") -> np.ndarray:
    """Any supported pose form -> validated 18x2 (y, x).

    Accepts an array-like, an OpenPose JSON path, a ``.csv`` path holding one annotation row (or a header plus
    one row), or an annotation row string.
    """
    if isinstance(pose, str | os.PathLike) and not (isinstance(pose, str) and ":" in pose and "[" in pose):
        path = pathlib.Path(pose)
        if not path.exists():
            raise PoseError(f"{what}: file {path} does not exist")
        if path.suffix.lower() == ".json":
            kps = from_openpose_json(path)
        else:
            rows = [r for r in path.read_text().splitlines() if r.strip() and not r.startswith("name:")]
            if len(rows) != 1:
                raise PoseError(f"{path}: expected one annotation row 'name:[ys]:[xs]', found {len(rows)}")
            _, kps = from_csv_row(
                rows[0], what=f"{path} line {1 + path.read_text().splitlines().index(rows[0])}"
            )
        return validate_keypoints(kps, frame=frame, what=what)
    if isinstance(pose, str):
        return validate_keypoints(from_csv_row(pose, what=what)[1], frame=frame, what=what)
    return validate_keypoints(np.asarray(pose), frame=frame, what=what)
