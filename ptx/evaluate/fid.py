"""Fréchet Inception Distance exactly as pytorch-fid computes it, with Inception features from JAX.

Features: pool3 of ``ptx.nn.inception.InceptionV3`` after pytorch-fid's preprocessing, run in fixed-size
jitted batches (a partial last batch is padded to a power of two, so few compiles serve any set size; ``drop_remainder`` reproduces
GFLA's script, which drops the partial batch of 64). Statistics and the distance are float64 numpy:
``np.mean``, ``np.cov(rowvar=False)``, then the trace of the matrix square root (``frechet_distance``: fast symmetric
eigen form by default, pytorch-fid's scipy ``sqrtm`` path on request). Real-set statistics are cached in a file keyed by the image set (names, sizes, mtimes) and protocol.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import linalg

from ptx.nn import inception

log = logging.getLogger(__name__)


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of (N, D) features in float64, as pytorch-fid (``np.cov`` with N - 1)."""
    act = np.asarray(features, np.float64)
    if act.ndim != 2 or len(act) < 2:
        raise ValueError(f"FID statistics need (N >= 2, D) features, got shape {act.shape}")
    return act.mean(axis=0), np.cov(act, rowvar=False)


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
    method: str = "eigh",
) -> float:
    """||mu1 - mu2||^2 + tr(s1) + tr(s2) - 2 tr(sqrtm(s1 s2)) in float64.

    ``method="sqrtm"`` is pytorch-fid's ``calculate_frechet_distance`` line for line (scipy sqrtm of s1 s2, 1e-6
    diagonal retry when not finite, error on a large imaginary diagonal); at 2048 dims it takes minutes on a
    small CPU. ``"eigh"`` (default) uses tr sqrtm(s1 s2) = sum sqrt(eig(sqrt(s1) s2 sqrt(s1))) with symmetric
    eigensolvers (negative round-off eigenvalues count as 0, which is what the real part of pytorch-fid's
    complex sqrtm keeps): seconds, and equal to the sqrtm value to ~1e-9 relative on the goldens.
    """
    mu1, mu2 = np.atleast_1d(np.float64(mu1)), np.atleast_1d(np.float64(mu2))
    sigma1, sigma2 = np.atleast_2d(np.float64(sigma1)), np.atleast_2d(np.float64(sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(
            f"statistics differ in size: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}"
        )
    diff = mu1 - mu2
    if method == "eigh":
        tr_covmean = _trace_sqrt_product(sigma1, sigma2)
    elif method == "sqrtm":
        tr_covmean = _trace_sqrtm_pytorch_fid(sigma1, sigma2, eps)
    else:
        raise ValueError(f"method must be 'eigh' or 'sqrtm', got {method!r}")
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ sigma2 @ root1
    ev = np.linalg.eigvalsh(0.5 * (inner + inner.T))
    return float(np.sqrt(np.clip(ev, 0, None)).sum())


def _trace_sqrtm_pytorch_fid(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        log.warning("FID: singular product of covariances; adding %g to their diagonals", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag))} in sqrtm")
        covmean = covmean.real
    return float(np.trace(covmean))


def fid_from_features(real: np.ndarray, fake: np.ndarray, method: str = "auto") -> float:
    """FID of two (N, D) feature sets. ``auto``: the low-rank form below when a set has fewer images than
    dimensions (then s1 s2 has rank < D), else ``frechet_distance(..., method="eigh")``.

    Low-rank form: with centred X1, X2, tr sqrtm(s1 s2) = ||X1 X2^T||_* / sqrt((n1 - 1)(n2 - 1)) (the
    nonzero eigenvalues of s1 s2 are the squared singular values of that n1 x n2 matrix): exact and instant.
    """
    a, b = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if method != "auto":
        return frechet_distance(*statistics(a), *statistics(b), method=method)
    if min(len(a), len(b)) >= a.shape[1]:
        return frechet_distance(*statistics(a), *statistics(b), method="eigh")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    xa, xb = a - mu_a, b - mu_b
    na, nb = len(a) - 1, len(b) - 1
    tr_covmean = np.linalg.svd(xa @ xb.T, compute_uv=False).sum() / np.sqrt(na * nb)
    diff = mu_a - mu_b
    return float(diff.dot(diff) + (xa * xa).sum() / na + (xb * xb).sum() / nb - 2 * tr_covmean)


class InceptionFeatures:
    """Jitted pool3 (and optionally bias-free logits) for uint8 NHWC images, in fixed-size batches."""

    def __init__(
        self,
        variables: dict[str, Any],
        *,
        batch_size: int = 50,
        preprocess: str = "pytorch_fid",
        with_logits: bool = False,
        variant: str = "fid",
    ):
        self.variables = variables
        self.batch_size = batch_size
        self.preprocess = preprocess
        self.with_logits = with_logits
        self._apply = _jitted_features(preprocess, with_logits, variant)

    def __call__(self, images: Iterable[np.ndarray] | np.ndarray, drop_remainder: bool = False) -> dict:
        """Features of a stream of images (each HxWx3 uint8, one size per stream) -> {"pool3", "logits"?}."""
        outs: dict[str, list[np.ndarray]] = {}
        for chunk in _chunks(images, self.batch_size):
            n = len(chunk)
            if n < self.batch_size:
                if drop_remainder and outs:  # (a set smaller than one batch is used whole, as GFLA does)
                    break
                # Pad to the next power of two: at most log2(batch) extra compiles, little wasted work.
                size = min(self.batch_size, 1 << (n - 1).bit_length())
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], size - n, axis=0)])
            res = self._apply(self.variables, jnp.asarray(chunk))
            for k, v in res.items():
                outs.setdefault(k, []).append(np.asarray(v)[:n])
        if not outs:
            raise ValueError(f"no images to compute Inception features on (batch size {self.batch_size})")
        return {k: np.concatenate(v) for k, v in outs.items()}


@functools.cache
def _jitted_features(preprocess: str, with_logits: bool, variant: str = "fid"):
    """One jitted forward per protocol, shared by every extractor (so repeated evals compile once)."""
    model = inception.InceptionV3(with_logits=with_logits, variant=variant)

    def apply(v, images):
        return model.apply(v, inception.preprocess(images, preprocess))

    return jax.jit(apply)


def _chunks(images: Iterable[np.ndarray] | np.ndarray, size: int):
    buf: list[np.ndarray] = []
    for img in images:
        img = np.asarray(img)
        if buf and img.shape != buf[0].shape:
            raise ValueError(f"images of different sizes in one set: {buf[0].shape} and {img.shape}")
        buf.append(img)
        if len(buf) == size:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


def image_set_key(paths: Sequence[str], protocol: dict[str, Any]) -> str:
    """Hash of the sorted file names, sizes and mtimes plus the protocol (resize, weights, batch rule)."""
    h = hashlib.sha256(json.dumps(protocol, sort_keys=True).encode())
    for p in sorted(paths):
        st = os.stat(p)
        h.update(f"{os.path.abspath(p)}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:20]


def cached_statistics(
    paths: Sequence[str],
    compute: Callable[[Sequence[str]], np.ndarray],
    *,
    cache_dir: str | os.PathLike,
    protocol: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of ``compute(paths)`` features, read from / written to ``cache_dir/fid_stats_<key>.npz``."""
    key = image_set_key(paths, protocol)
    file = os.path.join(os.fspath(cache_dir), f"fid_stats_{key}.npz")
    if os.path.isfile(file):
        with np.load(file) as f:
            log.info("FID: real statistics from cache %s (%d images)", file, int(f["n"]))
            return f["mu"], f["sigma"]
    mu, sigma = statistics(compute(paths))
    os.makedirs(os.path.dirname(file), exist_ok=True)
    tmp = file + ".tmp.npz"
    np.savez(tmp, mu=mu, sigma=sigma, n=len(paths), protocol=json.dumps(protocol, sort_keys=True))
    os.replace(tmp, file)
    log.info("FID: cached real statistics of %d images in %s", len(paths), file)
    return mu, sigma
