"""Slow: try-on on the CASD demo's trained weights moves the upper garment's colour toward the donor's.

    pytest -m slow tests/test_casd_edit_slow.py -s              (trains the demo: configs/casd_fashion.py:demo)
    PTX_CASD_EDIT_STEPS=300 pytest -m slow tests/test_casd_edit_slow.py -s     (a shortened demo)
    python tests/test_casd_edit_slow.py WORKDIR                 (measures an existing run, prints the table)

The demo trains as a user runs it, ``python -m ptx.main --config configs/casd_fashion.py:demo``, in a subprocess
on one CPU device (``XLA_FLAGS`` cleared, as the other demo tests), its data under ``$PTX_DATA_DIR`` when set
(else built in a temporary folder). Then, with ``ptx.edit.load(..., workdir)``, for ordered pairs (A, B) of
held-out people (the puppets test split's identities, never seen in training; pose 0, photos at the renderer's
256x176) whose upper garments differ clearly in colour. The photos are given without keypoints, so each is framed
whole, as the training images are (the keypoints framing of ``ptx.edit`` zooms into the renderer's half-body
close-ups, which the demo never saw); A's keypoints are passed as the target pose instead:

* plain = A in A's own pose; swapped = A with B's ``upper_clothes`` code (``regions={"upper_clothes": B}``);
* U / L = the predicted upper- / lower-clothes regions (argmax of the energy maps) of both outputs;
* toward B: the mean colour of ``swapped`` inside U is nearer B's garment colour (B's framed photo inside B's
  upper-clothes parsing) than the mean colour of ``plain`` inside U;
* lower changes less: mean |swapped - plain| inside L is below that inside U.

Both must hold on the mean over pairs and for at least two thirds of the pairs.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
UPPER_LIP = (5, 6, 7, 10, 11)  # LIP labels of CASD's upper_clothes region
MIN_COLOUR_GAP = 60.0  # RGB distance between the two people's garments for a pair to count
MIN_PIXELS = 12  # of a predicted region at 64x64


def train_demo(workdir: pathlib.Path, data_dir: pathlib.Path, steps: int) -> float:
    """``python -m ptx.main`` on the demo config (``steps`` overrides its length); returns wall minutes."""
    config = "configs/casd_fashion.py:demo" + (f",steps={steps}" if steps else "")
    cmd = [sys.executable, "-m", "ptx.main", "--config", config, "--workdir", str(workdir),
           f"--config.data.data_dir={data_dir}"]  # fmt: skip
    start = time.time()
    proc = subprocess.run(
        cmd, cwd=REPO, env={**os.environ, "XLA_FLAGS": ""}, capture_output=True, text=True, timeout=7200
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return (time.time() - start) / 60


def _held_out_person(index: int):
    """A Person without keypoints (framed whole) and its keypoints in the photo."""
    from data_builders.puppets.puppets import identity_seed, pose_seed
    from ptx import edit
    from ptx.data import puppets

    identity = puppets.sample_identity(identity_seed("test", index))
    r = puppets.render(
        identity, puppets.sample_pose(pose_seed("test", index, 0), "fashion", identity=identity)
    )
    return edit.Person(r["image"], None, r["parsing"]), r["keypoints"]


def measure(workdir: str | os.PathLike, people: int = 12) -> list[dict[str, float]]:
    """One row per informative pair: colour distances to B before / after, mean change inside U and L."""
    from ptx import edit

    editor = edit.load("casd_fashion", workdir)
    upper = editor.region_names.index("upper_clothes")
    lower = editor.region_names.index("lower_clothes")
    persons, poses = zip(*[_held_out_person(i) for i in range(people)], strict=True)
    framed = [editor.frame(p) for p in persons]
    garment = []
    for f in framed:
        mask = np.isin(f.parsing, UPPER_LIP)
        garment.append(f.image[mask].astype(np.float64).mean(0) if mask.sum() >= MIN_PIXELS else None)
    rows = []
    for a in range(people):
        plain, plain_regions = editor(persons[a], pose=poses[a], return_parsing=True)
        for b in range(people):
            if a == b or garment[a] is None or garment[b] is None:
                continue
            if np.linalg.norm(garment[a] - garment[b]) < MIN_COLOUR_GAP:
                continue
            swapped, regions = editor(
                persons[a], pose=poses[a], regions={"upper_clothes": persons[b]}, return_parsing=True
            )
            u = (regions == upper) & (plain_regions == upper)
            low = (regions == lower) & (plain_regions == lower)
            if u.sum() < MIN_PIXELS or low.sum() < MIN_PIXELS:
                continue
            p, s = plain.astype(np.float64), swapped.astype(np.float64)
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "to_b_before": float(np.linalg.norm(p[u].mean(0) - garment[b])),
                    "to_b_after": float(np.linalg.norm(s[u].mean(0) - garment[b])),
                    "change_upper": float(np.abs(s - p)[u].mean()),
                    "change_lower": float(np.abs(s - p)[low].mean()),
                }
            )
    return rows


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    col = {k: np.array([r[k] for r in rows]) for k in rows[0] if k not in ("a", "b")}
    return {
        "pairs": len(rows),
        **{f"mean_{k}": float(v.mean()) for k, v in col.items()},
        "share_toward_b": float(np.mean(col["to_b_after"] < col["to_b_before"])),
        "share_lower_changes_less": float(np.mean(col["change_lower"] < col["change_upper"])),
    }


def _print(summary: dict[str, float]) -> None:
    print("\nCASD demo try-on (upper_clothes from B), held-out puppets:")
    for k, v in summary.items():
        print(f"  {k:28s} {v:.3f}" if isinstance(v, float) else f"  {k:28s} {v}")


@pytest.mark.slow
def test_upper_clothes_swap_moves_the_garment_colour_toward_the_donor(tmp_path):
    steps = int(os.environ.get("PTX_CASD_EDIT_STEPS", "0"))  # 0: the demo's own length
    data_dir = pathlib.Path(os.environ.get("PTX_DATA_DIR") or tmp_path / "data")
    minutes = train_demo(tmp_path / "run", data_dir, steps)
    rows = measure(tmp_path / "run")
    assert len(rows) >= 8, f"only {len(rows)} informative pairs"
    summary = summarise(rows)
    _print(summary)
    print(f"  trained in {minutes:.1f} min ({steps or 'demo'} steps)")
    assert summary["mean_to_b_after"] < summary["mean_to_b_before"], summary
    assert summary["mean_change_lower"] < summary["mean_change_upper"], summary
    assert summary["share_toward_b"] >= 2 / 3, summary
    assert summary["share_lower_changes_less"] >= 2 / 3, summary


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    _print(summarise(measure(sys.argv[1])))
