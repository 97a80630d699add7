"""Slow: the PATN / pSSIM demos train on puppets and beat copy-source and mean-image baselines on held-out pairs.

    pytest -m slow tests/test_patn_demo_slow.py -s        (prints the table; each config trains for minutes)

The trainer evaluates the final weights on the test split (``config.evals``: SSIM as the papers call it, L1 on
the [-1, 1] scale, pSSIM); the baselines go through the same evaluators on the same pairs.
"""

import importlib
import json
import time

import numpy as np
import pytest

from ptx.evaluate import evaluators
from ptx.methods.common import baselines
from ptx.train import loop

pytestmark = pytest.mark.slow


def baseline_scores(config) -> dict[str, dict[str, float]]:
    """``config.evals`` of copying the source and of the mean target image, on the trainer's eval pairs."""
    out = {}
    for name in ("copy_source", "mean_image"):
        loader = loop.pipeline_loader_factory(config.data)(
            split=config.eval_split, batch_size=int(config.data.batch_size), seed=int(config.seed),
            shuffle=False, num_epochs=1, shard_index=0, shard_count=1,
        )  # fmt: skip
        predict = lambda batch, name=name: {"image": baselines(batch)[name]}  # noqa: E731
        # Rounding makes the uint8 round trip of the baselines exact (their pixels are the data's own).
        out[name] = evaluators.evaluate(predict, iter(loader), config.evals, quantize="round")
    return out


@pytest.mark.parametrize("name", ["patn_fashion", "pssim_market"])
def test_demo_beats_baselines(tmp_path, name):
    config = importlib.import_module(f"configs.{name}").get_config("demo")
    start = time.time()
    result = loop.run(config, tmp_path)
    minutes = (time.time() - start) / 60
    assert result.status == "finished"
    table = {"demo": json.loads((tmp_path / "metrics.json").read_text())["eval"], **baseline_scores(config)}
    print(f"\n{name} demo: {config.stages[0].num_steps} steps in {minutes:.1f} min (train + eval)")
    for k, m in table.items():
        print(f"  {k:12s} " + "  ".join(f"{metric} {m[metric]:.4f}" for metric in sorted(m)))
    for base in ("copy_source", "mean_image"):
        assert table["demo"]["ssim"] > table[base]["ssim"], (base, table)
        assert table["demo"]["l1"] < table[base]["l1"], (base, table)
    assert np.isfinite(table["demo"]["pssim"])
