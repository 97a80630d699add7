"""GFLA networks (Ren et al., CVPR 2020): flow estimator, source/target nets with local attention, ResDiscriminator.

NHWC throughout. Inputs: source image in [-1, 1] (B, H, W, 3), source / target pose heatmaps (B, H, W, 18).
Flows are (B, h, w, 2) in pixels of the map they apply to, [..., 0] = x offset; lists are ordered deepest
attention layer first, as the original returns them. Channel rules, block order and the pre-activation
layout follow shared/reference/gfla.md so that ``ptx.convert.gfla`` can load the official weights.

The flow estimator sits under the top-level parameter key ``flow_net`` both in ``PoseGenerator`` and in the
stage-1 ``PoseFlowNetGenerator``, so the trainer's stage carry-over copies it by path.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ptx import ops
from ptx.nn import blocks, layers

_ACTIVATIONS = {
    "leaky_relu": blocks.leaky_relu_01,  # GFLA's "LeakyReLU" is LeakyReLU(0.1)
    "relu": jax.nn.relu,
}
_ACT_ALIASES = {"leakyrelu": "leaky_relu", "leaky_relu": "leaky_relu", "relu": "relu"}


def _parse_layers(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    if isinstance(value, int):
        value = [value]
    return tuple(sorted({int(v) for v in value}))


def _parse_kernel_sizes(value: Any) -> tuple[tuple[int, int], ...]:
    """'2=5,3=3', {'2': 5, '3': 3} or ((2, 5), (3, 3)) -> ((2, 5), (3, 3))."""
    if isinstance(value, str):
        value = [item.split("=") for item in value.replace(" ", "").split(",") if item]
    elif isinstance(value, Mapping) or hasattr(value, "items"):
        value = list(value.items())
    return tuple(sorted((int(k), int(v)) for k, v in value))


@dataclasses.dataclass(frozen=True)
class Config:
    """GFLA architecture options (defaults: the published DeepFashion model).

    Generator: ``ngf``/``img_f`` (base and maximum width), ``layers`` (down-samplings of the source and
    target nets), ``num_blocks`` (res blocks per decoder stage + 1), ``attn_layer`` (attention layers counted
    from the output; layer L works at 1/2^L resolution), ``kernel_size`` (layer -> local-attention window;
    accepts ``"2=5,3=3"`` or a mapping). Flow estimator: ``flow_ngf``/``flow_img_f``/``flow_layers`` (the
    original hard-codes 32/256/5 inside the generator). Discriminator: ``disc_*``.
    """

    image_nc: int = 3
    structure_nc: int = 18
    output_nc: int = 3
    ngf: int = 64
    img_f: int = 512
    layers: int = 3
    num_blocks: int = 2
    attn_layer: tuple[int, ...] = (2, 3)
    kernel_size: tuple[tuple[int, int], ...] = ((2, 5), (3, 3))
    attn_hidden: int = 128
    flow_ngf: int = 32
    flow_img_f: int = 256
    flow_layers: int = 5
    norm: str = "instance"
    activation: str = "leaky_relu"
    use_spect: bool = False
    disc_ndf: int = 32
    disc_img_f: int = 128
    disc_layers: int = 4
    disc_use_spect: bool = True
    attn_impl: str = "auto"
    dtype: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "attn_layer", _parse_layers(self.attn_layer))
        object.__setattr__(self, "kernel_size", _parse_kernel_sizes(self.kernel_size))
        act = _ACT_ALIASES.get(str(self.activation).lower())
        if act is None:
            raise ValueError(
                f"gfla.Config.activation: expected one of {sorted(_ACTIVATIONS)}, got {self.activation!r}"
            )
        object.__setattr__(self, "activation", act)
        if self.norm not in ("instance", "none"):
            raise ValueError(f"gfla.Config.norm: expected 'instance' or 'none', got {self.norm!r}")
        if not self.attn_layer:
            raise ValueError("gfla.Config.attn_layer: at least one attention layer is needed")
        missing = [layer for layer in self.attn_layer if layer not in self.kernel_sizes]
        if missing:
            raise ValueError(f"gfla.Config.kernel_size has no window for attention layer(s) {missing}")
        if min(self.attn_layer) < 1 or max(self.attn_layer) > self.layers:
            raise ValueError(f"gfla.Config.attn_layer {self.attn_layer} must lie in 1..layers={self.layers}")
        if max(self.attn_layer) > self.flow_layers - 1:
            raise ValueError(
                f"gfla.Config.attn_layer {self.attn_layer}: the flow net (flow_layers={self.flow_layers}) "
                f"only predicts layers 1..{self.flow_layers - 1}"
            )
        if self.num_blocks < 1:
            raise ValueError(f"gfla.Config.num_blocks must be >= 1, got {self.num_blocks}")

    @property
    def kernel_sizes(self) -> dict[int, int]:
        return dict(self.kernel_size)

    @property
    def attn_order(self) -> tuple[int, ...]:
        """Attention layers deepest first: the order of ``flows``, ``masks`` and ``attn`` outputs."""
        return tuple(sorted(self.attn_layer, reverse=True))

    @property
    def compute_dtype(self) -> jnp.dtype | None:
        return None if self.dtype is None else jnp.dtype(self.dtype)

    @property
    def act(self):
        return _ACTIVATIONS[self.activation]

    @property
    def norm_factory(self) -> blocks.NormFactory:
        return blocks.instance_norm if self.norm == "instance" else None

    @property
    def size_multiple(self) -> int:
        """Input H and W must be multiples of this (the flow net's deepest level must be exact)."""
        return 2 ** max(self.flow_layers, self.layers)


VARIANTS: dict[str, Config] = {
    "fashion": Config(),
    "market": Config(attn_layer=(2,), kernel_size=((2, 3),), disc_layers=3),
}


def encoder_widths(ngf: int, img_f: int, n: int) -> list[int]:
    """Widths of block0, encoder0 .. encoder{n-2}: ngf * min(2^i, img_f // ngf) (block0 is always ngf)."""
    return [ngf] + [ngf * min(2**i, img_f // ngf) for i in range(1, n)]


def _block_kwargs(cfg: Config) -> dict:
    return dict(norm=cfg.norm_factory, act=cfg.act, spectral_norm=cfg.use_spect, dtype=cfg.compute_dtype)


def _check_size(cfg: Config, x: jax.Array, what: str) -> None:
    m = cfg.size_multiple
    if x.ndim != 4 or x.shape[1] % m or x.shape[2] % m:
        raise ValueError(f"GFLA {what}: expected NHWC with H and W multiples of {m}, got shape {x.shape}")


class PoseSourceNet(nn.Module):
    """Encoder of the source image; returns features deepest first, then the image itself."""

    cfg: Config

    @nn.compact
    def __call__(self, image: jax.Array) -> list[jax.Array]:
        cfg = self.cfg
        widths = encoder_widths(cfg.ngf, cfg.img_f, cfg.layers)
        feats = [image]
        out = image
        for i, width in enumerate(widths):
            name = "block0" if i == 0 else f"encoder{i - 1}"
            out = blocks.EncoderBlock(width, **_block_kwargs(cfg), name=name)(out)
            feats.append(out)
        return feats[::-1]


class PatchPairConv(nn.Module):
    """GFLA's ``fully_connect_layer.0``: a k x k, stride-k conv over the block image of
    ``concat([target blocks at zero flow, source blocks])``, computed without that image.

    Each output pixel sees exactly one k x k block, so the conv splits into the target half (an ordinary
    stride-1 conv over the edge-padded target: zero-flow blocks are shifted copies) plus one matmul of the
    source blocks (B*h*w, k*k*C) with the source half of the kernel. Same ``kernel`` (k, k, 2C, out) and
    ``bias`` as a ``layers.Conv2d`` (so converters are unaffected), ~10x less time on CPU than a strided conv
    over the (k*h, k*w) block image, whose weight gradient XLA:CPU runs especially slowly.
    """

    features: int
    dtype: Any = None

    @nn.compact
    def __call__(self, target: jax.Array, source_blocks: jax.Array) -> jax.Array:
        b, h, w, k, _, c = source_blocks.shape
        c_t = target.shape[-1]
        kernel = self.param("kernel", layers.torch_default_kernel_init, (k, k, c_t + c, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        dtype = self.dtype or target.dtype
        kernel = kernel.astype(dtype)
        lo, hi = k // 2, k - 1 - k // 2
        padded = jnp.pad(target.astype(dtype), ((0, 0), (lo, hi), (lo, hi), (0, 0)), mode="edge")
        from_target = layers.conv2d(padded, kernel[:, :, :c_t], (1, 1), ((0, 0), (0, 0)), (1, 1))
        flat = source_blocks.astype(dtype).reshape(b * h * w, k * k * c)
        from_source = (flat @ kernel[:, :, c_t:].reshape(k * k * c, self.features)).reshape(b, h, w, -1)
        return from_target + from_source + bias.astype(dtype)


class ExtractorAttn(nn.Module):
    """Local attention: a k x k source patch around each flowed position, combined with softmax weights
    predicted from the [target patch, source patch] pair; returns (features, weights (B, h, w, k*k)).

    Params: ``fc1`` (conv k x k, stride k over the patches: torch ``fully_connect_layer.0``), ``fc2`` (1x1,
    torch ``fully_connect_layer.2``).
    """

    kernel_size: int
    hidden: int = 128
    act: Any = blocks.leaky_relu_01
    impl: str = "auto"
    dtype: Any = None

    @nn.compact
    def __call__(self, source: jax.Array, target: jax.Array, flow: jax.Array) -> tuple[jax.Array, jax.Array]:
        k = self.kernel_size
        b, h, w = flow.shape[:3]
        src_patches = ops.extract_blocks(source, flow, k, impl=self.impl)  # (B, h, w, k, k, C)
        hidden = self.act(PatchPairConv(self.hidden, dtype=self.dtype, name="fc1")(target, src_patches))
        logits = layers.Conv2d(k * k, 1, 1, 0, dtype=self.dtype, name="fc2")(hidden)
        weights = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
        taps = src_patches.reshape(b, h, w, k * k, -1)
        out = jnp.einsum("bhwjc,bhwj->bhwc", taps, weights.astype(taps.dtype)) / (k * k)
        return out, weights


class PoseTargetNet(nn.Module):
    """Encodes the target pose, then decodes; before the decoder stage at attention layer L the feature is
    blended with the attention-warped source feature: out * (1 - m) + attn * m."""

    cfg: Config

    @nn.compact
    def __call__(
        self,
        target_pose: jax.Array,
        source_feats: Sequence[jax.Array],
        flows: Sequence[jax.Array],
        masks: Sequence[jax.Array],
    ) -> tuple[jax.Array, list[jax.Array]]:
        cfg = self.cfg
        kw = _block_kwargs(cfg)
        out = target_pose
        for i, width in enumerate(encoder_widths(cfg.ngf, cfg.img_f, cfg.layers)):
            out = blocks.EncoderBlock(width, **kw, name="block0" if i == 0 else f"encoder{i - 1}")(out)
        cap = cfg.img_f // cfg.ngf
        attn_weights, counter = [], 0
        for i in range(cfg.layers):
            layer = cfg.layers - i
            if layer in cfg.attn_layer:
                attn = ExtractorAttn(
                    cfg.kernel_sizes[layer],
                    cfg.attn_hidden,
                    cfg.act,
                    cfg.attn_impl,
                    cfg.compute_dtype,
                    name=f"attn{i}",
                )
                warped, weights = attn(source_feats[i], out, flows[counter])
                m = masks[counter].astype(out.dtype)
                out = out * (1 - m) + warped.astype(out.dtype) * m
                attn_weights.append(weights)
                counter += 1
            width = cfg.ngf * min(2 ** (cfg.layers - i - 2), cap) if i != cfg.layers - 1 else cfg.ngf
            for j in range(cfg.num_blocks - 1):
                out = blocks.ResBlock(**kw, name=f"decoder{i}_res{j}")(out)
            out = blocks.ResBlockDecoder(width, **kw, name=f"decoder{i}_up")(out)
        image = blocks.Output(
            cfg.output_nc, 3, None, cfg.act, cfg.use_spect, cfg.compute_dtype, name="outconv"
        )(out)
        return image, attn_weights


class PoseFlowNet(nn.Module):
    """Flow estimator on concat(source image, source pose, target pose); returns (flows, masks), deepest first."""

    cfg: Config

    @nn.compact
    def __call__(
        self, source: jax.Array, source_pose: jax.Array, target_pose: jax.Array
    ) -> tuple[list[jax.Array], list[jax.Array]]:
        cfg = self.cfg
        kw = _block_kwargs(cfg)
        n, ngf, cap = cfg.flow_layers, cfg.flow_ngf, cfg.flow_img_f // cfg.flow_ngf
        out = jnp.concatenate([source, source_pose, target_pose], axis=-1)
        skips = []
        for i, width in enumerate(encoder_widths(ngf, cfg.flow_img_f, n)):
            out = blocks.EncoderBlock(width, **kw, name="block0" if i == 0 else f"encoder{i - 1}")(out)
            skips.append(out)
        flows, masks = [], []
        conv = functools.partial(layers.Conv2d, kernel_size=3, stride=1, padding=1, dtype=cfg.compute_dtype)
        for i in range(n - min(cfg.attn_layer)):
            width = ngf * min(2 ** (n - i - 2), cap) if i != n - 1 else ngf
            out = blocks.ResBlockDecoder(width, width, **kw, name=f"decoder{i}")(out)
            jump = blocks.Jump(width, 3, None, cfg.act, cfg.use_spect, cfg.compute_dtype, name=f"jump{i}")
            out = out + jump(skips[n - i - 2])
            if n - i - 1 in cfg.attn_layer:
                flows.append(conv(2, name=f"output{i}")(out).astype(jnp.float32))
                masks.append(jax.nn.sigmoid(conv(1, name=f"mask{i}")(out).astype(jnp.float32)))
        return flows, masks


class PoseGenerator(nn.Module):
    """Full GFLA generator: {image (B,H,W,3), flows, masks (lists, deepest first), attn (softmax weights)}.

    ``encode_source`` and ``generate`` split the forward pass so that a source image can be encoded once and
    rendered in many poses (animation); ``__call__`` is both.
    """

    cfg: Config

    def setup(self):
        self.source = PoseSourceNet(self.cfg)
        self.flow_net = PoseFlowNet(self.cfg)
        self.target = PoseTargetNet(self.cfg)

    def encode_source(self, source: jax.Array) -> list[jax.Array]:
        """Source-image features (independent of any pose)."""
        _check_size(self.cfg, source, "PoseGenerator input")
        return self.source(source)

    def generate(
        self, feats: list[jax.Array], source: jax.Array, source_pose: jax.Array, target_pose: jax.Array
    ) -> dict[str, Any]:
        flows, masks = self.flow_net(source, source_pose, target_pose)
        image, attn = self.target(target_pose, feats, flows, masks)
        return {"image": image.astype(jnp.float32), "flows": flows, "masks": masks, "attn": attn}

    def __call__(self, source: jax.Array, source_pose: jax.Array, target_pose: jax.Array) -> dict[str, Any]:
        return self.generate(self.encode_source(source), source, source_pose, target_pose)


class PoseFlowNetGenerator(nn.Module):
    """Stage-1 model: the flow estimator alone, under the same ``flow_net`` key as in ``PoseGenerator``."""

    cfg: Config

    @nn.compact
    def __call__(self, source: jax.Array, source_pose: jax.Array, target_pose: jax.Array) -> dict[str, Any]:
        _check_size(self.cfg, source, "PoseFlowNetGenerator input")
        flows, masks = PoseFlowNet(self.cfg, name="flow_net")(source, source_pose, target_pose)
        return {"flows": flows, "masks": masks}


class ResDiscriminator(nn.Module):
    """Image-only patch discriminator of residual down blocks with spectral norm; raw logits (B, h, w, 1).

    ``update_stats=True`` (training) runs one power iteration per spectral-normed conv and writes the
    ``spectral`` collection (make it mutable); eval uses the stored vectors, as torch does.
    """

    cfg: Config

    @nn.compact
    def __call__(self, image: jax.Array, *, update_stats: bool = False) -> jax.Array:
        cfg = self.cfg
        kw = dict(norm=None, act=cfg.act, spectral_norm=cfg.disc_use_spect, dtype=cfg.compute_dtype)
        widths = encoder_widths(cfg.disc_ndf, cfg.disc_img_f, cfg.disc_layers)
        out = blocks.ResBlockEncoder(widths[0], widths[0], **kw, name="block0")(
            image, update_stats=update_stats
        )
        for i in range(1, cfg.disc_layers):
            block = blocks.ResBlockEncoder(widths[i], widths[i - 1], **kw, name=f"encoder{i - 1}")
            out = block(out, update_stats=update_stats)
        # The final 1x1 conv is spectral-normed whatever use_spect says (as in the original).
        conv = layers.Conv2d(1, 1, 1, 0, spectral_norm=True, dtype=cfg.compute_dtype, name="conv")
        return conv(cfg.act(out), update_stats=update_stats).astype(jnp.float32)
