"""The SCA-GAN demo end to end (slow: minutes on 2 CPU cores; run with ``pytest -m slow``).

Trains ``configs/scagan_fashion.py:demo`` through ``python -m ptx.main`` (stage ``pctnet``, then ``isnet``), then
scores held-out puppet pairs (the test split: people never seen in training):

* the PCT-Net's transferred edges (the stage-1 checkpoint, eval mode) beat copying the source's edges, in L1
  against the target's edges;
* the generated image beats copying the source image and the mean training image in SSIM and in L1.

``python tests/test_scagan_demo_slow.py WORKDIR`` prints the table for an existing demo run.
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
CONFIG = "configs/scagan_fashion.py:demo"


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """[-1, 1] -> uint8 as the original saves results: trunc((x + 1) / 2 * 255)."""
    return np.clip((np.asarray(x, np.float32) + 1.0) * 127.5, 0, 255).astype(np.uint8)


def _metrics(pred_u8: np.ndarray, target_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image SSIM (Gaussian sigma 1.5, population covariance, range 255) and L1 in [0, 1]."""
    from ptx.ops.ssim import structural_similarity

    p, t = pred_u8.astype(np.float32), target_u8.astype(np.float32)
    ssim = structural_similarity(p, t, data_range=255.0, gaussian_weights=True, use_sample_covariance=False)
    l1 = np.abs(p - t).mean(axis=(1, 2, 3)) / 255.0
    return np.asarray(ssim), l1


def _steps(workdir: pathlib.Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def evaluate_demo(workdir: str | os.PathLike, max_batches: int = 0) -> dict[str, dict[str, float]]:
    """{row: {ssim, l1, pairs}} on the test split: final images, stage-1 edges and the baselines."""
    import jax

    from ptx.data import pipeline
    from ptx.methods import scagan
    from ptx.models import scagan as models
    from ptx.train import checkpoint

    sys.path.insert(0, str(REPO))
    from configs import scagan_fashion

    workdir = pathlib.Path(workdir)
    config = scagan_fashion.get_config("demo")
    pct_steps = int(config.stages[0].num_steps)
    steps = _steps(workdir)
    if pct_steps not in steps:
        raise FileNotFoundError(
            f"no stage-1 checkpoint {pct_steps} in {workdir / 'checkpoints'} (have {steps})"
        )

    def variables(step: int):
        tree = checkpoint.load_params(workdir / "checkpoints" / str(step) / "state")
        return {p: {"params": tree["params"][p], **tree["state"][p]} for p in tree["params"]}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        method = scagan.build(config)
    predict = jax.jit(method.predict)
    pct = models.edge_variables(variables(pct_steps)["gen"])
    transfer = jax.jit(
        lambda v, x: method.pct.apply(v, x["source_edge"], x["target_pose"], x["shifted_edges"])
    )
    final = variables(steps[-1])

    train = pipeline.make_loader(
        config.data, split="train", batch_size=16, seed=0, shuffle=False, num_epochs=1
    )
    total, count = 0.0, 0
    for batch in train:
        total = total + batch["target_image"].astype(np.float64).sum(axis=0)
        count += len(batch["target_image"])
    mean_image = np.round(total / count).astype(np.uint8)

    test = pipeline.make_loader(
        config.data,
        split="test",
        batch_size=8,
        seed=0,
        shuffle=False,
        num_epochs=1,
        host_transform=method.host_transform("test"),
    )
    rows: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for i, batch in enumerate(test):
        if max_batches and i >= max_batches:
            break
        target = batch["target_image"]
        edges = lambda e: np.repeat(255 - e[..., None], 3, axis=-1)  # noqa: E731 (lines bright, as the nets see them)
        stage1 = _to_uint8(transfer(pct, method.inputs(batch))["edge"])
        preds = {
            "scagan (final)": (_to_uint8(predict(final, batch, jax.random.key(i))["image"]), target),
            "copy source": (batch["source_image"], target),
            "mean train image": (np.broadcast_to(mean_image, target.shape), target),
            "edges: PCT-Net (stage 1)": (np.repeat(stage1, 3, axis=-1), edges(batch["target_edge"])),
            "edges: copy source": (edges(batch["source_edge"]), edges(batch["target_edge"])),
        }
        for name, (pred, ref) in preds.items():
            rows.setdefault(name, []).append(_metrics(pred, ref))
    return {
        name: {
            "ssim": float(np.concatenate([s for s, _ in vals]).mean()),
            "l1": float(np.concatenate([v for _, v in vals]).mean()),
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
def test_scagan_demo_beats_baselines(tmp_path):
    workdir = tmp_path / "scagan_demo"
    start, load = time.time(), os.getloadavg()[0]
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "ptx.main", "--config", CONFIG, "--workdir", str(workdir)],
        cwd=REPO,
        env={**os.environ, "XLA_FLAGS": ""},  # one CPU device, as a user runs it
        check=True,
        timeout=3600,
    )
    minutes = (time.time() - start) / 60
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime)
    json.loads((workdir / "metrics.json").read_text())
    table = evaluate_demo(workdir)
    print(
        f"\nSCA-GAN demo trained in {minutes:.1f} min wall, {cpu_s:.0f} CPU s, load {load:.1f} -> "
        f"{os.getloadavg()[0]:.1f}\n" + format_table(table)
    )
    final, copy, mean = table["scagan (final)"], table["copy source"], table["mean train image"]
    assert final["ssim"] > copy["ssim"] and final["ssim"] > mean["ssim"], table
    assert final["l1"] < copy["l1"] and final["l1"] < mean["l1"], table
    assert table["edges: PCT-Net (stage 1)"]["l1"] < table["edges: copy source"]["l1"], table


if __name__ == "__main__":
    print(format_table(evaluate_demo(sys.argv[1])))
