"""TFDS builder ``deepfashion_pose``: DeepFashion In-shop pose-transfer data from the originals' files."""

from .deepfashion_pose import DeepfashionPose

__all__ = ["DeepfashionPose"]
