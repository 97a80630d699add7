"""Metric writers (TensorBoard events via tensorboardX, a JSON-lines history, stdout), progress lines with
ETA, image grids.

No TensorFlow: clu's writers import it (1.4 GB), tensorboardX writes the same event files. Only process 0
writes; the others get a writer that drops everything. ``<workdir>/scalars.jsonl`` keeps every logged scalar
(one line per call: step, wall time, values) for the run's report (``ptx.train.report``).
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

HISTORY_FILE = "scalars.jsonl"


class MetricWriter:
    """Scalars to TensorBoard (``<workdir>/tb``), ``scalars.jsonl`` and stdout; images to TensorBoard and PNG."""

    def __init__(self, workdir: str | pathlib.Path, *, enabled: bool | None = None, tensorboard: bool = True):
        self.workdir = pathlib.Path(workdir)
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self._tb = None
        if self.enabled and tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(self.workdir / "tb"))

    def scalars(self, step: int, values: Mapping[str, float], *, echo: bool = True) -> None:
        """``echo=False``: TensorBoard and the history only (the caller prints its own line)."""
        if not self.enabled:
            return
        for k, v in values.items():
            if self._tb is not None:
                self._tb.add_scalar(k, v, step)
        record = {
            "step": int(step),
            "time": round(time.time(), 3),
            **{k: _plain(v) for k, v in values.items()},
        }
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / HISTORY_FILE, "a") as f:
            f.write(json.dumps(record) + "\n")
        if echo:
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


def _plain(v):
    """A JSON value for the history (non-finite floats as strings: JSON has no inf/nan)."""
    v = float(v) if isinstance(v, np.generic) else v
    return v if not isinstance(v, float) or math.isfinite(v) else str(v)


def write_json(path: str | pathlib.Path, values: Mapping) -> None:
    """A JSON file written by process 0 only (atomically: a reader never sees half a file)."""
    if jax.process_index() != 0:
        return
    path = pathlib.Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(values, indent=2, sort_keys=True, default=float))
    tmp.replace(path)


class Progress:
    """Steps/s over the last interval, the ETA of the stage, and the one line a person reads per log step."""

    def __init__(self, total_steps: int, start_step: int = 0, name: str = ""):
        self.total, self.name = total_steps, name
        self._t, self._step = time.perf_counter(), start_step

    def report(self, step: int) -> dict[str, float]:
        now = time.perf_counter()
        rate = (step - self._step) / max(now - self._t, 1e-9)
        self._t, self._step = now, step
        eta = (self.total - step) / rate if rate > 0 else math.inf
        return {"steps_per_sec": rate, "eta_min": eta / 60.0}

    def line(self, step: int, rates: Mapping[str, float], losses: Mapping[str, float]) -> str:
        """``flow  120/300 (40%)  3.21 steps/s  ETA 0:56  gen 1.23 (l1 0.41, correctness 0.8)  disc 0.49``."""
        width = len(str(self.total))
        eta = rates["eta_min"] * 60.0
        head = (
            f"{self.name}  {step:>{width}}/{self.total} ({100 * step // max(self.total, 1):>3}%)  "
            f"{rates['steps_per_sec']:.3g} steps/s  ETA {format_duration(eta)}"
        )
        return "  ".join([head, *main_losses(losses)])


MAX_TERMS = 5  # loss terms shown per player besides its total


def main_losses(losses: Mapping[str, float]) -> list[str]:
    """``{"gen/loss": 1.2, "gen/l1": 0.4, "disc/loss": 0.5}`` -> ``["gen 1.2 (l1 0.4)", "disc 0.5"]``: each
    player's total, then up to MAX_TERMS of its other terms (largest first)."""
    players: dict[str, dict[str, float]] = {}
    for key, value in losses.items():
        player, _, term = key.rpartition("/")
        players.setdefault(player or "loss", {})[term] = value
    out = []
    for player, terms in players.items():
        total = terms.pop("loss", None)
        shown = sorted(terms.items(), key=lambda kv: -abs(kv[1]) if math.isfinite(kv[1]) else -math.inf)
        detail = ", ".join(f"{k} {v:.3g}" for k, v in shown[:MAX_TERMS])
        text = player if total is None else f"{player} {total:.4g}"
        out.append(f"{text} ({detail})" if detail else text)
    return out


def format_duration(seconds: float) -> str:
    """``75`` -> ``1:15``, ``4000`` -> ``1:06:40``; unknown -> ``?``."""
    if not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


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
