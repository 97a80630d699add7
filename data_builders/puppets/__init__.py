"""TFDS builder ``puppets``: procedurally rendered people, the built-in dataset (no download)."""

from .puppets import SIZES, Puppets, PuppetsConfig

__all__ = ["SIZES", "Puppets", "PuppetsConfig"]
