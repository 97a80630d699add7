"""Pieces the benchmarks share."""

from __future__ import annotations

from typing import Any

import numpy as np

# Candidate pairs drawn per try when a method filters pairs, and the most tries before giving up.
_CANDIDATES = 64
_MAX_TRIES = 16


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


def method_batch(
    method: Any, data_cfg, batch_size: int, seed: int = 0, split: str = "train"
) -> dict[str, np.ndarray]:
    """A synthetic batch as the method's input pipeline would deliver it.

    Why: some recipes (Def-GAN) only train on pairs their ``pair_filter`` keeps and need per-pair fields their
    ``host_transform`` adds (part transforms and masks); a raw :func:`synthetic_batch` has neither. Candidate
    pairs are drawn with :func:`synthetic_batch`, filtered with the same view the pipeline's
    ``filter_pairs`` builds (names, read-only keypoints), and the transform is applied pair by pair with the
    pipeline's own ``apply_host_transform``, then stacked. A method with neither hook gets exactly
    ``synthetic_batch(data_cfg, batch_size, seed)``.
    """
    pair_filter, transform = method.pair_filter(split), method.host_transform(split)
    if pair_filter is None and transform is None:
        return synthetic_batch(data_cfg, batch_size, seed)
    pairs: list[dict[str, np.ndarray]] = []
    for attempt in range(_MAX_TRIES):
        candidates = synthetic_batch(data_cfg, _CANDIDATES, seed + attempt)
        for i in range(_CANDIDATES):
            pair = {k: v[i] for k, v in candidates.items()}
            if pair_filter is None or pair_filter(_filter_view(pair, f"synthetic_{attempt}_{i}")):
                pairs.append(pair)
            if len(pairs) == batch_size:
                break
        if len(pairs) == batch_size:
            break
    else:
        raise ValueError(
            f"{type(method).__name__}'s pair filter kept {len(pairs)} of {_MAX_TRIES * _CANDIDATES} synthetic "
            f"pairs; {batch_size} needed"
        )
    if transform is not None:
        from ptx.data.pipeline import apply_host_transform

        pairs = [apply_host_transform(transform, pair) for pair in pairs]
    return {k: np.stack([pair[k] for pair in pairs]) for k in pairs[0]}


def _filter_view(pair: dict[str, np.ndarray], name: str) -> dict[str, Any]:
    """What ``ptx.data.pipeline.filter_pairs`` hands a pair filter: names and read-only keypoints."""
    view: dict[str, Any] = {"source_name": f"{name}_source", "target_name": f"{name}_target"}
    for role in ("source", "target"):
        kps = np.array(pair[f"{role}_keypoints"], np.float32)
        kps.setflags(write=False)
        view[f"{role}_keypoints"] = kps
    return view


def _flops(cost) -> float:
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    return float((cost or {}).get("flops", float("nan")))


def compiled_flops(compiled) -> float:
    """FLOPs of a compiled executable from XLA's cost analysis (NaN when the backend gives none)."""
    return _flops(compiled.cost_analysis())


def plain_flops(jitted, *args) -> float:
    """FLOPs of ``jitted(*args)`` traced without ptx's XLA:CPU rewrites, from XLA's cost analysis of the
    lowered program: the model's work, the same on every backend. (The rewrites' row-block scans would be
    undercounted: XLA's cost analysis counts a loop body once.)"""
    from ptx import backend

    with backend.force_cpu_rewrites(False):
        return _flops(jitted.lower(*args).cost_analysis())
