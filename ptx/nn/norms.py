"""Normalisations of the MUNIT / AdaIN family (NHWC), with the originals' exact variance and eps conventions.

The PyTorch originals mix conventions that matter for parity, so each function names its own:

* :func:`adaptive_instance_norm`: per-sample, per-channel statistics over H, W; biased variance,
  ``sqrt(var + eps)``; the scale is used as given (MUNIT / ADGAN / CASD pass the MLP output, no ``+ 1``).
* :class:`MunitLayerNorm`: per-sample statistics over (H, W, C); **unbiased** std and ``(std + eps)`` with eps
  outside the root; per-channel ``gamma`` initialised U(0, 1) and ``beta`` 0 (MUNIT's ``LayerNorm``).
* :class:`InstanceLayerNorm`: ``rho * IN(x) + (1 - rho) * LN(x)`` then ``* gamma + beta``, where the "instance"
  and "layer" halves reduce over caller-chosen axes, both with unbiased variance and ``sqrt(var + eps)``
  (U-GAT-IT style ILN; CASD uses it on feature maps and on region style codes).
* :func:`batch_stat_norm`: parameter-free ``(x - mean) / (var + eps)`` over the batch and space, unbiased, and
  **divided by the variance itself** (CASD's "SPADE"), with optional per-group statistics.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def _moments(x: jax.Array, axes: Sequence[int], *, unbiased: bool) -> tuple[jax.Array, jax.Array]:
    axes = tuple(axes)
    mean = jnp.mean(x, axis=axes, keepdims=True)
    n = 1
    for a in axes:
        n *= x.shape[a]
    sq = jnp.sum(jnp.square(x - mean), axis=axes, keepdims=True)
    return mean, sq / (max(n - 1, 1) if unbiased else n)


def adaptive_instance_norm(x: jax.Array, scale: jax.Array, shift: jax.Array, eps: float = 1e-5) -> jax.Array:
    """AdaIN on NHWC ``x`` with per-sample ``scale`` / ``shift`` of shape (B, C)."""
    mean, var = _moments(x, (1, 2), unbiased=False)
    y = (x - mean) * jax.lax.rsqrt(var + eps)
    return y * scale[:, None, None, :] + shift[:, None, None, :]


class MunitLayerNorm(nn.Module):
    """MUNIT's LayerNorm over (H, W, C) per sample: (x - mean) / (std_unbiased + eps) * gamma + beta.

    Params ``gamma`` (C,) ~ U(0, 1), ``beta`` (C,) = 0 (torch ``gamma`` / ``beta``).
    """

    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        mean, var = _moments(x, range(1, x.ndim), unbiased=True)
        y = (x - mean) / (jnp.sqrt(var) + self.eps)
        gamma = self.param("gamma", nn.initializers.uniform(1.0), (c,))
        beta = self.param("beta", nn.initializers.zeros, (c,))
        return y * gamma + beta


class InstanceLayerNorm(nn.Module):
    """rho * norm over ``instance_axes`` + (1 - rho) * norm over ``layer_axes``, then * gamma + beta.

    Channels are on the last axis. Both halves use unbiased variance and sqrt(var + eps); rho is not clipped.
    Params ``rho`` (0), ``gamma`` (1), ``beta`` (0), each (C,).
    """

    instance_axes: Sequence[int] = (1, 2)
    layer_axes: Sequence[int] = (-1,)
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        rho = self.param("rho", nn.initializers.zeros, (c,))
        gamma = self.param("gamma", nn.initializers.ones, (c,))
        beta = self.param("beta", nn.initializers.zeros, (c,))
        m_in, v_in = _moments(x, self.instance_axes, unbiased=True)
        m_ln, v_ln = _moments(x, self.layer_axes, unbiased=True)
        out_in = (x - m_in) * jax.lax.rsqrt(v_in + self.eps)
        out_ln = (x - m_ln) * jax.lax.rsqrt(v_ln + self.eps)
        return (rho * out_in + (1.0 - rho) * out_ln) * gamma + beta


def batch_stat_norm(x: jax.Array, eps: float = 1e-6, *, group: int = 0) -> jax.Array:
    """(x - mean) / (var + eps) with mean and unbiased var over (samples, H, W) per channel; NHWC.

    ``group`` = 0: statistics over the whole batch (the original, in training and at test time); ``group`` = k:
    over consecutive groups of k samples (the original under DataParallel saw one group per GPU); ``group`` = 1:
    per sample, so an output never depends on the other samples of the batch (and equals the original run
    with batch 1, as its test script does). The batch size must be a multiple of ``group``.
    """
    b = x.shape[0]
    k = b if group in (0, None) else int(group)
    if b % k:
        raise ValueError(f"batch_stat_norm: batch {b} is not a multiple of the statistics group {k}")
    g = x.reshape(b // k, k, *x.shape[1:])
    mean, var = _moments(g, (1, 2, 3), unbiased=True)
    return ((g - mean) / (var + eps)).reshape(x.shape)
