"""OpenPose-compatible body keypoints (COCO-18) in JAX: network, the references' pre/post-processing, API.

``ptx.estimate_pose(photo)`` / ``ptx.estimate_poses(photo)`` are the entry points (``ptx.pose.estimator``);
``python -m ptx.pose --images DIR --out annotations.csv`` writes the originals' annotation CSV. Importing this
package is cheap: the estimator, jax and the network load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["estimate_pose", "estimate_poses", "PoseEstimator", "overlay_skeleton"]


def __getattr__(name: str) -> Any:
    if name in ("estimate_pose", "estimate_poses", "PoseEstimator"):
        from ptx.pose import estimator

        return getattr(estimator, name)
    if name == "overlay_skeleton":
        from ptx.pose.draw import overlay_skeleton

        return overlay_skeleton
    raise AttributeError(f"module 'ptx.pose' has no attribute {name!r}")
