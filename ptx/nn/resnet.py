"""Blocks of the pix2pix/CycleGAN ``ResnetGenerator`` family (NHWC), shared by PATN and SCA-GAN.

PATN's ``PATNetwork`` and ``ResnetDiscriminator`` and SCA-GAN's PCT-Net are all built from the same pieces:
a reflect-padded 7x7 conv followed by stride-2 convs (each + norm + ReLU), ``build_conv_block`` bodies
(pad, conv, norm, ReLU, [dropout], pad, conv, [norm]) and a transposed-conv decoder ending in a 7x7 conv and
tanh. Norm is the original's ``norm_layer``: ``"instance"`` (InstanceNorm2d, affine False) or ``"batch"``
(BatchNorm2d, affine). Submodule names (``Conv2d_i``, ``Norm_i``, ``PadConv_i``, ``ConvTranspose2d_i``) are
what ``ptx.convert.patn`` / ``ptx.convert.scagan`` write, so they must not change.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ptx.nn import layers

NORMS = ("instance", "batch")
PADDINGS = ("reflect", "replicate", "zero")

# The originals initialise generator conv / transposed-conv weights with N(0, 0.02) (init_type 'normal').
normal_002 = nn.initializers.normal(0.02)


class Norm(nn.Module):
    """The original's ``norm_layer``: InstanceNorm2d(affine=False) or BatchNorm2d(affine=True)."""

    kind: str

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if self.kind == "instance":
            return layers.InstanceNorm(affine=False)(x)
        return layers.BatchNorm()(x, train=train)


class PadConv(nn.Module):
    """k x k stride-1 convolution with the block's padding type (reflect / replicate / zero)."""

    features: int
    kernel_size: int = 3
    padding_type: str = "reflect"
    use_bias: bool = True
    kernel_init: Callable = layers.torch_default_kernel_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        p = self.kernel_size // 2
        if self.padding_type != "zero":
            x = layers.pad2d(x, p, self.padding_type)
            p = 0
        conv = layers.Conv2d(
            self.features, self.kernel_size, padding=p, use_bias=self.use_bias, kernel_init=self.kernel_init
        )
        return conv(x)


class Encoder(nn.Module):
    """7x7 reflect-padded conv, then stride-2 zero-padded 3x3 convs (each + norm + ReLU).

    ``widths`` lists the output width of every conv (the first is the 7x7 one).
    """

    widths: tuple[int, ...]
    norm: str
    use_bias: bool
    kernel_init: Callable

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        for i, width in enumerate(self.widths):
            if i == 0:
                x = layers.pad2d(x, 3, "reflect")
                conv = layers.Conv2d(width, 7, use_bias=self.use_bias, kernel_init=self.kernel_init)
            else:
                conv = layers.Conv2d(
                    width, 3, stride=2, padding=1, use_bias=self.use_bias, kernel_init=self.kernel_init
                )
            x = conv(x)
            x = nn.relu(Norm(self.norm)(x, train))
        return x


class ConvBlock(nn.Module):
    """pad, conv, norm, ReLU, [dropout 0.5], pad, conv, [norm]: the body of ResnetBlock (and PATN's PATBlock)."""

    features: int
    hidden: int
    norm: str
    padding_type: str
    use_bias: bool
    use_dropout: bool
    last_norm: bool = True
    kernel_init: Callable = layers.torch_default_kernel_init

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, dropout: bool) -> jax.Array:
        conv = dict(padding_type=self.padding_type, use_bias=self.use_bias, kernel_init=self.kernel_init)
        x = PadConv(self.hidden, **conv)(x)
        x = nn.relu(Norm(self.norm)(x, train))
        if self.use_dropout:
            x = nn.Dropout(0.5, deterministic=not dropout)(x)
        x = PadConv(self.features, **conv)(x)
        if self.last_norm:
            x = Norm(self.norm)(x, train)
        return x


class Decoder(nn.Module):
    """Stride-2 transposed convs halving the width (+ norm + ReLU), then a reflect-padded 7x7 conv and tanh.

    The final conv always has a bias (the original's ``postpro`` / last ``stream1_up`` conv).
    """

    ngf: int
    n_up: int
    output_nc: int
    norm: str
    use_bias: bool

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        for i in range(self.n_up):
            width = self.ngf * 2 ** (self.n_up - i - 1)
            up = layers.ConvTranspose2d(
                width,
                3,
                stride=2,
                padding=1,
                output_padding=1,
                use_bias=self.use_bias,
                kernel_init=normal_002,
            )
            x = nn.relu(Norm(self.norm)(up(x), train))
        x = layers.pad2d(x, 3, "reflect")
        x = layers.Conv2d(self.output_nc, 7, use_bias=True, kernel_init=normal_002)(x)
        return jnp.tanh(x)


def discriminator_trunk(
    x: jax.Array,
    *,
    ndf: int,
    n_blocks: int,
    n_downsampling: int,
    norm: str,
    use_dropout: bool,
    train: bool,
    dropout: bool,
) -> jax.Array:
    """``ResnetDiscriminator`` body (pix2pix's, as PATN and SCA-GAN use it): encoder + residual blocks.

    Call it inside a compact method: its submodules (``encoder``, ``block_k``) belong to the caller. Returns the
    (B, H/2**n, W/2**n, width) logit map; there is no 1-channel head. PyTorch default init (the originals do
    not apply their normal init to the discriminators); convs have a bias only with instance norm.
    """
    use_bias = norm == "instance"
    widths = [ndf * 2 ** min(i, 2) for i in range(n_downsampling + 1)]  # 3 downsamplings keep 4*ndf
    init = layers.torch_default_kernel_init
    x = Encoder(tuple(widths), norm, use_bias, init, name="encoder")(x, train)
    for k in range(n_blocks):
        body = ConvBlock(
            widths[-1],
            widths[-1],
            norm=norm,
            padding_type="reflect",
            use_bias=use_bias,
            use_dropout=use_dropout,
            kernel_init=init,
            name=f"block_{k}",
        )
        x = x + body(x, train, dropout)
    return x
