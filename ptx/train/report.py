"""How a run's results are shown: ``report.html`` (the held-out table, the final grid, the loss curves and the
stage timings) and the text table the log prints.

One self-contained file (images embedded as PNG data), written by ``ptx.train.summary`` at the end of training
from the run's ``scalars.jsonl`` history (``ptx.train.logging.MetricWriter``). Curves are drawn with
matplotlib's object API (no pyplot state, no display needed).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from ptx.train import logging as tlog

REPORT_FILE = "report.html"

# Labels of the summary's rows (ptx.train.summary's keys) and columns, in display order.
LABELS = {
    "model": "output",
    "warped": "stage-1 warp",
    "copy_source": "copy source",
    "mean_image": "mean train image",
}
COLUMNS = {
    "ssim": "SSIM",
    "l1": "L1",
    "ssim_person": "SSIM person",
    "l1_person": "L1 person",
    "lpips": "LPIPS",
}
HIGHER_IS_BETTER = {"ssim": True, "ssim_person": True, "l1": False, "l1_person": False, "lpips": False}


def format_table(table: Mapping[str, Mapping[str, float]]) -> list[str]:
    """An aligned text table: one row per prediction, one column per metric that any row has."""
    columns = [c for c in COLUMNS if any(c in v for v in table.values())]
    label_w = max(len(LABELS.get(r, r)) for r in table) if table else 10
    widths = [max(len(COLUMNS[c]), 6) for c in columns]
    arrows = {c: "↑" if HIGHER_IS_BETTER[c] else "↓" for c in columns}
    head = (
        " " * label_w
        + "  "
        + "  ".join(f"{COLUMNS[c] + arrows[c]:>{wd + 1}}" for c, wd in zip(columns, widths))
    )
    lines = [head]
    for row, values in table.items():
        cells = [
            f"{values[c]:>{wd + 1}.3f}" if c in values else f"{'-':>{wd + 1}}"
            for c, wd in zip(columns, widths)
        ]
        lines.append(f"{LABELS.get(row, row):<{label_w}}  " + "  ".join(cells))
    return lines


def history(workdir: str | pathlib.Path) -> list[dict[str, Any]]:
    """The training log's records (those with a ``stage``; eval and summary values are left out), one per
    step: the last of a step wins (a resumed run repeats the steps after its checkpoint)."""
    path = pathlib.Path(workdir) / tlog.HISTORY_FILE
    if not path.is_file():
        return []
    by_step: dict[int, dict[str, Any]] = {}
    for line in path.read_text().splitlines():
        record = json.loads(line) if line.strip() else {}
        if "stage" in record:
            by_step[int(record["step"])] = record
    return [by_step[s] for s in sorted(by_step)]


def _numbers(records: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in records if isinstance(r.get(key), int | float)]
    pts = [(s, v) for s, v in pts if math.isfinite(v)]
    return np.asarray([p[0] for p in pts]), np.asarray([p[1] for p in pts], np.float64)


def loss_curves_png(records: list[dict[str, Any]], boundaries: Mapping[str, int]) -> bytes | None:
    """One panel per player (``train/<player>/<term>``), a line per term against the global step, the stage
    starts as dashed lines; log scale when every value is positive. None when nothing was logged."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = sorted({k for r in records for k in r if k.startswith("train/")})
    players: dict[str, list[str]] = {}
    for k in keys:
        players.setdefault(k.split("/")[1] if k.count("/") >= 2 else "loss", []).append(k)
    if not players:
        return None
    fig = Figure(figsize=(6.0 * len(players), 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    for i, (player, player_keys) in enumerate(players.items()):
        ax = fig.add_subplot(1, len(players), i + 1)
        positive = True
        for k in player_keys:
            x, y = _numbers(records, k)
            if len(x):
                ax.plot(
                    x,
                    y,
                    label=k.rsplit("/", 1)[-1],
                    linewidth=2.0 if k.endswith("/loss") else 1.0,
                    marker="o" if len(x) < 30 else None,  # a short run's few points stay visible
                    markersize=3,
                )
                positive &= bool(np.all(y > 0))
        for name, start in boundaries.items():
            ax.axvline(start, color="grey", linestyle="--", linewidth=0.8)
            ax.text(start, 1.0, f" {name}", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
        if positive:
            ax.set_yscale("log")
        ax.set_title(player)
        ax.set_xlabel("step")
        ax.legend(fontsize=7, loc="upper right")
        ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def stage_timings(
    records: list[dict[str, Any]], names: list[str], started: float | None = None
) -> list[tuple[str, float, float]]:
    """(stage, wall seconds, median steps/s) per stage that logged: from the previous stage's last log line (the
    first stage: ``started``, else its own first line) to its own last, so setup, data build and compile count."""
    out, previous_end = [], started
    for index, name in enumerate(names):
        times = [r["time"] for r in records if r.get("stage") == index and "time" in r]
        if not times:
            continue
        begin = previous_end if previous_end is not None and previous_end <= times[0] else times[0]
        rates = [r["progress/steps_per_sec"] for r in records if r.get("stage") == index]
        rates = [v for v in rates if isinstance(v, float)]
        out.append((name, times[-1] - begin, float(np.median(rates)) if rates else float("nan")))
        previous_end = times[-1]
    return out


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _table(result: Mapping[str, Any]) -> str:
    rows = result.get("rows", {})
    columns = [c for c in COLUMNS if any(c in v for v in rows.values())]
    best = {}
    for c in columns:
        values = [v[c] for v in rows.values() if c in v]
        best[c] = max(values) if HIGHER_IS_BETTER[c] else min(values)
    head = "".join(f"<th>{COLUMNS[c]} {'↑' if HIGHER_IS_BETTER[c] else '↓'}</th>" for c in columns)
    body = []
    for row, values in rows.items():
        cells = []
        for c in columns:
            if c not in values:
                cells.append("<td>-</td>")
            else:
                text = f"{values[c]:.3f}"
                cells.append(f"<td><b>{text}</b></td>" if values[c] == best[c] else f"<td>{text}</td>")
        body.append(f"<tr><th>{html.escape(LABELS.get(row, row))}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(body)}</table>"


def _shown_definitions(result: Mapping[str, Any]) -> dict[str, str]:
    """The definitions of the columns the table has."""
    shown = {c for row in result.get("rows", {}).values() for c in row}
    return {k: v for k, v in result.get("definitions", {}).items() if k in shown}


STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
tr th:first-child { text-align: left; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
.small { color: #666; font-size: 0.9em; }
"""


def write(
    workdir: str | pathlib.Path, config, result: Mapping[str, Any], *, grid: str | None = None
) -> pathlib.Path:
    """Writes ``<workdir>/report.html`` and returns its path."""
    workdir = pathlib.Path(workdir)
    records = history(workdir)
    names = [s.name for s in config.stages]
    offsets = np.cumsum([0] + [int(s.num_steps) for s in config.stages]).tolist()
    curves = loss_curves_png(records, dict(zip(names, offsets)))
    data = config.data
    what = (
        f"method <b>{html.escape(str(config.method))}</b>, data {html.escape(str(data.get('name', '')))}"
        f" {html.escape(str(data.get('builder_config', '') or ''))}, images "
        f"{'x'.join(str(v) for v in data.get('image_size', ()) or ())}, stages "
        + ", ".join(f"{s.name} ({s.num_steps} steps)" for s in config.stages)
    )
    parts = [
        f"<h1>ptx run {html.escape(workdir.resolve().name)}</h1><p>{what}</p>",
        f"<h2>Held-out pairs ({result.get('pairs', 0)} of the {html.escape(str(result.get('split', '')))} "
        "split)</h2>",
        _table(result),
        "<p class=small>"
        + "<br>".join(html.escape(f"{k}: {v}") for k, v in _shown_definitions(result).items())
        + "</p>",
    ]
    if result.get("notes"):
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in result["notes"]) + "</ul>")
    if grid:
        parts.append("<h2>Held-out pairs: source | target pose | (stage-1 warp) | output | ground truth</h2>")
        parts.append(_img(pathlib.Path(grid).read_bytes(), "grid of held-out pairs"))
    parts.append("<h2>Training losses</h2>")
    parts.append(_img(curves, "loss curves") if curves else "<p>No training losses were logged.</p>")
    config_file = workdir / "config.json"  # written as the run starts
    timings = stage_timings(records, names, config_file.stat().st_mtime if config_file.is_file() else None)
    if timings:
        steps = {s.name: int(s.num_steps) for s in config.stages}
        rows = "".join(
            f"<tr><th>{html.escape(n)}</th><td>{steps.get(n, '')}</td><td>{tlog.format_duration(sec)}</td>"
            f"<td>{rate:.3g}</td></tr>"
            for n, sec, rate in timings
        )
        parts.append(
            "<h2>Timing</h2><table><tr><th>stage</th><th>steps</th><th>wall time (setup, data build and "
            f"compile included)</th><th>median steps/s</th></tr>{rows}</table>"
            f"<p class=small>held-out evaluation: {result.get('seconds', 0):.0f} s. A resumed run counts "
            "from its restart.</p>"
        )
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>ptx report: {html.escape(workdir.name)}"
        f"</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    path = workdir / REPORT_FILE
    path.write_text(page)
    return path
