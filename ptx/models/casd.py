"""CASD: cross-attention based style distribution (Zhou et al., ECCV 2022) in NHWC flax.linen.

The source person is encoded as one style vector per semantic region (8 regions merged from a LIP parsing):
a learned convolution path interleaved with a frozen VGG19's relu1_1..relu4_1 features, average-pooled inside
each region. The target pose (18 one-pixel keypoint maps + 12 limb maps) is encoded to a content map. The
decoder modulates the content with AdaIN parameters from an MLP of all region codes, distributes the region
codes over the target positions with two cross-attention blocks (their pre-softmax "energy" maps are a
per-pixel region score, supervised by the target parsing in training), modulates the content again with the
attention result through batch-statistics ("SPADE") blocks, and upsamples to the image. Layer for layer as
``models/CASD.py`` of the original (reference card ``shared/reference/casd.md`` sections 2-4), so
``ptx.convert.casd`` loads official checkpoints.

Inputs (NHWC): ``pose`` (B, H, W, 30) target keypoint + limb maps, ``image`` (B, H, W, 3) source in [-1, 1],
``parsing`` (B, H, W, 8) source regions one-hot (0/1). H and W must be multiples of 8.

Batch statistics: the "SPADE" normalisation of the original takes its mean and variance over the batch and
space, in training AND at test time, so one sample's output depends on the other samples in its batch.
``Config.spade_stats`` chooses:

* ``"batch"`` (compatibility; the default, and what converted weights use): statistics over the whole batch,
  or over consecutive groups of ``Config.spade_group`` samples (the original trained with DataParallel: one
  group per GPU). Reproduces the original's batched outputs (the goldens are batch 2).
* ``"sample"``: statistics per sample. An output never depends on the rest of the batch (padding a batch by
  repetition changes nothing), and it equals the original run with batch 1, which is what its ``test.py``
  does. Use it for sampling; training in this mode is a (documented) departure from the original.

Variables: ``params`` (trained), and the style encoder's frozen VGG19 in the ``vgg`` collection (part of the
original generator checkpoint; never differentiated, never in an optimizer).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ptx.nn import blocks, layers, norms
from ptx.nn import vgg as vgg_lib

SPADE_STATS = ("batch", "sample")
# torchvision VGG19 activations the style encoder concatenates (in-place ReLUs make them post-ReLU).
STYLE_VGG_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
ATTENTION_BLOCKS = (3, 4)  # the original's names: gamma3_*, key4_conv, ...
_normal_002 = nn.initializers.normal(0.02)  # init_weights(net, 'normal') on every conv / linear weight


@dataclasses.dataclass(frozen=True)
class Config:
    """Architecture of ``ADGen`` (define_G 'CASD') and the two ``ResnetDiscriminator`` critics.

    The original hard-codes most widths; they are fields here (inferred by ``ptx.convert.casd``) so narrow
    networks (tests, demos, the goldens) are the same code.
    """

    pose_nc: int = 30  # 18 keypoint maps + 12 limb maps
    image_nc: int = 3
    regions: int = 8  # K: merged parsing regions, one style vector each
    dim: int = 256  # decoder width = style vector width per region (style_dim = regions * dim)
    content_widths: tuple[int, ...] = (64, 128)  # content encoder blocks (each halves H, W)
    vgg_widths: tuple[int, ...] = (64, 128, 256, 512, 512)  # the style encoder's VGG19 blocks
    style_widths: tuple[int, ...] = (64, 128, 256, 512)  # learned style convs (7x7, then three 4x4 s2)
    mlp_dim: int = 256
    mlp_layers: int = 3
    n_res: int = 8  # the MLP emits n_res chunks of 4 * dim AdaIN parameters; the first n_adain are used
    n_adain: int = 4
    n_spade: int = 4
    spade_stats: str = "batch"  # "batch" (the original) | "sample" (independent of batch composition)
    spade_group: int = 0  # "batch" mode: samples per statistics group (0 = the whole batch)
    # Discriminators (training only): conv7x7 -> IN -> ReLU, then n_downsampling_d stride-2 convs.
    ndf: int = 64
    n_downsampling_d: int = 2

    def __post_init__(self):
        for name in ("content_widths", "vgg_widths", "style_widths"):  # lists from JSON / ConfigDict
            object.__setattr__(self, name, tuple(int(w) for w in getattr(self, name)))
        if self.spade_stats not in SPADE_STATS:
            raise ValueError(f"casd Config.spade_stats={self.spade_stats!r}; expected one of {SPADE_STATS}")
        if len(self.vgg_widths) != 5 or len(self.style_widths) != 4:
            raise ValueError("casd Config: vgg_widths needs 5 block widths and style_widths 4 conv widths")
        if not self.content_widths:
            raise ValueError("casd Config.content_widths: at least one content encoder block")
        if self.n_adain > self.n_res:
            raise ValueError(
                f"casd Config: n_adain={self.n_adain} uses more MLP chunks than n_res={self.n_res}"
            )
        if self.mlp_layers < 2:
            raise ValueError("casd Config.mlp_layers must be >= 2")
        if not 0 <= self.n_downsampling_d <= 2:
            raise ValueError("casd Config.n_downsampling_d: 0..2 (the original's CASD setting is 2)")

    @property
    def n_upsample(self) -> int:
        """Decoder upsamplings: as many as the content encoder's downsamplings (output size = input size)."""
        return len(self.content_widths)

    @property
    def size_multiple(self) -> int:
        """H and W must be multiples of this (style codes at 1/8, content at 1/2**n_upsample)."""
        return max(8, 2**self.n_upsample)

    @property
    def spade_group_size(self) -> int:
        return 1 if self.spade_stats == "sample" else self.spade_group


VARIANTS: dict[str, Config] = {
    "fashion": Config(),
    # The golden's narrow widths (shared/golden/casd_fashion_small.json "width_config").
    "fashion_small": Config(
        dim=32,
        content_widths=(8, 16),
        vgg_widths=(8, 16, 32, 64, 64),
        style_widths=(8, 16, 32, 64),
        mlp_dim=32,
        ndf=8,
    ),
    "tiny": Config(
        dim=8,
        content_widths=(4, 8),
        vgg_widths=(4, 4, 8, 8, 8),
        style_widths=(4, 4, 8, 8),
        mlp_dim=8,
        n_res=4,
        ndf=4,
    ),
}


def _conv(features: int, k: int, name: str | None = None, **kw) -> layers.Conv2d:
    return layers.Conv2d(features, k, kernel_init=_normal_002, name=name, **kw)


def _reflect_conv(x: jax.Array, features: int, k: int, stride: int, pad: int, name: str) -> jax.Array:
    """The original's Conv2dBlock convolution: reflection pad, then an unpadded conv."""
    return _conv(features, k, name=name, stride=stride)(layers.pad2d(x, pad, "reflect"))


def torch_nearest_resize(x: jax.Array, size: tuple[int, int]) -> jax.Array:
    """PyTorch ``F.interpolate(mode='nearest')`` on NHWC: source index floor(dst * in / out) (top-left pick)."""
    h, w = x.shape[1:3]
    rows = np.minimum(np.floor(np.arange(size[0]) * (h / size[0])).astype(np.int64), h - 1)
    cols = np.minimum(np.floor(np.arange(size[1]) * (w / size[1])).astype(np.int64), w - 1)
    return x[:, rows][:, :, cols]


def region_pool(codes: jax.Array, parsing: jax.Array) -> jax.Array:
    """Mean of ``codes`` (B, h, w, C) inside each region of ``parsing`` (B, H, W, K) -> (B, K, C).

    The parsing is resized to the code map as the original does (nearest, top-left pixel of each cell) and
    binarised (``!= 0``); a region with no pixel left falls back to the mean over the whole code map.
    """
    mask = (torch_nearest_resize(parsing, codes.shape[1:3]) != 0).astype(codes.dtype)
    count = jnp.sum(mask, axis=(1, 2))  # (B, K)
    sums = jnp.einsum("bhwk,bhwc->bkc", mask, codes, precision=jax.lax.Precision.HIGHEST)
    whole = jnp.mean(codes, axis=(1, 2))[:, None, :]
    return jnp.where(count[..., None] > 0, sums / jnp.maximum(count, 1.0)[..., None], whole)


# ----------------------------------------------------------------------------------------------- encoders
class ContentEncoder(nn.Module):
    """Pre-activation encoder of the pose maps: ``block0``, ``encoder0..``, then IN -> LReLU(0.1) -> 1x1 conv.

    Params: ``block0`` / ``encoder{i}`` (``blocks.EncoderBlock``: norm1, conv1, norm2, conv2), ``out_norm``,
    ``out_conv`` (torch ``enc_content.{block0,encoder{i}}.model.{0,2,3,5}``, ``enc_content.model0.{0,2}``).
    """

    cfg: Config

    @nn.compact
    def __call__(self, pose: jax.Array) -> jax.Array:
        x = pose
        for i, width in enumerate(self.cfg.content_widths):
            name = "block0" if i == 0 else f"encoder{i - 1}"
            x = blocks.EncoderBlock(width, name=name)(x)
        x = blocks.leaky_relu_01(layers.InstanceNorm(affine=True, name="out_norm")(x))
        return _conv(self.cfg.dim, 1, name="out_conv")(x)


# torchvision's VGG19 whose parameters live in the ``vgg`` collection instead of ``params``: frozen, never
# differentiated, never in an optimizer, but part of the generator's variables (and checkpoint) as in the original.
# Two views: ``init=True`` creates the weights (init only; in apply it would try to create them whenever any
# collection, e.g. ``intermediates``, is mutable), the other only reads them.
class StyleVGG(vgg_lib.VGG):
    """torchvision's VGG19 trunk as the style encoder's part (its own class: one pass per generator pass, told
    apart from the loss networks' VGG19)."""


def _frozen_vgg(init: bool):
    return nn.map_variables(
        StyleVGG,
        ("params", "vgg"),
        trans_in_fn=lambda v: {"params": v.get("vgg", {}), "vgg": {}},
        trans_out_fn=lambda v: {"vgg": v.get("params", {}), "params": {}},
        init=init,
        mutable=False,
    )


_FrozenVGGInit, _FrozenVGG = _frozen_vgg(True), _frozen_vgg(False)


class StyleEncoder(nn.Module):
    """Region style codes (B, K, dim) from the source image and its one-hot parsing.

    conv1 (7x7) -> [., relu1_1] -> conv2 (4x4 s2) -> [., relu2_1] -> conv3 -> [., relu3_1] -> conv4 ->
    [., relu4_1] -> 1x1 ``out_conv`` -> region mean. Learned convs: reflection padding, bias, ReLU. The VGG19
    (torchvision layout, ``vgg`` collection, submodule ``vgg``; the input is the raw [-1, 1] image) runs up to
    relu4_1.
    """

    cfg: Config

    @nn.compact
    def __call__(self, image: jax.Array, parsing: jax.Array) -> jax.Array:
        cfg = self.cfg
        if self.is_initializing():  # all 16 convs, which the original's checkpoint holds
            feats = _FrozenVGGInit("vgg19", widths=cfg.vgg_widths, name="vgg")(image)
        else:
            feats = _FrozenVGG("vgg19", layers=STYLE_VGG_LAYERS, widths=cfg.vgg_widths, name="vgg")(image)
        x = jax.nn.relu(_reflect_conv(image, cfg.style_widths[0], 7, 1, 3, "conv1"))
        x = jnp.concatenate([x, feats["relu1_1"]], axis=-1)
        for i, layer in enumerate(STYLE_VGG_LAYERS[1:]):
            x = jax.nn.relu(_reflect_conv(x, cfg.style_widths[i + 1], 4, 2, 1, f"conv{i + 2}"))
            x = jnp.concatenate([x, feats[layer]], axis=-1)
        return region_pool(_conv(cfg.dim, 1, name="out_conv")(x), parsing)


# ----------------------------------------------------------------------------------------------- decoder
class AdaINResBlock(nn.Module):
    """x + AdaIN(conv(ReLU(AdaIN(conv(x))))); 3x3 reflect-padded convs ``conv1``, ``conv2``.

    ``params`` (B, 4 * C): [scale1, shift1, scale2, shift2], each C wide (torch ``ResBlock_my``).
    """

    @nn.compact
    def __call__(self, x: jax.Array, params: jax.Array) -> jax.Array:
        c = x.shape[-1]
        s1, b1, s2, b2 = (params[:, i * c : (i + 1) * c] for i in range(4))
        y = jax.nn.relu(norms.adaptive_instance_norm(_reflect_conv(x, c, 3, 1, 1, "conv1"), s1, b1))
        y = norms.adaptive_instance_norm(_reflect_conv(y, c, 3, 1, 1, "conv2"), s2, b2)
        return y + x


class SpadeResBlock(nn.Module):
    """x + N(conv(ReLU(N(conv(x); s1))); s2) with s_i = conv(ReLU(IN(conv(m)))) from the modulation map m.

    N is :func:`ptx.nn.norms.batch_stat_norm` then ``* (1 + s[..., :C]) + s[..., C:]``. Params ``conv1``,
    ``conv2``, ``style{1,2}_conv{1,2}`` (torch ``model{1,2}.0.conv``, ``models{1,2}.{0,1}.conv``).
    """

    group: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, m: jax.Array) -> jax.Array:
        c = x.shape[-1]

        def modulation(i: int) -> jax.Array:
            s = _reflect_conv(m, c, 3, 1, 1, f"style{i}_conv1")
            s = jax.nn.relu(layers.InstanceNorm(affine=False)(s))
            return _reflect_conv(s, 2 * c, 3, 1, 1, f"style{i}_conv2")

        def modulate(y: jax.Array, s: jax.Array) -> jax.Array:
            return norms.batch_stat_norm(y, group=self.group) * (1.0 + s[..., :c]) + s[..., c:]

        s1, s2 = modulation(1), modulation(2)
        y = jax.nn.relu(modulate(_reflect_conv(x, c, 3, 1, 1, "conv1"), s1))
        y = modulate(_reflect_conv(y, c, 3, 1, 1, "conv2"), s2)
        return y + x


def _style_linear(features: int, name: str) -> Any:
    """A torch 1x1 conv applied to (B, K, C) region vectors (kept a conv so the weight layout is the torch one)."""
    conv = _conv(features, 1, name=name)
    return lambda s: conv(s[:, :, None, :])[:, :, 0, :]


class StyleDistribution(nn.Module):
    """One cross-attention block (the original's ``Decoder.styleatt``): returns (features, energy (B, h, w, K)).

    1. ILN of x (``norm_x``), of the content x0 (``norm_content``) and of the region codes (``norm_style``: IN
       over the regions, LN over channels);
    2. region self-attention: softmax over axis 1 of s s^T, + 1e-8, renormalised over axis 2;
       s += gamma_sa * A value_sa(s);
    3. energy = query_content(x0n) + key(s) . query(xn) (no 1/sqrt(C); the key's gradient is stopped, as the
       original's ``.detach()``), the returned logits;
    4. attention = softmax over positions, + 1e-8, renormalised over regions; out = gamma_out * (value(s) a) + xn;
       out += gamma_ffn * FFN(out) (1x1 conv, exact GELU, 1x1 conv).
    ``gamma_unused`` is the original's never-used ``gamma{n}_2`` (kept for the checkpoint).
    """

    regions: int

    @nn.compact
    def __call__(self, x: jax.Array, x0: jax.Array, style: jax.Array) -> tuple[jax.Array, jax.Array]:
        b, h, w, c = x.shape
        k = self.regions
        hi = jax.lax.Precision.HIGHEST
        gamma = {
            n: self.param(f"gamma_{n}", nn.initializers.zeros, (1,)) for n in ("out", "unused", "ffn", "sa")
        }
        xn = norms.InstanceLayerNorm((1, 2), (3,), name="norm_x")(x)
        x0n = norms.InstanceLayerNorm((1, 2), (3,), name="norm_content")(x0)
        s = norms.InstanceLayerNorm((1,), (2,), name="norm_style")(style)

        sim = jnp.einsum("bkc,blc->bkl", s, s, precision=hi)
        att = jax.nn.softmax(sim, axis=1) + 1e-8
        att = att / jnp.sum(att, axis=2, keepdims=True)
        s = s + gamma["sa"] * jnp.einsum("bkl,blc->bkc", att, _style_linear(c, "value_sa")(s), precision=hi)

        query = _conv(c, 1, name="query")(xn).reshape(b, h * w, c)
        key = jax.lax.stop_gradient(_style_linear(c, "key")(s))
        value = _style_linear(c, "value")(s)
        energy = _conv(k, 1, name="query_content")(x0n).reshape(b, h * w, k)
        energy = energy + jnp.einsum("bkc,bnc->bnk", key, query, precision=hi)
        att = jax.nn.softmax(energy, axis=1) + 1e-8
        att = att / jnp.sum(att, axis=2, keepdims=True)

        out = jnp.einsum("bnk,bkc->bnc", att, value, precision=hi).reshape(b, h, w, c)
        out = gamma["out"] * out + xn
        ffn = _conv(c, 1, name="ffn_fc2")(jax.nn.gelu(_conv(c, 1, name="ffn_fc1")(out), approximate=False))
        out = out + gamma["ffn"] * ffn
        return out, energy.reshape(b, h, w, k)


class Decoder(nn.Module):
    """Content (B, h, w, dim) + region codes (B, K, dim) -> (image, [energy3, energy4]).

    Params: ``fc``, ``mlp{i}`` (Dense), ``adain{i}``, ``attn3``/``attn4``, ``spade{i}``, ``up{i}_conv`` +
    ``up{i}_norm`` (nearest x2, 5x5 reflect conv, MUNIT LayerNorm, ReLU), ``out_conv`` (7x7, tanh).
    """

    cfg: Config

    @nn.compact
    def __call__(self, content: jax.Array, style: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        cfg = self.cfg
        flat = style.reshape(style.shape[0], -1)  # region-major: k * dim + c, as the original's view
        p = jax.nn.relu(layers.Dense(flat.shape[-1], name="fc")(flat))
        for i in range(cfg.mlp_layers):
            last = i == cfg.mlp_layers - 1
            p = layers.Dense(cfg.n_res * 4 * cfg.dim if last else cfg.mlp_dim, name=f"mlp{i}")(p)
            p = p if last else jax.nn.relu(p)
        chunk = 4 * cfg.dim
        x = content
        for i in range(cfg.n_adain):
            x = AdaINResBlock(name=f"adain{i}")(x, p[:, i * chunk : (i + 1) * chunk])
        self.sow("intermediates", "adain_out", x)
        energies = []
        for n in ATTENTION_BLOCKS:
            x, energy = StyleDistribution(cfg.regions, name=f"attn{n}")(x, content, style)
            self.sow("intermediates", f"attn{n}_out", x)
            energies.append(energy)
        y = content  # the residual path restarts from the content; the attention result only modulates
        for i in range(cfg.n_spade):
            y = SpadeResBlock(cfg.spade_group_size, name=f"spade{i}")(y, x)
        width = cfg.dim
        for i in range(cfg.n_upsample):
            width //= 2
            y = jnp.repeat(jnp.repeat(y, 2, axis=1), 2, axis=2)
            y = _reflect_conv(y, width, 5, 1, 2, f"up{i}_conv")
            y = jax.nn.relu(norms.MunitLayerNorm(name=f"up{i}_norm")(y))
        image = jnp.tanh(_reflect_conv(y, cfg.image_nc, 7, 1, 3, "out_conv"))
        return image, energies


# --------------------------------------------------------------------------------------------- generator
class Generator(nn.Module):
    """``ADGen``: ``__call__(pose, image, parsing)`` -> {image, energy3, energy4, style_codes, content}.

    ``encode_style`` / ``encode_pose`` / ``decode`` expose the three parts, for region editing (swap or mix
    rows of the (B, K, dim) codes, then decode).
    """

    cfg: Config

    def setup(self):
        self.enc_content = ContentEncoder(self.cfg)
        self.enc_style = StyleEncoder(self.cfg)
        self.dec = Decoder(self.cfg)

    def _check(self, x: jax.Array, what: str) -> None:
        m = self.cfg.size_multiple
        if x.shape[1] % m or x.shape[2] % m:
            raise ValueError(f"CASD {what}: H, W = {x.shape[1:3]} must be multiples of {m}")

    def encode_style(self, image: jax.Array, parsing: jax.Array) -> jax.Array:
        self._check(image, "source image")
        return self.enc_style(image, parsing)

    def encode_pose(self, pose: jax.Array) -> jax.Array:
        self._check(pose, "pose maps")
        return self.enc_content(pose)

    def decode(self, content: jax.Array, style_codes: jax.Array) -> dict[str, jax.Array]:
        image, (e3, e4) = self.dec(content, style_codes)
        return {"image": image, "energy3": e3, "energy4": e4}

    def render(self, pose: jax.Array, style_codes: jax.Array) -> dict[str, jax.Array]:
        """Region codes (B, K, dim), e.g. edited ones, in the pose ``pose``: {image, energy3, energy4}."""
        return self.decode(self.encode_pose(pose), style_codes)

    def __call__(self, pose: jax.Array, image: jax.Array, parsing: jax.Array) -> dict[str, jax.Array]:
        content = self.encode_pose(pose)
        codes = self.encode_style(image, parsing)
        return {**self.decode(content, codes), "style_codes": codes, "content": content}


def predicted_parsing(energy: jax.Array, size: tuple[int, int] | None = None) -> jax.Array:
    """Argmax region of an energy map (B, h, w, K) -> int32 (B, H, W), upsampled bilinearly first when
    ``size`` is given (as the training loss compares it with the target parsing)."""
    if size is not None:
        energy = jax.image.resize(energy, (energy.shape[0], *size, energy.shape[-1]), "bilinear")
    return jnp.argmax(energy, axis=-1).astype(jnp.int32)


# ----------------------------------------------------------------------------------------- discriminator
class Discriminator(nn.Module):
    """``ResnetDiscriminator`` as CASD builds it (n_blocks 0, instance norm without affine, no projection):
    reflect pad 3, conv7x7 -> IN -> ReLU, then ``n_downsampling_d`` conv3x3 s2 -> IN -> ReLU, widths doubling.
    The "logits" are the last ReLU features (LSGAN compares them with 0/1). Params ``conv0``, ``conv1``, ...
    (torch ``model.1``, ``model.4``, ``model.7``).
    """

    cfg: Config

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        width = self.cfg.ndf
        x = layers.Conv2d(width, 7, name="conv0")(layers.pad2d(x, 3, "reflect"))
        x = jax.nn.relu(layers.InstanceNorm(affine=False)(x))
        for i in range(self.cfg.n_downsampling_d):
            width *= 2
            x = layers.Conv2d(width, 3, stride=2, padding=1, name=f"conv{i + 1}")(x)
            x = jax.nn.relu(layers.InstanceNorm(affine=False)(x))
        return x
