"""SPADE (Park et al., CVPR 2019) normalisation and PyTorch's legacy nearest resize, NHWC.

``SPADE`` modulates parameter-free instance-normalised features with a per-pixel scale and shift predicted from
a condition map (a segmentation, pose heatmaps, an edge map, a style feature map) resized to the features'
size. The resize is PyTorch's ``F.interpolate(mode='nearest')``: source index ``floor(dst * in / out)`` in
float32 (top-left aligned), which ``jax.image.resize(..., 'nearest')`` (half-pixel centres) does not match for
most non-integer ratios; :func:`nearest_resize` reproduces it by an explicit gather.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
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


class SPADE(nn.Module):
    """``IN(x) * (1 + gamma(c)) + beta(c)``: IN without affine (eps 1e-5, biased variance), c the condition
    nearest-resized to x's size, gamma/beta 3x3 convs over a shared ReLU(3x3 conv) of width ``hidden``.

    Params: ``shared``, ``gamma``, ``beta`` (torch ``mlp_shared.0``, ``mlp_gamma``, ``mlp_beta``).
    """

    hidden: int = 128
    kernel_init: Callable = layers.torch_default_kernel_init

    @nn.compact
    def __call__(self, x: jax.Array, condition: jax.Array) -> jax.Array:
        conv = dict(kernel_size=3, padding=1, kernel_init=self.kernel_init)
        normalized = layers.InstanceNorm(affine=False)(x)
        c = nearest_resize(condition, x.shape[1:3]).astype(x.dtype)
        actv = jax.nn.relu(layers.Conv2d(self.hidden, name="shared", **conv)(c))
        gamma = layers.Conv2d(x.shape[-1], name="gamma", **conv)(actv)
        beta = layers.Conv2d(x.shape[-1], name="beta", **conv)(actv)
        return normalized * (1 + gamma) + beta
