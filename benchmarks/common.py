"""Pieces the benchmarks share."""

from __future__ import annotations

import numpy as np


def synthetic_batch(data_cfg, batch_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A batch with the pipeline's fields and the config's shapes (random pixels, keypoints inside the frame)."""
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in data_cfg.image_size)
    batch = {}
    for role in ("source", "target"):
        batch[f"{role}_image"] = rng.integers(0, 256, (batch_size, h, w, 3), dtype=np.uint8)
        kps = (rng.uniform(0.05, 0.95, (batch_size, 18, 2)) * [h, w]).astype(np.float32)
        kps[rng.uniform(size=(batch_size, 18)) < 0.1] = -1.0
        batch[f"{role}_keypoints"] = kps
        if data_cfg.get("edges"):
            batch[f"{role}_edge"] = rng.integers(0, 256, (batch_size, h, w), dtype=np.uint8)
        if data_cfg.get("parsing"):
            batch[f"{role}_parsing"] = rng.integers(0, 20, (batch_size, h, w), dtype=np.uint8)
    return batch


def compiled_flops(compiled) -> float:
    """FLOPs of a compiled executable from XLA's cost analysis (NaN when the backend gives none)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", float("nan")))
