"""Photos and label maps as people have them (paths, PIL images, arrays of any dtype) -> the uint8 arrays ptx
works on. 16-bit images are scaled, not clipped; an animated image gives its first frame with a warning."""

from __future__ import annotations

import os
import pathlib
import warnings
from typing import Any

import numpy as np
from PIL import Image

ImageLike = Any  # str | os.PathLike | PIL.Image.Image | np.ndarray


def _pil_to_array(im: Image.Image, what: str) -> np.ndarray:
    """RGB uint8 of a PIL image: 16-bit and 32-bit integer images are scaled (PIL's ``convert("RGB")`` clips
    them to white); an animated image gives its first frame, with a warning."""
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        warnings.warn(f"{what}: the image has {frames} frames; using the first", stacklevel=3)
        im.seek(0)
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return (np.asarray(im, np.float64) / 257.0).round().astype(np.uint8)
    if im.mode == "I":
        arr = np.asarray(im, np.float64)
        scale = 257.0 if arr.max(initial=0) > 255 else 1.0  # PIL reads 16-bit PNGs as mode I too
        return np.clip(np.round(arr / scale), 0, 255).astype(np.uint8)
    return np.asarray(im.convert("RGB"))


def read_image(src: ImageLike, *, what: str = "src") -> np.ndarray:
    """A path, PIL image or array -> uint8 HxWx3 RGB (16-bit data scaled to 8 bits, not clipped)."""
    if isinstance(src, str | os.PathLike):
        path = pathlib.Path(src)
        if not path.exists():
            raise FileNotFoundError(f"{what}: image file {path} does not exist")
        try:
            with Image.open(path) as im:
                src = _pil_to_array(im, f"{what} {path}")
        except OSError as e:
            raise ValueError(f"{what}: {path} is not a readable image ({e})") from e
    if isinstance(src, Image.Image):
        src = _pil_to_array(src, what)
    arr = np.asarray(src)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"{what}: expected an HxWx3 image, got an array of shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.min() >= 0 and arr.max() <= 1:
            arr = arr * 255.0
        elif arr.dtype == np.uint16:
            arr = arr / 257.0
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    return arr


def read_label_map(src: Any, *, what: str = "src_parsing") -> np.ndarray:
    """A parsing map (path to a PNG of class ids, or an H x W integer array) -> uint8 H x W."""
    if isinstance(src, str | os.PathLike):
        path = pathlib.Path(src)
        if not path.exists():
            raise FileNotFoundError(f"{what}: file {path} does not exist")
        with Image.open(path) as im:
            src = np.asarray(im)
    arr = np.asarray(src)
    if arr.ndim == 3 and arr.shape[-1] in (1, 3):
        arr = arr[..., 0]
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what}: expected an H x W map of integer class ids, got {arr.dtype} {arr.shape}")
    if arr.min(initial=0) < 0 or arr.max(initial=0) > 255:
        raise ValueError(f"{what}: class ids must lie in 0..255, found {arr.min()}..{arr.max()}")
    return arr.astype(np.uint8)
