"""Metric writers (TensorBoard events via tensorboardX, and stdout), progress with ETA, image grids.

No TensorFlow: clu's writers import it (1.4 GB), tensorboardX writes the same event files. Only process 0
writes; the others get a writer that drops everything.
"""

from __future__ import annotations

import json
import math
import pathlib
import time
from collections.abc import Mapping

import jax
import numpy as np
from absl import logging


class MetricWriter:
    """Scalars and images to TensorBoard (``<workdir>/tb``) and stdout; images also as PNG files."""

    def __init__(self, workdir: str | pathlib.Path, *, enabled: bool | None = None, tensorboard: bool = True):
        self.workdir = pathlib.Path(workdir)
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self._tb = None
        if self.enabled and tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(self.workdir / "tb"))

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        for k, v in values.items():
            if self._tb is not None:
                self._tb.add_scalar(k, v, step)
        logging.info("[%d] %s", step, ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(values.items())))

    def image(self, step: int, name: str, image: np.ndarray) -> pathlib.Path | None:
        """``image`` uint8 HxWx3; written to TensorBoard and ``<workdir>/images/<name>_<step>.png``."""
        if not self.enabled:
            return None
        from PIL import Image

        if self._tb is not None:
            self._tb.add_image(name, image, step, dataformats="HWC")
        path = self.workdir / "images" / f"{name.replace('/', '_')}_{step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        return path

    def text(self, name: str, value: str) -> None:
        if self._tb is not None:
            self._tb.add_text(name, value, 0)

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _fmt(v: float) -> str:
    return f"{v:.5g}" if isinstance(v, float) else str(v)


def write_json(path: str | pathlib.Path, values: Mapping) -> None:
    """A JSON file written by process 0 only (atomically: a reader never sees half a file)."""
    if jax.process_index() != 0:
        return
    path = pathlib.Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(values, indent=2, sort_keys=True, default=float))
    tmp.replace(path)


class Progress:
    """Steps/s over the last interval and the ETA of the stage."""

    def __init__(self, total_steps: int, start_step: int = 0):
        self.total = total_steps
        self._t, self._step = time.perf_counter(), start_step

    def report(self, step: int) -> dict[str, float]:
        now = time.perf_counter()
        rate = (step - self._step) / max(now - self._t, 1e-9)
        self._t, self._step = now, step
        eta = (self.total - step) / rate if rate > 0 else math.inf
        return {"steps_per_sec": rate, "eta_min": eta / 60.0}


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[-1, 1] float -> uint8."""
    return np.clip(np.round((np.asarray(image, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def pose_panel(keypoints: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A picture of a (18, 2) pose: the data helper's skeleton drawing, else a max-projection of heatmaps."""
    try:
        from ptx.data.keypoints import draw_skeleton
    except ImportError:
        draw_skeleton = None
    if draw_skeleton is not None:
        return np.asarray(draw_skeleton(keypoints, size), np.uint8)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sigma = max(1.0, min(h, w) / 40.0)
    panel = np.zeros((h, w), np.float32)
    for y, x in np.asarray(keypoints, np.float32):
        if y >= 0 and x >= 0:
            panel = np.maximum(panel, np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2)))
    return np.repeat((panel * 255).astype(np.uint8)[..., None], 3, axis=-1)


def image_grid(batch: Mapping[str, np.ndarray], output: np.ndarray, num: int) -> np.ndarray:
    """Rows of source | target pose | output | ground truth (uint8); ``output`` is [-1, 1] float."""
    rows = []
    for i in range(min(num, output.shape[0])):
        src, tgt = batch["source_image"][i], batch["target_image"][i]
        pose = pose_panel(batch["target_keypoints"][i], tgt.shape[:2])
        rows.append(np.concatenate([src, pose, to_uint8(output[i]), tgt], axis=1))
    return np.concatenate(rows, axis=0)


def write_config(config, workdir: str | pathlib.Path) -> None:
    """The resolved config (after ``--config.key=value`` overrides) as ``config.json`` in the workdir."""
    if jax.process_index() != 0:
        return
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
