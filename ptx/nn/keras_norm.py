"""keras-contrib ``InstanceNormalization(axis=None)`` as Keras-era models (Def-GAN) compute it.

With ``axis=None`` keras-contrib normalises each sample over all of (H, W, C) jointly (like a LayerNorm over the
feature map, not per channel) and holds ONE scalar ``gamma`` and ONE scalar ``beta``; its denominator is the
biased standard deviation plus epsilon, ``(x - mean) / (std + 1e-3)``, not ``sqrt(var + eps)``.

``formula="torch"`` gives the PyTorch port's reading of the same layer (``InstanceNorm3d(1, eps=1e-3)`` on a
``(B, 1, C, H, W)`` view): the same statistics with ``(x - mean) / sqrt(var + 1e-3)``. The two differ most where
the std is small (measured on Def-GAN's small golden network: up to 0.12 in the output image).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

FORMULAS = ("keras", "torch")


class KerasInstanceNorm(nn.Module):
    """Per-sample normalisation over (H, W, C) with a scalar affine: params ``scale`` (1,) and ``bias`` (1,)."""

    formula: str = "keras"
    eps: float = 1e-3

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.formula not in FORMULAS:
            raise ValueError(f"KerasInstanceNorm.formula={self.formula!r}; expected one of {FORMULAS}")
        xf = x.astype(jnp.float32)
        axes = tuple(range(1, x.ndim))
        mean = xf.mean(axis=axes, keepdims=True)
        var = jnp.square(xf - mean).mean(axis=axes, keepdims=True)
        if self.formula == "keras":
            y = (xf - mean) / (jnp.sqrt(var) + self.eps)
        else:
            y = (xf - mean) * lax.rsqrt(var + self.eps)
        y = y * self.param("scale", nn.initializers.ones, (1,)) + self.param(
            "bias", nn.initializers.zeros, (1,)
        )
        return y.astype(x.dtype)
