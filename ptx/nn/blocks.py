"""Pre-activation convolutional blocks shared by the pose-transfer generators and discriminators (NHWC).

Every block is ``norm -> act -> conv`` (norm skipped when ``norm`` is None), as GFLA's ``base_function``
builds them, so converted PyTorch weights reproduce the original numerics. Norm and activation are
injected: ``norm`` is a zero-argument factory of a flax module applied as ``norm()(x)`` (e.g.
``functools.partial(InstanceNorm)``), ``act`` a plain function. Convolutions come from ``ptx.nn.layers``;
parameter names (what converters write) are given per block.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ptx.nn import layers

NormFactory = Callable[[], nn.Module] | None
Activation = Callable[[jax.Array], jax.Array]

leaky_relu_01: Activation = functools.partial(layers.leaky_relu, slope=0.1)
instance_norm: Callable[[], nn.Module] = functools.partial(layers.InstanceNorm, affine=True)


def _maybe_norm(factory: NormFactory, name: str, x: jax.Array) -> jax.Array:
    return x if factory is None else factory(name=name)(x)


def _conv(features: int, k: int, stride: int, pad: int, *, spect: bool, dtype, name: str) -> layers.Conv2d:
    return layers.Conv2d(features, k, stride, pad, spectral_norm=spect, dtype=dtype, name=name)


def _conv_t(features: int, *, spect: bool, dtype, name: str) -> layers.ConvTranspose2d:
    """3x3, stride 2, padding 1, output_padding 1: doubles H and W exactly."""
    return layers.ConvTranspose2d(features, 3, 2, 1, 1, spectral_norm=spect, dtype=dtype, name=name)


class EncoderBlock(nn.Module):
    """norm -> act -> conv 4x4 s2 p1 -> norm -> act -> conv 3x3 p1; halves H and W, no shortcut.

    Params: ``norm1``, ``conv1``, ``norm2``, ``conv2`` (torch ``model.{0,2,3,5}``).
    """

    features: int
    norm: NormFactory = instance_norm
    act: Activation = leaky_relu_01
    spectral_norm: bool = False
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, update_stats: bool = False) -> jax.Array:
        kw = dict(spect=self.spectral_norm, dtype=self.dtype)
        y = self.act(_maybe_norm(self.norm, "norm1", x))
        y = _conv(self.features, 4, 2, 1, name="conv1", **kw)(y, update_stats=update_stats)
        y = self.act(_maybe_norm(self.norm, "norm2", y))
        return _conv(self.features, 3, 1, 1, name="conv2", **kw)(y, update_stats=update_stats)


class ResBlock(nn.Module):
    """x + (norm -> act -> conv3x3 -> norm -> act -> conv3x3)(x); a 1x1 ``shortcut`` conv when widths differ.

    Params: ``norm1``, ``conv1``, ``norm2``, ``conv2`` (torch ``model.{0,2,3,5}``), ``shortcut``
    (torch ``shortcut.0``) only when ``features`` != input width or ``learnable_shortcut``.
    """

    features: int | None = None
    hidden: int | None = None
    learnable_shortcut: bool = False
    norm: NormFactory = instance_norm
    act: Activation = leaky_relu_01
    spectral_norm: bool = False
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, update_stats: bool = False) -> jax.Array:
        cin = x.shape[-1]
        out = self.features or cin
        hidden = self.hidden or cin
        kw = dict(spect=self.spectral_norm, dtype=self.dtype)
        y = self.act(_maybe_norm(self.norm, "norm1", x))
        y = _conv(hidden, 3, 1, 1, name="conv1", **kw)(y, update_stats=update_stats)
        y = self.act(_maybe_norm(self.norm, "norm2", y))
        y = _conv(out, 3, 1, 1, name="conv2", **kw)(y, update_stats=update_stats)
        if self.learnable_shortcut or out != cin:
            return y + _conv(out, 1, 1, 0, name="shortcut", **kw)(x, update_stats=update_stats)
        return y + x.astype(y.dtype)


class ResBlockDecoder(nn.Module):
    """(norm -> act -> conv3x3 -> norm -> act -> convT3x3 s2)(x) + convT3x3 s2(x); doubles H and W.

    Params: ``norm1``, ``conv1``, ``norm2``, ``conv2`` (transposed; torch ``model.{0,2,3,5}``) and
    ``shortcut`` (transposed; torch ``shortcut.0``). ``hidden`` defaults to the input width.
    """

    features: int
    hidden: int | None = None
    norm: NormFactory = instance_norm
    act: Activation = leaky_relu_01
    spectral_norm: bool = False
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, update_stats: bool = False) -> jax.Array:
        hidden = self.hidden or x.shape[-1]
        kw = dict(spect=self.spectral_norm, dtype=self.dtype)
        y = self.act(_maybe_norm(self.norm, "norm1", x))
        y = _conv(hidden, 3, 1, 1, name="conv1", **kw)(y, update_stats=update_stats)
        y = self.act(_maybe_norm(self.norm, "norm2", y))
        y = _conv_t(self.features, name="conv2", **kw)(y, update_stats=update_stats)
        return y + _conv_t(self.features, name="shortcut", **kw)(x, update_stats=update_stats)


class ResBlockEncoder(nn.Module):
    """Discriminator block: (norm -> act -> conv3x3 -> norm -> act -> conv4x4 s2)(x) + conv1x1(avgpool2(x)).

    Params: ``norm1``/``norm2`` (only with a norm), ``conv1``, ``conv2`` (torch ``model.{1,3}`` without norm,
    ``model.{2,5}`` with one) and ``shortcut`` (torch ``shortcut.1``).
    """

    features: int
    hidden: int | None = None
    norm: NormFactory = None
    act: Activation = leaky_relu_01
    spectral_norm: bool = True
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, update_stats: bool = False) -> jax.Array:
        hidden = self.hidden or x.shape[-1]
        kw = dict(spect=self.spectral_norm, dtype=self.dtype)
        y = self.act(_maybe_norm(self.norm, "norm1", x))
        y = _conv(hidden, 3, 1, 1, name="conv1", **kw)(y, update_stats=update_stats)
        y = self.act(_maybe_norm(self.norm, "norm2", y))
        y = _conv(self.features, 4, 2, 1, name="conv2", **kw)(y, update_stats=update_stats)
        s = _conv(self.features, 1, 1, 0, name="shortcut", **kw)(
            layers.avg_pool(x, 2), update_stats=update_stats
        )
        return y + s


def _act_pad_conv(x: jax.Array, block: Jump | Output, update_stats: bool) -> jax.Array:
    """(norm) -> act -> reflection pad k//2 -> conv k x k without padding, inside ``block``'s scope."""
    y = block.act(_maybe_norm(block.norm, "norm", x))
    y = layers.pad2d(y, block.kernel_size // 2, "reflect")
    conv = _conv(
        block.features, block.kernel_size, 1, 0, spect=block.spectral_norm, dtype=block.dtype, name="conv"
    )
    return conv(y, update_stats=update_stats)


class Jump(nn.Module):
    """Skip-connection transform: (norm) -> act -> reflection pad -> conv k x k (no padding).

    Params: ``norm`` (only with a norm), ``conv`` (torch ``conv1``, registered a second time as ``model.2``,
    or ``model.3`` with a norm).
    """

    features: int
    kernel_size: int = 3
    norm: NormFactory = None
    act: Activation = leaky_relu_01
    spectral_norm: bool = False
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, update_stats: bool = False) -> jax.Array:
        return _act_pad_conv(x, self, update_stats)


class Output(nn.Module):
    """Image head: (norm) -> act -> reflection pad -> conv k x k -> tanh. Params as ``Jump``."""

    features: int = 3
    kernel_size: int = 3
    norm: NormFactory = None
    act: Activation = leaky_relu_01
    spectral_norm: bool = False
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, update_stats: bool = False) -> jax.Array:
        return jnp.tanh(_act_pad_conv(x, self, update_stats))
