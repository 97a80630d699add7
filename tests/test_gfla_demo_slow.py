"""The README's GFLA demo end to end (slow: minutes on 2 CPU cores; run with ``pytest -m slow``).

Trains ``configs/gfla_fashion.py:demo`` through ``python -m ptx.main`` (both stages), checks that it wrote
checkpoints, TensorBoard events, PNG grids and metrics.json, then scores held-out puppet pairs (the test split:
people never seen in training):

* the generated image beats the mean training image by at least 0.15 SSIM, and copying the source and the mean
  image in L1;
* stage 1's warped source (the source warped by the finest flow of the flow-stage checkpoint) beats copying
  the source by at least 0.10 SSIM and in L1;
* the run takes at most 10 minutes of CPU time per core (20 CPU minutes on the 2-core reference machine).

``python tests/test_gfla_demo_slow.py WORKDIR`` prints the table for an existing demo run.
"""

from __future__ import annotations

import json
import os
import pathlib
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = "configs/gfla_fashion.py:demo"


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """[-1, 1] -> uint8 as the originals save results: trunc((x + 1) / 2 * 255)."""
    return np.clip((np.asarray(x, np.float32) + 1.0) * 127.5, 0, 255).astype(np.uint8)


def _metrics(pred_u8: np.ndarray, target_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image SSIM (Gaussian sigma 1.5, population covariance, range 255: GFLA's "SSIM_256") and L1 in [0, 1]."""
    from ptx.ops.ssim import structural_similarity

    p, t = pred_u8.astype(np.float32), target_u8.astype(np.float32)
    ssim = structural_similarity(p, t, data_range=255.0, gaussian_weights=True, use_sample_covariance=False)
    l1 = np.abs(p - t).mean(axis=(1, 2, 3)) / 255.0
    return np.asarray(ssim), l1


def _latest_steps(workdir: pathlib.Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def evaluate_demo(workdir: str | os.PathLike, max_batches: int = 0) -> dict[str, dict[str, float]]:
    """{row: {ssim, l1}} on the test split for the final model, stage 1's warp and the two baselines."""
    import jax

    from ptx.data import pipeline
    from ptx.methods import gfla
    from ptx.train import checkpoint

    sys.path.insert(0, str(REPO))
    from configs import gfla_fashion

    workdir = pathlib.Path(workdir)
    config = gfla_fashion.get_config("demo")
    flow_steps = int(config.stages[0].num_steps)
    ckpt = workdir / "checkpoints"
    steps = _latest_steps(workdir)
    if flow_steps not in steps:
        raise FileNotFoundError(f"no stage-1 checkpoint {flow_steps} in {ckpt} (have {steps})")

    def variables(step: int):
        tree = checkpoint.load_params(ckpt / str(step) / "state")
        return {p: {"params": tree["params"][p], **tree["state"][p]} for p in tree["params"]}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        method = gfla.build(config)
    predict = jax.jit(method.predict)
    final, stage1 = variables(steps[-1]), variables(flow_steps)

    # Mean image of the training targets (the honest "mean image" baseline).
    train = pipeline.make_loader(
        config.data, split="train", batch_size=16, seed=0, shuffle=False, num_epochs=1
    )
    total, count = 0.0, 0
    for batch in train:
        total = total + batch["target_image"].astype(np.float64).sum(axis=0)
        count += len(batch["target_image"])
    mean_image = np.round(total / count).astype(np.uint8)

    test = pipeline.make_loader(config.data, split="test", batch_size=8, seed=0, shuffle=False, num_epochs=1)
    rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for i, batch in enumerate(test):
        if max_batches and i >= max_batches:
            break
        b = {k: v for k, v in batch.items() if k.endswith(("_image", "_keypoints"))}
        target = b["target_image"]
        preds = {
            "gfla (final)": _to_uint8(predict(final, b)["image"]),
            "stage-1 warped source": _to_uint8(predict(stage1, b)["warped"]),
            "copy source": b["source_image"],
            "mean train image": np.broadcast_to(mean_image, target.shape),
        }
        for name, pred in preds.items():
            rows.setdefault(name, []).append(_metrics(pred, target))
    return {
        name: {
            "ssim": float(np.concatenate([s for s, _ in vals]).mean()),
            "l1": float(np.concatenate([l for _, l in vals]).mean()),
            "pairs": int(sum(len(s) for s, _ in vals)),
        }
        for name, vals in rows.items()
    }


def format_table(table: dict[str, dict[str, float]]) -> str:
    lines = [
        "| prediction | SSIM (higher better) | L1 in [0,1] (lower better) | pairs |",
        "|---|---|---|---|",
    ]
    for name, m in table.items():
        lines.append(f"| {name} | {m['ssim']:.4f} | {m['l1']:.4f} | {m['pairs']} |")
    return "\n".join(lines)


@pytest.mark.slow
def test_gfla_demo_beats_baselines(tmp_path):
    workdir = tmp_path / "gfla_demo"
    start, load = time.time(), os.getloadavg()[0]
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    # As a user runs it: one CPU device (conftest's XLA_FLAGS simulate 8, which the demo must not inherit).
    subprocess.run(
        [sys.executable, "-m", "ptx.main", "--config", CONFIG, "--workdir", str(workdir)],
        cwd=REPO,
        env={**os.environ, "XLA_FLAGS": ""},
        check=True,
        timeout=3600,
    )
    minutes = (time.time() - start) / 60
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)
    assert (workdir / "metrics.json").is_file()
    json.loads((workdir / "metrics.json").read_text())
    assert list((workdir / "tb").rglob("events.out.tfevents*")), "no TensorBoard events"
    assert list((workdir / "images").glob("*.png")), "no PNG grids"
    assert len(_latest_steps(workdir)) >= 2, "expected the stage-1 and the final checkpoint"

    table = evaluate_demo(workdir)
    print(
        f"\nGFLA demo trained in {minutes:.1f} min wall, {cpu_s:.0f} CPU s, load {load:.1f} -> "
        f"{os.getloadavg()[0]:.1f}\n" + format_table(table)
    )
    final, warped = table["gfla (final)"], table["stage-1 warped source"]
    copy, mean = table["copy source"], table["mean train image"]
    assert final["ssim"] >= mean["ssim"] + 0.15 and final["ssim"] > copy["ssim"], table
    assert final["l1"] < copy["l1"] and final["l1"] < mean["l1"], table
    assert warped["ssim"] >= copy["ssim"] + 0.10 and warped["l1"] < copy["l1"], table
    assert cpu_s <= 20 * 60, f"{cpu_s:.0f} CPU s"


if __name__ == "__main__":
    print(format_table(evaluate_demo(sys.argv[1])))
