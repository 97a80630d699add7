"""Detected skeletons drawn over the photo (the CLI's ``--show`` and reports)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ptx.data.keypoints import draw_skeleton


def overlay_skeleton(
    photo: Any,
    keypoints: np.ndarray | Sequence[np.ndarray],
    *,
    opacity: float = 0.8,
    line_width: int | None = None,
) -> np.ndarray:
    """uint8 (H, W, 3) RGB: ``photo`` with each person's limbs and joints (ptx's skeleton colours) blended on.

    ``keypoints``: one (18, 2) ``(y, x)`` array or a list of them (-1 = missing, not drawn).
    """
    from ptx.pose.estimator import read_photo

    rgb = read_photo(photo)
    people = [keypoints] if np.ndim(keypoints) == 2 else list(keypoints)
    out = rgb.astype(np.float32)
    for kps in people:
        layer = draw_skeleton(np.asarray(kps, np.float32), rgb.shape[:2], line_width=line_width)
        drawn = layer.any(axis=-1, keepdims=True)
        out = np.where(drawn, (1 - opacity) * out + opacity * layer, out)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
