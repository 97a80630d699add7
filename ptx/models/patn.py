"""PATN: Progressive Pose Attention Transfer (Zhu et al., CVPR 2019) in NHWC flax.linen.

Two encoders (image; source+target pose maps), a cascade of pose-attention transfer blocks that update the
image stream under a sigmoid mask computed from the pose stream, and a decoder of the image stream only.
Layer for layer as the original ``PATNetwork`` (reference card ``shared/reference/patn.md`` §1-2), so
``ptx.convert.patn`` can load official checkpoints; the two ``ResnetDiscriminator`` critics are here too.

Inputs are NHWC: ``image`` (B, H, W, image_nc) in [-1, 1]; ``pose`` (B, H, W, pose_nc) = source maps then
target maps (the original's ``cat(BP1, BP2)``). ``train`` switches batch norm to batch statistics (running
statistics update when ``batch_stats`` is mutable) and dropout on (rng ``"dropout"``); ``dropout`` overrides
the latter alone. Intermediates (encoder outputs, each block's mask and image features, the last pose-stream
features) are sown into the ``intermediates`` collection for parity checks.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from ptx.nn import resnet
from ptx.nn.resnet import ConvBlock, Decoder, Encoder, normal_002

NORMS = resnet.NORMS
PADDINGS = resnet.PADDINGS


@dataclasses.dataclass(frozen=True)
class Config:
    """Options of the original's ``define_G`` / ``define_D`` (names kept where they exist there)."""

    ngf: int = 64
    n_blocks: int = 9
    n_downsampling: int = 2
    norm: str = "instance"  # fashion: instance (affine False); market: batch
    use_dropout: bool = True  # the official runs never pass --no_dropout
    padding_type: str = "reflect"  # of the 3x3 convs in the attention blocks
    image_nc: int = 3
    pose_nc: int = 36  # 18 source + 18 target keypoint maps
    output_nc: int = 3
    # Discriminators (training only): ndf, residual blocks (= n_layers_D), dropout (not --no_dropout_D).
    ndf: int = 64
    n_blocks_d: int = 3
    n_downsampling_d: int = 2
    use_dropout_d: bool = True
    # "gaussian" (sigma 6 float maps) or "onehot" (the fashion script's uint8-truncated maps, card §5).
    heatmap: str = "gaussian"
    heatmap_sigma: float = 6.0

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ValueError(f"patn Config.norm={self.norm!r}; expected one of {NORMS}")
        if self.padding_type not in PADDINGS:
            raise ValueError(f"patn Config.padding_type={self.padding_type!r}; expected one of {PADDINGS}")
        if self.heatmap not in ("gaussian", "onehot"):
            raise ValueError(f"patn Config.heatmap={self.heatmap!r}; expected 'gaussian' or 'onehot'")
        if self.n_blocks < 1 or self.n_downsampling < 0 or self.n_blocks_d < 0:
            raise ValueError(f"patn Config: need n_blocks >= 1, n_downsampling >= 0, got {self}")
        if not 0 <= self.n_downsampling_d <= 3:
            raise ValueError(
                f"patn Config.n_downsampling_d={self.n_downsampling_d}; the original allows 0..3"
            )

    @property
    def use_bias(self) -> bool:
        """The original gives convs a bias only with instance norm."""
        return self.norm == "instance"


VARIANTS: dict[str, Config] = {
    "fashion": Config(norm="instance"),
    "market": Config(norm="batch"),
    "fashion_tiny": Config(norm="instance", ngf=8, n_blocks=2, ndf=8, n_blocks_d=1),
    "market_tiny": Config(norm="batch", ngf=8, n_blocks=2, ndf=8, n_blocks_d=1),
}


class PATBlock(nn.Module):
    """One pose-attention transfer step: image features += sigmoid(pose branch) * image branch.

    Returns the updated image features and the next pose-stream input ``cat(pre-sigmoid pose branch,
    updated image features)`` (that order, card §1).
    """

    dim: int
    first: bool  # block 0 takes dim pose channels, later blocks 2*dim
    norm: str
    padding_type: str
    use_bias: bool
    use_dropout: bool

    @nn.compact
    def __call__(
        self, x1: jax.Array, x2: jax.Array, train: bool, dropout: bool
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        common = dict(
            norm=self.norm,
            padding_type=self.padding_type,
            use_bias=self.use_bias,
            use_dropout=self.use_dropout,
            kernel_init=normal_002,
        )
        image_branch = ConvBlock(self.dim, self.dim, name="image", **common)(x1, train, dropout)
        pose_hidden = self.dim if self.first else 2 * self.dim
        s2 = ConvBlock(self.dim, pose_hidden, last_norm=False, name="pose", **common)(x2, train, dropout)
        att = jax.nn.sigmoid(s2)
        x1 = x1 + att * image_branch
        return x1, jnp.concatenate([s2, x1], axis=-1), att


class Generator(nn.Module):
    """``PATNetwork``: image and pose encoders, ``n_blocks`` PATBlocks, image decoder -> {"image"}."""

    config: Config

    @nn.compact
    def __call__(
        self, image: jax.Array, pose: jax.Array, *, train: bool = False, dropout: bool | None = None
    ) -> dict[str, jax.Array]:
        cfg = self.config
        _check_input(image, cfg.image_nc, "image", 2**cfg.n_downsampling)
        _check_input(pose, cfg.pose_nc, "pose", 2**cfg.n_downsampling)
        dropout = train if dropout is None else dropout
        widths = tuple(cfg.ngf * 2**i for i in range(cfg.n_downsampling + 1))
        enc = dict(widths=widths, norm=cfg.norm, use_bias=cfg.use_bias, kernel_init=normal_002)
        x1 = Encoder(name="image_encoder", **enc)(image, train)
        x2 = Encoder(name="pose_encoder", **enc)(pose, train)
        self.sow("intermediates", "stream1_down", x1)
        self.sow("intermediates", "stream2_down", x2)
        for k in range(cfg.n_blocks):
            block = PATBlock(
                widths[-1],
                first=k == 0,
                norm=cfg.norm,
                padding_type=cfg.padding_type,
                use_bias=cfg.use_bias,
                use_dropout=cfg.use_dropout,
                name=f"block_{k}",
            )
            x1, x2, att = block(x1, x2, train, dropout)
            self.sow("intermediates", f"block{k}_att", att)
            self.sow("intermediates", f"block{k}_x1", x1)
        self.sow("intermediates", "last_x2_cat", x2)
        out = Decoder(cfg.ngf, cfg.n_downsampling, cfg.output_nc, cfg.norm, cfg.use_bias, name="decoder")(
            x1, train
        )
        return {"image": out}


class Discriminator(nn.Module):
    """``ResnetDiscriminator``: encoder + residual blocks; returns the (B, H/4, W/4, 4*ndf) logit map.

    There is no 1-channel head (card §2). The original's final Sigmoid (market, ``--no_lsgan``) is left to the
    loss (BCE on logits), which is the same function without the saturation of a separate sigmoid + log.
    Initialised as PyTorch's defaults: the original does not apply its normal init to the discriminators.
    """

    config: Config

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False, dropout: bool | None = None) -> jax.Array:
        cfg = self.config
        return resnet.discriminator_trunk(
            x,
            ndf=cfg.ndf,
            n_blocks=cfg.n_blocks_d,
            n_downsampling=cfg.n_downsampling_d,
            norm=cfg.norm,
            use_dropout=cfg.use_dropout_d,
            train=train,
            dropout=train if dropout is None else dropout,
        )


def _check_input(x: jax.Array, channels: int, name: str, multiple: int) -> None:
    if x.ndim != 4 or x.shape[-1] != channels:
        raise ValueError(f"PATN {name} input: expected NHWC with {channels} channels, got shape {x.shape}")
    if x.shape[1] % multiple or x.shape[2] % multiple:
        raise ValueError(
            f"PATN {name} input: height and width must be multiples of {multiple} "
            f"(2**n_downsampling) so the decoder restores the size, got {x.shape[1:3]}"
        )
