"""Slow: the PATN and pSSIM demos train on puppets and beat copy-source and mean-image baselines (held out).

    pytest -m slow tests/test_patn_demo_slow.py -s        (prints the table; each config trains for minutes)

Each demo trains as a user runs it, ``python -m ptx.main --config configs/<name>.py:demo``, in a subprocess on
one CPU device (``XLA_FLAGS`` cleared: conftest's 8 simulated devices would not divide the demo batch of 4 and
would only slow the 2 real cores down). The trainer evaluates the final weights on the test split
(``config.evals``: SSIM as the papers call it, L1 on the [-1, 1] scale, pSSIM); the baselines go through the
same evaluators on the same pairs and batches; the mean image is the mean TRAINING target (a mean over the
evaluated batch would contain the target itself). Printed
beside the table: wall minutes (train + eval), the trainer's median steps/s, the child's CPU seconds and the
1-minute load average before and after, because the 2 cores are shared and wall time alone says little.
"""

import importlib
import json
import os
import pathlib
import re
import resource
import subprocess
import sys
import time

import numpy as np
import pytest

from ptx.evaluate import evaluators
from ptx.methods.common import baselines
from ptx.train import loop

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[1]
DEMOS = ["patn_fashion", "patn_market", "pssim_fashion", "pssim_market"]


def mean_training_target(config) -> np.ndarray:
    """The mean target image of the training split, uint8 (the "mean image" baseline, as GFLA's demo test)."""
    loader = loop.pipeline_loader_factory(config.data)(
        split="train", batch_size=16, seed=int(config.seed), shuffle=False, num_epochs=1, shard_index=0,
        shard_count=1,
    )  # fmt: skip
    total, count = 0.0, 0
    for batch in loader:
        total = total + batch["target_image"].astype(np.float64).sum(axis=0)
        count += len(batch["target_image"])
    return np.round(total / count).astype(np.uint8)


def baseline_scores(config) -> dict[str, dict[str, float]]:
    """``config.evals`` of copying the source and of the mean training target, on the trainer's eval pairs."""
    mean = mean_training_target(config)
    out = {}
    for name in ("copy_source", "mean_image"):
        loader = loop.pipeline_loader_factory(config.data)(
            split=config.eval_split, batch_size=int(config.data.batch_size), seed=int(config.seed),
            shuffle=False, num_epochs=1, shard_index=0, shard_count=1,
        )  # fmt: skip
        predict = lambda batch, name=name: {"image": baselines(batch, mean)[name]}  # noqa: E731
        # Rounding makes the uint8 round trip of the baselines exact (their pixels are uint8 already).
        out[name] = evaluators.evaluate(predict, iter(loader), config.evals, quantize="round")
    return out


def train_demo(name: str, workdir: pathlib.Path) -> dict[str, float]:
    """Run the demo through the command line; return its timing figures."""
    env = {**os.environ, "XLA_FLAGS": ""}
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "ptx.main", "--config", f"configs/{name}.py:demo", "--workdir", str(workdir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    # The trainer's rate per logging interval; the first one includes compilation.
    # The trainer's progress lines: "train  100/600 ( 16%)  3.1 steps/s  ETA ..."
    rates = [float(r) for r in re.findall(r"\)\s+([0-9.]+) steps/s", log)][1:]
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    return {
        "minutes": (time.time() - start) / 60,
        "cpu_s": cpu,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        "steps_per_s": float(np.median(rates)) if rates else float("nan"),
    }


@pytest.mark.parametrize("name", DEMOS)
def test_demo_beats_baselines(tmp_path, name):
    config = importlib.import_module(f"configs.{name}").get_config("demo")
    timing = train_demo(name, tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["global_step"] == config.stages[0].num_steps
    scalars = {k: v for k, v in metrics["eval"].items() if not isinstance(v, dict)}  # not the run's summary
    table = {"demo": scalars, **baseline_scores(config)}
    shown = table
    t = timing
    print(
        f"\n{name} demo: {config.stages[0].num_steps} steps in {t['minutes']:.1f} min wall (train + eval), "
        f"{t['cpu_s']:.0f} CPU s, median {t['steps_per_s']:.2f} steps/s, "
        f"load {t['load_before']:.1f} -> {t['load_after']:.1f}"
    )
    for k, m in shown.items():
        print(f"  {k:12s} " + "  ".join(f"{metric} {m[metric]:.4f}" for metric in sorted(m)))
    for base in ("copy_source", "mean_image"):
        assert table["demo"]["ssim"] > table[base]["ssim"], (base, table)
        assert table["demo"]["l1"] < table[base]["l1"], (base, table)
    assert np.isfinite(table["demo"]["pssim"])
