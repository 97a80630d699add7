"""Folders of result images as the originals write them: listing, reading, panel splitting, pairing by name.

* PATN / pSSIM: ``<from>___<to>_vis.jpg``, 5 panels [source | source pose | target | target pose | generated].
* Def-GAN: 3 panels [source | target | generated].
* GFLA: single images ``<from stem>_2_<to stem>_vis.jpg``; the target is ``<to stem>.jpg`` in the real folder.
Panels are split with w = width / panels, as the metric scripts do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def list_images(folder: str | os.PathLike) -> list[str]:
    """Sorted image files of a folder (error naming the folder when there are none)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder not found: {folder}")
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(EXTENSIONS))
    if not files:
        raise FileNotFoundError(f"no {'/'.join(EXTENSIONS)} images in {folder}")
    return files


def read_image(path: str) -> np.ndarray:
    """uint8 HxWx3 (PIL, converted to RGB as pytorch-fid and the originals' imread do); an unreadable or
    truncated file is an error naming it."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except OSError as e:
        raise ValueError(f"{path}: not a readable image ({e}); expected a complete PNG or JPEG") from e


def read_images(paths: Sequence[str]):
    """Lazily yields uint8 images (FID streams them in batches)."""
    for p in paths:
        yield read_image(p)


def split_panels(image: np.ndarray, panels: int, path: str = "") -> list[np.ndarray]:
    """Cuts a result strip into ``panels`` equal-width panels."""
    w = image.shape[1]
    if panels < 1 or w % panels:
        raise ValueError(f"{path}: width {w} is not {panels} equal panels (use --panels)")
    step = w // panels
    return [image[:, i * step : (i + 1) * step] for i in range(panels)]


def target_name(file_name: str) -> str:
    """Name of the target image a result file was generated for (PATN ``___``, GFLA ``_2_`` conventions)."""
    stem = os.path.splitext(os.path.basename(file_name))[0]
    if stem.endswith("_vis"):
        stem = stem[: -len("_vis")]
    if "___" in stem:  # PATN / pSSIM: <from>___<to> with <to> a full file name
        return stem.split("___")[-1]
    if "_2_" in stem:  # GFLA: <from stem>_2_<to stem>
        return stem.split("_2_")[-1] + ".jpg"
    return os.path.basename(file_name)


def find_target(real_dir: str, file_name: str) -> str:
    """Path of the ground truth for a result file in ``real_dir``, trying the name's usual extensions."""
    name = target_name(file_name)
    stem = os.path.splitext(name)[0]
    for candidate in [name] + [stem + e for e in EXTENSIONS]:
        path = os.path.join(real_dir, candidate)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"no ground truth for {os.path.basename(file_name)} in {real_dir} (looked for {name})"
    )
