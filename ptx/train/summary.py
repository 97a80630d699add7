"""The end of a training run: how good it is, what it looks like, how to use it.

``ptx.train.loop.run`` calls :func:`finish` after the last stage (on every process; the work runs on process 0,
on its own device, with the final weights copied to the host):

* held-out scores on ``config.eval_split`` (at most ``config.summary.pairs`` pairs, drawn with the run's seed)
  for the model's output, for stage 1's warped source when the method's ``predict`` returns ``warped``, and for
  two trivial predictions every model must beat: copying the source image and the mean TRAINING target image
  (``ptx.methods.common.baselines``). Columns: SSIM (Gaussian window sigma 1.5, population covariance, range
  255: GFLA's "SSIM_256"), L1 on [0, 1], the same two inside the person region (target parsing > 0, 255 =
  unlabelled excluded: a plain background cannot carry the score; skipped with a note when the data has no
  parsing maps), and LPIPS-alex when both of its weight files are on disk (nothing is downloaded);
* written to ``metrics.json`` under ``eval.summary`` (what the file held is kept), to TensorBoard under
  ``summary/``, and printed as a table;
* ``summary_grid.png``: held-out pairs as source | target pose | stage-1 warp (when there is one) |
  output | ground truth; ``examples/``: one held-out source photo with its keypoints and a target pose, to
  sample with; ``report.html`` (grid, table, loss curves; ``ptx.train.report``).

:func:`print_closing` (the command line, after training) names those files, the checkpoint and the command
that samples from it (``python -m ptx.main ... --mode sample`` with the run's own ``--config`` arguments). ``config.summary.enabled=False`` turns all of it off.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import shlex
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from ptx.train import logging as tlog
from ptx.train import report

EXAMPLES_DIR = "examples"
GRID_FILE = "summary_grid.png"
SUMMARY_FILE = "summary.json"  # what print_closing reads back

DEFAULTS = {
    "enabled": True,
    "pairs": 400,  # held-out pairs scored (fewer when the split has fewer)
    "rows": 8,  # rows of the final grid
    "mean_pairs": 512,  # training pairs averaged for the mean-image baseline
    "lpips_trunk": "",  # torchvision's alexnet-owt-7be5be79.pth; default: the torch hub cache
}

# Row keys of metrics.json, in display order (their labels: ptx.train.report.LABELS).
MODEL, WARP, COPY, MEAN = "model", "warped", "copy_source", "mean_image"
SSIM_WINDOW = 11  # Gaussian sigma 1.5 truncated at 3.5 sigma (skimage's gaussian_weights=True)
UNLABELLED = 255


def settings(config) -> dict[str, Any]:
    """``config.summary`` over :data:`DEFAULTS` (a config without the section gets the defaults)."""
    given = config.get("summary", None)
    return {**DEFAULTS, **(dict(given) if given is not None else {})}


# ------------------------------------------------------------------------------------------------ scoring


@jax.jit
def _scores(pred: jax.Array, target: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
    """Per-image SSIM and L1, whole image and inside ``mask`` (B, H, W) bool; uint8 (B, H, W, 3) inputs."""
    from ptx.ops import ssim

    p, t = pred.astype(jnp.float32), target.astype(jnp.float32)
    smap = ssim.ssim_map(p, t, data_range=255.0, window="gaussian", win_size=SSIM_WINDOW, sigma=1.5)
    pad = (SSIM_WINDOW - 1) // 2
    inner = mask[:, pad : mask.shape[1] - pad, pad : mask.shape[2] - pad, None].astype(jnp.float32)
    diff = jnp.abs(p - t) / 255.0
    m = mask[..., None].astype(jnp.float32)
    channels = p.shape[-1]
    return {
        "ssim": smap.mean(axis=(1, 2, 3)),
        "l1": diff.mean(axis=(1, 2, 3)),
        "ssim_person": (smap * inner).sum(axis=(1, 2, 3)) / (inner.sum(axis=(1, 2, 3)) * channels),
        "l1_person": (diff * m).sum(axis=(1, 2, 3)) / (m.sum(axis=(1, 2, 3)) * channels),
    }


def person_mask(parsing: np.ndarray) -> np.ndarray:
    """Parsing maps (B, H, W) of LIP labels -> the person's pixels (label > 0; 255 = unlabelled is not)."""
    parsing = np.asarray(parsing)
    parsing = parsing[..., 0] if parsing.ndim == 4 else parsing
    return (parsing > 0) & (parsing != UNLABELLED)


class Scores:
    """Per-image values of every row and column, accumulated batch by batch."""

    def __init__(self, lpips: Callable[[np.ndarray, np.ndarray], np.ndarray] | None):
        self.lpips = lpips
        self.values: dict[str, dict[str, list[np.ndarray]]] = {}

    def update(self, predictions: Mapping[str, np.ndarray], target: np.ndarray, mask: np.ndarray | None):
        m = np.ones(target.shape[:3], bool) if mask is None else mask
        for row, pred in predictions.items():
            got = {k: np.asarray(v) for k, v in _scores(pred, target, m).items()}
            if mask is None:
                got = {k: v for k, v in got.items() if not k.endswith("_person")}
            if self.lpips is not None:
                got["lpips"] = np.asarray(self.lpips(pred, target))
            for column, v in got.items():
                self.values.setdefault(row, {}).setdefault(column, []).append(v)

    def table(self) -> dict[str, dict[str, float]]:
        """{row: {column: mean over images}} (NaN-free: images without person pixels are left out)."""
        out = {}
        for row, columns in self.values.items():
            out[row] = {}
            for column, parts in columns.items():
                v = np.concatenate(parts)
                v = v[np.isfinite(v)]
                if len(v):
                    out[row][column] = float(v.mean())
        return out


def _lpips_scorer(opts: Mapping[str, Any], notes: list[str]):
    """LPIPS-alex(prediction, target) per image when both weight files are on disk, else None (and a note)."""
    from ptx.evaluate import lpips as lpips_lib

    trunk = opts.get("lpips_trunk") or os.path.join(
        "~", ".cache", "torch", "hub", "checkpoints", lpips_lib.TRUNK_FILES["alex"]
    )
    trunk = os.path.expanduser(trunk)
    lin = lpips_lib.default_lin_path("alex")
    if not os.path.isfile(trunk) or lin is None:
        missing = trunk if not os.path.isfile(trunk) else lpips_lib.missing_file_message("alex", "lin")
        notes.append(f"LPIPS skipped: its weights are not on disk ({missing}); nothing is downloaded")
        return None
    params = lpips_lib.load_lpips("alex", trunk, lin)
    model = lpips_lib.LPIPS("alex")
    fn = jax.jit(lambda a, b: model.apply({"params": params}, a, b))

    def score(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.asarray(
            fn(jnp.asarray(pred, jnp.float32) / 127.5 - 1, jnp.asarray(target, jnp.float32) / 127.5 - 1)
        )

    return score


# --------------------------------------------------------------------------------------------- data


def _eval_factory(config, loader_factory, notes: list[str]):
    """The run's loader factory; for the real pipeline, one that also gives parsing maps when the dataset has
    them (the person region), else the run's own and a note."""
    data_cfg = getattr(loader_factory, "data_config", None)  # set by loop.pipeline_loader_factory
    if data_cfg is None or data_cfg.get("parsing"):
        return loader_factory
    with_parsing = data_cfg.copy_and_resolve_references()
    with with_parsing.unlocked():
        with_parsing.parsing = True
    factory = loader_factory.with_data_config(with_parsing)
    try:
        factory(split=config.get("eval_split", "test"), **_ONE_PASS, batch_size=1, seed=0, shuffle=False)
    except ValueError as e:
        if "parsing" not in str(e):
            raise
        notes.append("person-region columns skipped: the dataset has no parsing maps")
        return loader_factory
    return factory


_ONE_PASS = {"num_epochs": 1, "shard_index": 0, "shard_count": 1}


def _batches(factory, split: str, batch_size: int, seed: int, pairs: int) -> Iterator[dict[str, np.ndarray]]:
    """Up to ``pairs`` pairs of ``split`` in batches, drawn in a seeded random order (one pass)."""
    loader = factory(split=split, batch_size=batch_size, seed=seed, shuffle=True, **_ONE_PASS)
    seen = 0
    for batch in loader:
        if seen >= pairs:
            return
        yield batch
        seen += len(batch["target_image"])


def mean_training_target(factory, batch_size: int, seed: int, pairs: int) -> np.ndarray | None:
    """The mean target image of (up to ``pairs``) training pairs, uint8: the mean-image baseline (a mean over
    the evaluated pairs would contain their answers)."""
    total, count = None, 0
    for batch in _batches(factory, "train", batch_size, seed, pairs):
        t = np.asarray(batch["target_image"], np.float64)
        total = t.sum(axis=0) if total is None else total + t.sum(axis=0)
        count += len(t)
    return None if total is None else np.round(total / count).astype(np.uint8)


def _to_host(variables: Any) -> Any:
    """Device arrays -> numpy on every process (sharded ones gathered: all processes must call this)."""
    from jax.experimental import multihost_utils

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(get, variables)


# --------------------------------------------------------------------------------------------- outputs


@dataclasses.dataclass
class GridRow:
    """One held-out pair as the grid shows it (uint8 images, 18x2 keypoints)."""

    source: np.ndarray
    source_keypoints: np.ndarray
    target_keypoints: np.ndarray
    warped: np.ndarray | None
    output: np.ndarray
    target: np.ndarray


def grid_image(rows: list[GridRow], min_panel: int = 128) -> tuple[np.ndarray, list[str]]:
    """The rows side by side (panels scaled up by a whole factor to at least ``min_panel`` px high, 2 px
    gaps) under a strip naming the columns; returns (uint8 image, column names)."""
    from PIL import Image, ImageDraw

    h, w = rows[0].target.shape[:2]
    k = max(1, math.ceil(min_panel / h))
    names = ["source", "target pose"] + (["stage-1 warp"] if rows[0].warped is not None else [])
    names += ["output", "ground truth"]
    gap, header = 2, 16
    width = len(names) * (w * k + gap) - gap
    canvas = np.full((header + len(rows) * (h * k + gap), width, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        pose = tlog.pose_panel(row.target_keypoints, (h, w))
        panels = (
            [row.source, pose] + ([row.warped] if row.warped is not None else []) + [row.output, row.target]
        )
        for c, panel in enumerate(panels):
            big = np.repeat(np.repeat(np.asarray(panel, np.uint8), k, 0), k, 1)
            y, x = header + r * (h * k + gap), c * (w * k + gap)
            canvas[y : y + h * k, x : x + w * k] = big
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    for c, name in enumerate(names):
        draw.text((c * (w * k + gap) + 3, 2), name, fill=(0, 0, 0))
    return np.asarray(image), names


def write_openpose(path: pathlib.Path, keypoints: np.ndarray) -> None:
    """18x2 (y, x) keypoints (-1 missing) as an OpenPose COCO-18 JSON file (what ``ptx.sample`` reads)."""
    flat = []
    for y, x in np.asarray(keypoints, np.float64):
        flat += [float(x), float(y), 1.0] if y >= 0 and x >= 0 else [0.0, 0.0, 0.0]
    path.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": flat}]}) + "\n")


def write_examples(workdir: pathlib.Path, config, row: GridRow) -> dict[str, str]:
    """A held-out source photo (in the dataset's frame, as a photo would come), its keypoints and a target
    pose under ``examples/``: the inputs of the sampling command :func:`print_closing` prints."""
    from PIL import Image

    from ptx.data.framing import training_frame_aspect

    folder = workdir / EXAMPLES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    h, w = row.source.shape[:2]
    photo_w = max(1, round(h / training_frame_aspect(config.data)))  # undo the stretch to the model's size
    sx = photo_w / w

    def to_photo(kps: np.ndarray) -> np.ndarray:
        kps = np.asarray(kps, np.float64).copy()
        present = np.all(kps >= 0, axis=1)
        kps[present, 1] *= sx
        kps[~present] = -1
        return np.minimum(kps, [h - 1, photo_w - 1])

    Image.fromarray(row.source).resize((photo_w, h), Image.Resampling.BILINEAR).save(folder / "source.png")
    write_openpose(folder / "source.json", to_photo(row.source_keypoints))
    write_openpose(folder / "target_pose.json", to_photo(row.target_keypoints))
    Image.fromarray(row.target).resize((photo_w, h), Image.Resampling.BILINEAR).save(folder / "target.png")
    return {k: str(folder / f) for k, f in {"source": "source.png", "source_pose": "source.json",
                                                "pose": "target_pose.json"}.items()}  # fmt: skip


def _merge_metrics(path: pathlib.Path, summary: Mapping[str, Any]) -> None:
    """``metrics.json`` with ``eval.summary`` set; everything else the file held is kept."""
    current = json.loads(path.read_text()) if path.is_file() else {}
    current.setdefault("eval", {})["summary"] = summary
    tlog.write_json(path, current)


# ------------------------------------------------------------------------------------------------ entry


@dataclasses.dataclass
class HeldOut:
    """What the held-out pass found: the table, the grid's rows, how many pairs, whether they had parsing."""

    table: dict[str, dict[str, float]]
    rows: list[GridRow]
    pairs: int
    has_parsing: bool


def evaluate_held_out(
    config, method, variables: Any, factory, opts: Mapping[str, Any], notes: list[str]
) -> HeldOut:
    """Scores the model's output (and warp) and the two baselines on held-out pairs; keeps the grid's rows."""
    from ptx.evaluate.evaluators import to_uint8
    from ptx.methods.common import baselines
    from ptx.train import sharding

    split, seed, batch_size = config.get("eval_split", "test"), int(config.seed), int(config.data.batch_size)
    mean = mean_training_target(factory, batch_size, seed, int(opts["mean_pairs"]))
    scores = Scores(_lpips_scorer(opts, notes))
    predict = jax.jit(method.predict)
    variables = jax.device_put(variables)  # once, not with every batch
    keep_parsing = bool(config.data.get("parsing"))  # as in training: the method may read parsing maps
    rows: list[GridRow] = []
    pairs, has_parsing = 0, False
    for batch in _batches(factory, split, batch_size, seed, int(opts["pairs"])):
        inputs = sharding.device_batch(batch)
        out = predict(
            variables, {k: v for k, v in inputs.items() if keep_parsing or not k.endswith("_parsing")}
        )
        target = np.asarray(batch["target_image"])
        predictions = {MODEL: to_uint8(np.asarray(out["image"]))}
        if "warped" in out:
            predictions[WARP] = to_uint8(np.asarray(out["warped"]))
        if mean is not None:  # exact: both baselines are uint8 images mapped to [-1, 1]
            for row, image in baselines(batch, mean).items():
                predictions[row] = to_uint8(image, "round")
        mask = person_mask(batch["target_parsing"]) if "target_parsing" in batch else None
        has_parsing = mask is not None
        scores.update(predictions, target, mask)
        pairs += len(target)
        for i in range(min(len(target), int(opts["rows"]) - len(rows))):
            warped = predictions[WARP][i] if WARP in predictions else None
            rows.append(
                GridRow(
                    np.asarray(batch["source_image"][i]),
                    np.asarray(batch["source_keypoints"][i]),
                    np.asarray(batch["target_keypoints"][i]),
                    warped,
                    predictions[MODEL][i],
                    target[i],
                )
            )
    if pairs and not has_parsing and not any("parsing" in n for n in notes):
        notes.append("person-region columns skipped: the batches carry no parsing maps")
    if not pairs:
        notes.append(f"no held-out pairs: the {split!r} split gave no full batch of {batch_size}")
    return HeldOut(scores.table(), rows, pairs, has_parsing)


DEFINITIONS = {
    "ssim": "mean SSIM, Gaussian window sigma 1.5, population covariance, data range 255",
    "l1": "mean |prediction - target| on [0, 1]",
    "ssim_person": "SSIM map averaged over the target's person pixels (parsing > 0)",
    "l1_person": "L1 averaged over the target's person pixels",
    "lpips": "LPIPS v0.1 alex",
}


def finish(
    config,
    workdir: str | pathlib.Path,
    method,
    variables: Any,
    loader_factory,
    writer: tlog.MetricWriter,
    step: int,
) -> dict[str, Any] | None:
    """The end-of-run summary (module docstring); returns what went to ``metrics.json`` (None when off or
    on processes other than 0)."""
    opts = settings(config)
    if not opts["enabled"] or variables is None:
        return None
    host_variables = _to_host(variables)
    if jax.process_index() != 0:
        return None
    start = time.perf_counter()
    workdir = pathlib.Path(workdir)
    notes: list[str] = []
    factory = _eval_factory(config, loader_factory, notes)
    held = evaluate_held_out(config, method, host_variables, factory, opts, notes)
    seconds = time.perf_counter() - start
    split = config.get("eval_split", "test")
    result: dict[str, Any] = {
        "split": split,
        "pairs": held.pairs,
        "rows": {r: held.table[r] for r in (MODEL, WARP, COPY, MEAN) if r in held.table},
        "labels": {r: report.LABELS[r] for r in held.table},
        "definitions": DEFINITIONS,
        "notes": notes,
        "seconds": round(seconds, 1),
    }
    _merge_metrics(workdir / "metrics.json", result)
    writer.scalars(
        step,
        {f"summary/{r}/{c}": v for r, cols in result["rows"].items() for c, v in cols.items()},
        echo=False,
    )
    files: dict[str, Any] = {}
    if held.rows:
        from PIL import Image

        Image.fromarray(grid_image(held.rows)[0]).save(workdir / GRID_FILE)
        files["grid"] = str(workdir / GRID_FILE)
        files["examples"] = write_examples(workdir, config, held.rows[0])
    files["report"] = str(report.write(workdir, config, result, grid=files.get("grid")))
    files["checkpoint"] = str(_latest_checkpoint(workdir) or "")
    (workdir / SUMMARY_FILE).write_text(json.dumps({"files": files, **result}, indent=2) + "\n")
    lines = [
        f"held-out pairs: {held.pairs} of the {split} split ({seconds:.0f} s)",
        *report.format_table(held.table),
    ]
    logging.info("summary of the run\n%s", "\n".join(lines + [f"  note: {n}" for n in notes]))
    return result


def _latest_checkpoint(workdir: pathlib.Path) -> pathlib.Path | None:
    folder = workdir / "checkpoints"
    if not folder.is_dir():
        return None
    steps = [p for p in folder.iterdir() if p.name.isdigit()]
    return max(steps, key=lambda p: int(p.name)) if steps else None


def closing_lines(workdir: str | pathlib.Path, config_args: Sequence[str] = ()) -> list[str]:
    """The run's last lines: where the grid, the report and the checkpoint are, and the command that samples
    from the checkpoint (``config_args``: the training command's ``--config`` arguments, overrides included)."""
    workdir = pathlib.Path(workdir)
    path = workdir / SUMMARY_FILE
    if not path.is_file():
        return []
    files = json.loads(path.read_text()).get("files", {})
    lines = []
    if files.get("grid"):
        lines.append(f"grid of held-out pairs: {files['grid']}")
    if files.get("report"):
        lines.append(f"report:                 {files['report']}")
    if files.get("checkpoint"):
        lines.append(f"checkpoint:             {files['checkpoint']}")
    examples = files.get("examples")
    if examples and config_args:
        command = ["python", "-m", "ptx.main", *config_args, "--workdir", str(workdir), "--mode", "sample"]
        command += ["--source", examples["source"], "--pose", examples["pose"]]
        command += ["--output", str(workdir / EXAMPLES_DIR / "sampled.png")]
        lines.append(f"sample from it:         {shlex.join(command)}")
        lines.append(
            f"  (the source's keypoints are read from {examples['source_pose']} beside it: any photo works "
            "with its OpenPose JSON)"
        )
    return lines


def print_closing(workdir: str | pathlib.Path, config_args: Sequence[str] = ()) -> None:
    """Prints :func:`closing_lines` (process 0 only)."""
    if jax.process_index() != 0:
        return
    for line in closing_lines(workdir, config_args):
        print(line, flush=True)
