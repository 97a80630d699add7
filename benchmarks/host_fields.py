"""Per-pair host work on the benchmarks' synthetic batches (SCA-GAN's shifted edges, Def-GAN's warps).

Why: ``benchmarks.common.synthetic_batch`` gives only the pipeline's raw fields; methods with a
``host_transform`` need the fields it adds before their model can run, as ptx's input pipeline provides them.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def with_host_fields(method: Any, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``batch`` with ``method.host_transform("train")`` applied to each pair (unchanged when it has none)."""
    transform = method.host_transform("train")
    if transform is None:
        return batch
    from ptx.data.pipeline import apply_host_transform

    n = len(next(iter(batch.values())))
    rows = [apply_host_transform(transform, {k: v[i] for k, v in batch.items()}) for i in range(n)]
    return {k: np.stack([np.asarray(r[k]) for r in rows]) for k in rows[0]}
