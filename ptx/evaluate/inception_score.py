"""Inception Score as the originals compute it (PATN ``tool/inception_score.py``, Def-GAN, the OpenAI code).

softmax over the 1008 logits = pool3 @ fc weight (no fc bias), ``splits`` contiguous chunks
``[i*N//splits, (i+1)*N//splits)`` without shuffling, exp(mean_x KL(p(y|x) || p(y))) per chunk, then the mean
and population std of the chunk scores. float64 on the host (torch-fidelity shuffles by default and differs).
"""

from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def split_scores(logits: np.ndarray, splits: int = 10) -> np.ndarray:
    """Per-split scores exp(E_x[KL(p(y|x) || p(y))]) over contiguous splits (float64)."""
    p = softmax(logits)
    n = len(p)
    if n < splits:
        raise ValueError(f"Inception Score with {splits} splits needs at least {splits} images, got {n}")
    scores = []
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        kl = part * (np.log(part) - np.log(part.mean(axis=0, keepdims=True)))
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return np.asarray(scores)


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """(mean, std) of the split scores, as the originals print them."""
    s = split_scores(logits, splits)
    return float(s.mean()), float(s.std())
