"""Writing frame sequences: GIF with Pillow (always there), MP4 when imageio with its ffmpeg plugin is."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

import numpy as np
from PIL import Image


def write_animation(
    frames: Sequence[np.ndarray], path: str | os.PathLike, *, fps: float = 10.0
) -> pathlib.Path:
    """Writes uint8 HxWx3 frames to ``path`` (.gif, or .mp4 when imageio-ffmpeg is installed)."""
    path = pathlib.Path(path)
    if not frames:
        raise ValueError("write_animation: no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        images = [Image.fromarray(np.asarray(f, np.uint8)) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    elif suffix in (".mp4", ".webm", ".mov"):
        try:
            import imageio.v3 as iio
        except ImportError as e:
            raise RuntimeError(
                f"writing {path.name} needs imageio and imageio-ffmpeg (pip install imageio imageio-ffmpeg); "
                "use a .gif path to write with Pillow instead"
            ) from e
        iio.imwrite(path, np.stack([np.asarray(f, np.uint8) for f in frames]), fps=fps)
    else:
        raise ValueError(f"write_animation: unknown format {suffix!r} for {path}; use .gif or .mp4")
    return path
