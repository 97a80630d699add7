"""SCA-GAN: Spatial Content Alignment for pose transfer (Yu et al., ICME 2021) in NHWC flax.linen.

Two generators, trained one after the other (reference card ``shared/reference/scagan.md`` §2-4):

* ``PCTNet`` (prior content transfer): a pix2pix ``ResnetGenerator`` with batch norm mapping
  ``cat(source edge (1), target pose maps (18), shifted source-edge crops BEP2 (18))`` to the target's edge map.
* ``ISNet`` (image synthesis): the original's ``CSGenerator``. A frozen PCT-Net (``edge_generator``) makes the
  target edges; a residual CNN encodes the source photo to a spatial style map; a latent z ~ N(0, I) goes
  through ``fc`` to the 8x6 start; seven Content-Style DeBlks (two SPADE branches each: style then edges,
  style then pose) with bilinear x2 upsampling between them; LeakyReLU, 3x3 conv, tanh.
* ``Discriminator``: pix2pix/PATN's ``ResnetDiscriminator`` (instance norm, dropout), for both stages.

The original's hard-coded numbers are ``Config`` fields: the decoder width ``nf`` (64), SPADE hidden width
(128), latent and upsampling sizes ((8, 6) ... (256, 176), from ``round(h / (256 / 176))``), z size (256). The
original draws z inside forward, unseeded; here z is an input (``sample_z`` draws it from an explicit
key). ``edge_batch_stats`` runs the frozen PCT-Net's batch norm on batch statistics, as the original does
during IS-Net training (it never calls ``.eval()``); sampling uses the stored running statistics.

Inputs are NHWC: images in [-1, 1]; edge maps (B, H, W, 1) in [-1, 1] (lines +1); pose maps (B, H, W, 18);
``shifted_edges`` BEP2 (B, H, W, 18) as ``ptx.data.shifted_edges`` makes it (in the original's compatibility
mode its values are -1 / 507 / 509: keep the first PCT-Net conv in float32). Intermediates (PCT-Net encoder and
residual outputs ``encoded`` / ``residual``, the ``style`` map, the ``fc`` output ``latent``, every DeBlk's
``output``) are sown into ``intermediates``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ptx.nn import layers, resnet
from ptx.nn.spade import SPADE

Size = tuple[int, int]

# The Content-Style DeBlk schedule of ``CSGenerator``: (name, output width / nf, upsample after it).
DECODER_BLOCKS: tuple[tuple[str, int, bool], ...] = (
    ("head_0", 8, True),
    ("middle_0", 8, False),
    ("middle_1", 8, True),
    ("up_0", 8, True),
    ("up_1", 4, True),
    ("up_2", 2, True),
    ("up_3", 1, False),
)
N_UPSAMPLING = sum(up for _, _, up in DECODER_BLOCKS)


def decoder_sizes(height: int, aspect: float, n_up: int = N_UPSAMPLING) -> tuple[Size, tuple[Size, ...]]:
    """(latent size, sizes after each upsampling) as the original computes them.

    Heights: ``height // 2**n_up``, then doubling; widths ``round(h / aspect)`` with Python's banker's rounding
    (the original hard-codes ``aspect = 256 / 176``), e.g. 256: (8, 6), then (16, 11), (32, 22), (64, 44),
    (128, 88), (256, 176).
    """
    if height % 2**n_up:
        raise ValueError(f"image height {height} must be a multiple of 2**{n_up} = {2**n_up}")
    heights = [height // 2**n_up * 2**k for k in range(n_up + 1)]
    sizes = [(h, round(h / aspect)) for h in heights]
    return sizes[0], tuple(sizes[1:])


_LATENT, _UPS = decoder_sizes(256, 256.0 / 176.0)


@dataclasses.dataclass(frozen=True)
class Config:
    """SCA-GAN architecture; defaults are the released model's (``define_G('EdgeGen' / 'CSGen')``)."""

    # PCT-Net: ResnetGenerator(37, 1) with its class defaults (define_G passes no ngf / norm).
    edge_ngf: int = 64
    edge_blocks: int = 6
    edge_downsampling: int = 2
    pose_nc: int = 18  # keypoint maps; BEP2 has one shifted crop per keypoint too
    edge_nc: int = 1
    # IS-Net (CSGenerator).
    image_nc: int = 3
    style_ngf: int = 64  # SPADEStyleEncoder ``dim`` (= opt.ngf)
    style_downsampling: int = 5  # down_0 .. down_4
    nf: int = 64  # decoder width, hard-coded ``nf = 64`` in the original
    z_dim: int = 256
    spade_hidden: int = 128  # hard-coded ``nhidden = 128``
    latent_size: Size = _LATENT  # (fineSize // 32, round(. / (256 / 176)))
    up_sizes: tuple[Size, ...] = _UPS  # compute_up_size after each upsampling DeBlk
    content_weight: float = 0.0  # W: out = e + p when W <= 0, else W e + (1 - W) p
    # Discriminators (ResnetDiscriminator: --ndf 64, --n_layers_D 3, --D_n_downsampling 2, dropout on).
    ndf: int = 64
    n_blocks_d: int = 3
    n_downsampling_d: int = 2
    use_dropout_d: bool = True

    def __post_init__(self):
        if len(self.up_sizes) != N_UPSAMPLING:
            raise ValueError(
                f"scagan Config.up_sizes has {len(self.up_sizes)} sizes; the decoder upsamples {N_UPSAMPLING} "
                "times (use for_image_size(cfg, height, width))"
            )
        if min(self.edge_ngf, self.style_ngf, self.nf, self.z_dim, self.spade_hidden, self.ndf) < 1:
            raise ValueError(f"scagan Config: widths must be positive, got {self}")
        if self.edge_blocks < 0 or self.edge_downsampling < 0 or self.style_downsampling < 0:
            raise ValueError(f"scagan Config: block counts must be >= 0, got {self}")

    @property
    def image_size(self) -> Size:
        return tuple(self.up_sizes[-1])

    @property
    def style_widths(self) -> tuple[int, ...]:
        """Style encoder widths: head, then doubling per downsampling up to 8 * style_ngf."""
        return tuple(self.style_ngf * 2 ** min(i, 3) for i in range(self.style_downsampling + 1))

    @property
    def pct_input_nc(self) -> int:
        return self.edge_nc + 2 * self.pose_nc


def for_image_size(cfg: Config, height: int, width: int) -> Config:
    """``cfg`` with the latent and upsampling sizes of a ``height`` x ``width`` image."""
    latent, ups = decoder_sizes(height, height / width)
    return dataclasses.replace(cfg, latent_size=latent, up_sizes=ups)


VARIANTS: dict[str, Config] = {
    "fashion": Config(),
    "tiny": for_image_size(
        Config(edge_ngf=4, edge_blocks=1, style_ngf=4, nf=4, z_dim=8, spade_hidden=8, ndf=4, n_blocks_d=1),
        64,
        44,
    ),
}

# The original's init_weights('normal') over the whole generator: conv weights N(0, 0.02) (ptx's ``fc`` keeps
# PyTorch's default uniform init and batch-norm scales start at 1, where the original draws N(0, 0.02) and
# N(1, 0.02): starting points only, converted weights are unaffected).
_normal_002 = resnet.normal_002


class PCTNet(nn.Module):
    """``ResnetGenerator`` with batch norm: source edge + target pose + BEP2 -> target edge map (tanh).

    Returns {"edge": (B, H, W, edge_nc)}. ``train`` switches batch norm to batch statistics (running
    statistics update when ``batch_stats`` is mutable).
    """

    config: Config

    @nn.compact
    def __call__(
        self, source_edge: jax.Array, target_pose: jax.Array, shifted_edges: jax.Array, *, train: bool = False
    ) -> dict[str, jax.Array]:
        cfg = self.config
        x = jnp.concatenate([source_edge, target_pose, shifted_edges], axis=-1)
        _check_channels(x, cfg.pct_input_nc, "PCT-Net input cat(source_edge, target_pose, shifted_edges)")
        widths = tuple(cfg.edge_ngf * 2**i for i in range(cfg.edge_downsampling + 1))
        x = resnet.Encoder(widths, "batch", False, _normal_002, name="encoder")(x, train)
        self.sow("intermediates", "encoded", x)
        for k in range(cfg.edge_blocks):
            body = resnet.ConvBlock(
                widths[-1],
                widths[-1],
                norm="batch",
                padding_type="reflect",
                use_bias=False,
                use_dropout=False,
                kernel_init=_normal_002,
                name=f"block_{k}",
            )
            x = x + body(x, train, False)
        self.sow("intermediates", "residual", x)
        decoder = resnet.Decoder(
            cfg.edge_ngf, cfg.edge_downsampling, cfg.edge_nc, "batch", False, name="decoder"
        )
        return {"edge": decoder(x, train)}


class ResidualConvBlock(nn.Module):
    """``ResidualConv2dBlock`` (norm none, ReLU, reflect padding): ReLU(conv(x)) + ReLU(conv3(ReLU(conv(x)))).

    Params: ``skip`` (in -> out, k / stride), ``conv1`` (in -> max(in, out), k / stride), ``conv2``
    (3x3 stride 1, -> out); all with bias.
    """

    features: int
    kernel_size: int
    stride: int
    padding: int
    kernel_init: Callable = _normal_002

    def _conv(self, x: jax.Array, features: int, k: int, stride: int, pad: int, name: str) -> jax.Array:
        x = layers.pad2d(x, pad, "reflect")
        return jax.nn.relu(layers.Conv2d(features, k, stride, kernel_init=self.kernel_init, name=name)(x))

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        mid = max(x.shape[-1], self.features)
        skip = self._conv(x, self.features, self.kernel_size, self.stride, self.padding, "skip")
        y = self._conv(x, mid, self.kernel_size, self.stride, self.padding, "conv1")
        return self._conv(y, self.features, 3, 1, 1, "conv2") + skip


class StyleEncoder(nn.Module):
    """``SPADEStyleEncoder``: a 7x7 block, then stride-2 blocks; a spatial style map (B, H/32, W/32, 8 ngf)."""

    widths: tuple[int, ...]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = ResidualConvBlock(self.widths[0], 7, 1, 3, name="head_0")(x)
        for i, width in enumerate(self.widths[1:]):
            x = ResidualConvBlock(width, 3, 2, 1, name=f"down_{i}")(x)
        return x


class ContentStyleBlock(nn.Module):
    """Content-Style DeBlk (``SPADEResnetBlock``): an edge branch and a pose branch, both from x, summed.

    edge: conv_s1(lrelu(SPADE_s1(x; style))) -> conv_e1(lrelu(SPADE_e1(.; edge))) -> conv_e2(lrelu(SPADE_e2(.;
    edge))); pose: the same with s2 / p1 / p2 and the pose maps. No shortcut (the original defines one but never
    calls it). Widths fin -> min(fin, out) -> min(fin, out) -> out; 3x3 zero-padded convs with bias.
    """

    features: int
    spade_hidden: int
    content_weight: float = 0.0

    def _branch(self, x, style, content, tag: str, names: tuple[str, str]) -> jax.Array:
        mid = min(x.shape[-1], self.features)
        conv = dict(kernel_size=3, padding=1, kernel_init=_normal_002)
        spade = dict(hidden=self.spade_hidden, kernel_init=_normal_002)
        y = SPADE(name=f"norm_s{tag}", **spade)(x, style)
        y = layers.Conv2d(mid, name=f"conv_s{tag}", **conv)(layers.leaky_relu(y))
        for name, width in zip(names, (mid, self.features)):
            y = SPADE(name=f"norm_{name}", **spade)(y, content)
            y = layers.Conv2d(width, name=f"conv_{name}", **conv)(layers.leaky_relu(y))
        return y

    @nn.compact
    def __call__(self, x: jax.Array, style: jax.Array, edge: jax.Array, pose: jax.Array) -> jax.Array:
        e = self._branch(x, style, edge, "1", ("e1", "e2"))
        p = self._branch(x, style, pose, "2", ("p1", "p2"))
        w = self.content_weight
        out = e + p if w <= 0 else e * w + p * (1 - w)
        self.sow("intermediates", "output", out)
        return out


EDGE_GENERATOR = "edge_generator"  # the PCT-Net's scope inside ISNet


class ISNet(nn.Module):
    """``CSGenerator``: frozen PCT-Net edges + style map + z -> image.

    ``__call__`` runs the whole original forward -> {"edge", "image", "style"}; ``synthesize`` the part after
    the PCT-Net, from given edges. The PCT-Net's variables are the ``edge_generator`` subtree, which a top-level
    ``PCTNet`` applies alone (the recipe's first stage trains exactly that subtree; the second carries it over).
    Its output is ``stop_gradient``-ed here: it is frozen, so its parameters get exactly zero gradient, as
    ``requires_grad_(False)`` gives in the original.
    """

    config: Config

    def setup(self):
        cfg = self.config
        self.edge_generator = PCTNet(cfg)
        self.style_encoder = StyleEncoder(cfg.style_widths)
        latent = cfg.latent_size
        self.fc = layers.Dense(8 * cfg.nf * latent[0] * latent[1])
        for name, mult, _ in DECODER_BLOCKS:  # attribute names become the param names head_0, middle_0, ...
            setattr(self, name, ContentStyleBlock(mult * cfg.nf, cfg.spade_hidden, cfg.content_weight))
        self.conv_img = layers.Conv2d(cfg.image_nc, 3, padding=1, kernel_init=_normal_002)

    def __call__(
        self,
        source_image: jax.Array,
        source_edge: jax.Array,
        target_pose: jax.Array,
        shifted_edges: jax.Array,
        z: jax.Array,
        *,
        edge_batch_stats: bool = False,
    ) -> dict[str, jax.Array]:
        edge = self.edge_generator(source_edge, target_pose, shifted_edges, train=edge_batch_stats)["edge"]
        edge = jax.lax.stop_gradient(edge)  # the PCT-Net is frozen: nothing upstream of it trains
        return {"edge": edge, **self.synthesize(source_image, target_pose, edge, z)}

    def synthesize(
        self, source_image: jax.Array, target_pose: jax.Array, edge: jax.Array, z: jax.Array
    ) -> dict[str, jax.Array]:
        """Image from the source photo, the target pose maps, the (transferred) target edges and z."""
        cfg = self.config
        _check_channels(source_image, cfg.image_nc, "IS-Net source_image")
        if z.shape != (source_image.shape[0], cfg.z_dim):
            raise ValueError(f"IS-Net z: expected shape {(source_image.shape[0], cfg.z_dim)}, got {z.shape}")
        style = self.style_encoder(source_image)
        self.sow("intermediates", "style", style)
        x = self.fc(z)
        self.sow("intermediates", "latent", x)
        x = x.reshape(z.shape[0], 8 * cfg.nf, *cfg.latent_size).transpose(0, 2, 3, 1)  # torch .view is NCHW
        sizes = iter(cfg.up_sizes)
        for name, _, upsample in DECODER_BLOCKS:
            x = getattr(self, name)(x, style, edge, target_pose)
            if upsample:
                x = jax.image.resize(x, (x.shape[0], *next(sizes), x.shape[-1]), "linear")
        image = jnp.tanh(self.conv_img(layers.leaky_relu(x)))
        return {"image": image, "style": style}


def edge_variables(gen: dict) -> dict:
    """The PCT-Net's variables (for a top-level ``PCTNet``) inside ``ISNet`` variables ``gen``."""
    return {c: tree[EDGE_GENERATOR] for c, tree in gen.items() if EDGE_GENERATOR in tree}


def as_isnet_variables(pct: dict) -> dict:
    """A top-level ``PCTNet``'s variables placed where ``ISNet`` keeps them."""
    return {c: {EDGE_GENERATOR: tree} for c, tree in pct.items()}


def sample_z(cfg: Config, rng: jax.Array, batch_size: int) -> jax.Array:
    """z ~ N(0, I) of shape (B, z_dim): the original's in-forward ``torch.randn``, here from an explicit key."""
    return jax.random.normal(rng, (batch_size, cfg.z_dim), jnp.float32)


class Discriminator(nn.Module):
    """``ResnetDiscriminator`` (instance norm, dropout 0.5): (B, H/4, W/4, 4 ndf) LSGAN score map."""

    config: Config

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False, dropout: bool | None = None) -> jax.Array:
        cfg = self.config
        return resnet.discriminator_trunk(
            x,
            ndf=cfg.ndf,
            n_blocks=cfg.n_blocks_d,
            n_downsampling=cfg.n_downsampling_d,
            norm="instance",
            use_dropout=cfg.use_dropout_d,
            train=train,
            dropout=train if dropout is None else dropout,
        )


def _check_channels(x: jax.Array, channels: int, what: str) -> None:
    if x.ndim != 4 or x.shape[-1] != channels:
        raise ValueError(f"{what}: expected NHWC with {channels} channels, got shape {x.shape}")
