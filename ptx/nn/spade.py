"""SPADE (Park et al., CVPR 2019) normalisation and PyTorch's legacy nearest resize, NHWC.

``SPADE`` modulates parameter-free instance-normalised features with a per-pixel scale and shift predicted from
a condition map (a segmentation, pose heatmaps, an edge map, a style feature map) resized to the features'
size. The resize is PyTorch's ``F.interpolate(mode='nearest')``: source index ``floor(dst * in / out)`` in
float32 (top-left aligned), which ``jax.image.resize(..., 'nearest')`` (half-pixel centres) does not match for
most non-integer ratios; :func:`nearest_resize` reproduces it by an explicit gather.

A condition much smaller than the features (SCA-GAN's 8x6 style map under 256x176 features) is never
upsampled: a 3x3 conv over a nearest-upsampled map takes one value per distinct 3-row x 3-column window of
source indices, so both SPADE convs run on those few windows and only ``gamma`` / ``beta`` are gathered to
full size (:func:`_indexed_conv3x3`). Same function and parameters; ~100x fewer FLOPs at SCA-GAN's last block.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ptx.nn import layers


def torch_nearest_indices(in_size: int, out_size: int) -> np.ndarray:
    """Source indices of torch's legacy nearest interpolation along one axis (ATen ``nearest_idx``)."""
    if out_size == in_size:
        return np.arange(out_size)
    if out_size == 2 * in_size:
        return np.arange(out_size) >> 1
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.floor(np.arange(out_size, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(src, in_size - 1)


def nearest_resize(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """``F.interpolate(x, size, mode='nearest')`` on NHWC ``x`` (up or down, any ratio)."""
    h, w = x.shape[1:3]
    if (h, w) == tuple(size):
        return x
    rows = torch_nearest_indices(h, size[0])
    cols = torch_nearest_indices(w, size[1])
    return x[:, rows][:, :, cols]


def _windows(index: np.ndarray, zero: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct 3-windows of a 1-D index map zero-padded with index ``zero``: (patterns (m, 3), new index)."""
    ext = np.concatenate([[zero], index, [zero]])
    windows = np.lib.stride_tricks.sliding_window_view(ext, 3)
    _, first, inverse = np.unique(windows, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first)  # patterns by first occurrence: the new index stays in reading order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return windows[first[order]], rank[inverse.reshape(-1)]


def _indexed_conv3x3(table, rows, cols, kernel, bias):
    """3x3 zero-padded conv of the map ``M[:, y, x] = table[:, rows[y], cols[x]]`` without building ``M``.

    Returns (table', rows', cols') with the conv's output ``table'[:, rows'[y], cols'[x]]``: the output at a
    pixel depends only on its 3x3 window of (row, column) indices, so it is computed once per distinct window.
    """
    zero_r, zero_c = table.shape[1], table.shape[2]
    table = jnp.pad(table, ((0, 0), (0, 1), (0, 1), (0, 0)))  # index zero_r / zero_c reads the zero padding
    py, new_rows = _windows(rows, zero_r)
    px, new_cols = _windows(cols, zero_c)
    patches = table[:, py[:, :, None, None], px[None, None, :, :]]  # (B, m_rows, 3, m_cols, 3, C)
    out = jnp.einsum("brickd,ikdo->brco", patches, kernel.astype(table.dtype)) + bias.astype(table.dtype)
    return out, new_rows, new_cols


class _ConvParams(nn.Module):
    """A ``layers.Conv2d``'s ``kernel`` and ``bias`` (same names, shapes and init), for a conv run by hand."""

    features: int
    in_features: int
    kernel_init: Callable

    @nn.compact
    def __call__(self) -> tuple[jax.Array, jax.Array]:
        kernel = self.param("kernel", self.kernel_init, (3, 3, self.in_features, self.features))
        return kernel, self.param("bias", nn.initializers.zeros, (self.features,))


def _compress(in_size: tuple[int, int], out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The nearest-resize row and column indices when the 5x5-window tables of :func:`_indexed_conv3x3`
    (two stacked 3x3 convs) hold at most half the output's pixels, else None (convolve at full size)."""
    rows = torch_nearest_indices(in_size[0], out_size[0])
    cols = torch_nearest_indices(in_size[1], out_size[1])

    def count(index: np.ndarray, n: int) -> int:
        patterns, inner = _windows(index, n)
        return len(_windows(inner, len(patterns))[0])

    if count(rows, in_size[0]) * count(cols, in_size[1]) * 2 > out_size[0] * out_size[1]:
        return None
    return rows, cols


class SPADE(nn.Module):
    """``IN(x) * (1 + gamma(c)) + beta(c)``: IN without affine (eps 1e-5, biased variance), c the condition
    nearest-resized to x's size, gamma/beta 3x3 convs over a shared ReLU(3x3 conv) of width ``hidden``.

    Params: ``shared``, ``gamma``, ``beta`` (torch ``mlp_shared.0``, ``mlp_gamma``, ``mlp_beta``).
    """

    hidden: int = 128
    kernel_init: Callable = layers.torch_default_kernel_init

    @nn.compact
    def __call__(self, x: jax.Array, condition: jax.Array) -> jax.Array:
        normalized = layers.InstanceNorm(affine=False)(x)
        size = x.shape[1:3]
        compressed = _compress(condition.shape[1:3], size)
        if compressed is None:
            conv = dict(kernel_size=3, padding=1, kernel_init=self.kernel_init)
            c = nearest_resize(condition, size).astype(x.dtype)
            actv = jax.nn.relu(layers.Conv2d(self.hidden, name="shared", **conv)(c))
            gamma = layers.Conv2d(x.shape[-1], name="gamma", **conv)(actv)
            beta = layers.Conv2d(x.shape[-1], name="beta", **conv)(actv)
            return normalized * (1 + gamma) + beta
        rows, cols = compressed
        c = condition.astype(x.dtype)
        shared = _ConvParams(self.hidden, c.shape[-1], self.kernel_init, name="shared")()
        gamma_p = _ConvParams(x.shape[-1], self.hidden, self.kernel_init, name="gamma")()
        beta_p = _ConvParams(x.shape[-1], self.hidden, self.kernel_init, name="beta")()
        actv, rows, cols = _indexed_conv3x3(c, rows, cols, *shared)
        actv = jax.nn.relu(actv)
        # gamma and beta share their windows: one conv with both kernels side by side.
        both = (jnp.concatenate([gamma_p[0], beta_p[0]], -1), jnp.concatenate([gamma_p[1], beta_p[1]], -1))
        mod, rows, cols = _indexed_conv3x3(actv, rows, cols, *both)
        mod = mod[:, rows][:, :, cols]
        gamma, beta = jnp.split(mod, 2, axis=-1)
        return normalized * (1 + gamma) + beta
