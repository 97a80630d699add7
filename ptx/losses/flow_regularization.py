"""GFLA's affine regularisation: flows should be locally affine.

For a flow (B, h, w, 2) the sampling grid is g = flow + (x, y). For each of its two components and every
valid kz x kz window (no padding), the window's kz^2 values (row-major) are fitted by a least-squares affine
function of (row, col); the penalty is the squared residual |(P - I) g|^2 with P = A (A^T A)^-1 A^T,
A = [row, col, 1] per tap. Value = mean over (batch, windows) of the x residual + the same for y.

The original evaluates g^T (P - I)^T (P - I) g with a convolution. Here the residual vector itself is formed
and squared, and the pixel-coordinate part of g is dropped: (x, y) is affine inside every window, so
(P - I) annihilates it exactly, and leaving it out avoids float32 cancellation on large coordinates.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np


@functools.cache
def residual_matrix(kz: int) -> np.ndarray:
    """(P - I) of the affine least-squares fit over a kz x kz window, row-major taps; float64."""
    rows, cols = np.meshgrid(np.arange(kz), np.arange(kz), indexing="ij")
    a = np.stack([rows.ravel(), cols.ravel(), np.ones(kz * kz)], axis=1).astype(np.float64)
    p = a @ np.linalg.inv(a.T @ a) @ a.T
    return p - np.eye(kz * kz)


def _windows(x: jax.Array, kz: int) -> jax.Array:
    """(B, h, w) -> (B, h-kz+1, w-kz+1, kz*kz) valid windows, taps row-major."""
    h, w = x.shape[1:3]
    ho, wo = h - kz + 1, w - kz + 1
    return jnp.stack([x[:, i : i + ho, j : j + wo] for i in range(kz) for j in range(kz)], axis=-1)


def affine_regularization(flow: jax.Array, kz: int) -> jax.Array:
    """Mean squared affine-fit residual of the flow's sampling grid over kz x kz windows (x term + y term)."""
    if flow.ndim != 4 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be (B, h, w, 2), got {flow.shape}")
    if min(flow.shape[1:3]) < kz:
        raise ValueError(f"flow {flow.shape[1:3]} is smaller than the {kz}x{kz} regularisation window")
    m = jnp.asarray(residual_matrix(kz), jnp.float32)
    total = jnp.zeros((), jnp.float32)
    for comp in range(2):
        g = _windows(flow[..., comp].astype(jnp.float32), kz)
        r = jnp.einsum("...j,ij->...i", g, m, precision=jax.lax.Precision.HIGHEST)
        total = total + jnp.mean(jnp.sum(jnp.square(r), axis=-1))
    return total


def pair_kernel_sizes(kernel_sizes: Mapping[str | int, int]) -> list[int]:
    """Window size of flow i (deepest first): kernel_sizes[sorted(str keys, reverse=True)[i]] (string sort)."""
    table = {str(k): int(v) for k, v in kernel_sizes.items()}
    return [table[k] for k in sorted(table, reverse=True)]


def multi_affine_regularization(
    flows: Sequence[jax.Array], kernel_sizes: Mapping[str | int, int]
) -> jax.Array:
    """Sum of ``affine_regularization`` over flows paired with window sizes as GFLA pairs them.

    Fashion {"2": 5, "3": 3}: flow @1/8 <-> 3, flow @1/4 <-> 5. Market {"2": 3}: flow @1/4 <-> 3.
    """
    sizes = pair_kernel_sizes(kernel_sizes)
    if len(flows) > len(sizes):
        raise ValueError(f"{len(flows)} flows but kernel sizes only for {len(sizes)}: {dict(kernel_sizes)}")
    total = jnp.zeros((), jnp.float32)
    for flow, kz in zip(flows, sizes):
        total = total + affine_regularization(flow, kz)
    return total
