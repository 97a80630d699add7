"""TFDS builder ``market1501_pose``: Market-1501 pose-transfer data from the originals' files."""

from .market1501_pose import Market1501Pose

__all__ = ["Market1501Pose"]
