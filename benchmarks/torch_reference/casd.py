"""CASD training step in plain PyTorch: the "same work" figure beside ptx's in ``benchmarks.compare``.

Our own PyTorch implementation written from the reference card (``shared/reference/casd.md``) and ptx's model
(``ptx.models.casd``), validated against the golden recorded from the original code
(``tests/test_torch_reference_casd.py``):

* :class:`ADGen` -- the generator: ``enc_content``, ``enc_style`` (torchvision-layout VGG19 ``vgg`` + learned
  convs + region pooling), ``dec`` (fc + MLP -> AdaIN blocks, two cross-attention blocks, batch-statistics
  "SPADE" blocks, upsampling, tanh), with the official state-dict names so the golden loads with ``strict=True``.
* :class:`ResnetDiscriminator` (n_blocks 0, no projection) for D_PB and D_PP.
* Losses: L1, VGG19 relu1_2 perceptual L1, LSGAN, AMCE on both energy maps, VGG19 content / Gram style,
  LPIPS-vgg (:class:`LPIPSVgg`, random weights unless loaded), the contextual loss on vgg_conv r32 / r42.
* :func:`torch_reference` -- one ``optimize_parameters`` step (G, then D_PP, then D_PB), Adam per
  ``config.optim``; random weights and one synthetic batch (``benchmarks.common.method_batch``) held inside.

NCHW throughout, as the original; ``ptx.methods.casd.build`` parses the config, so sizes, widths and loss weights
are exactly ptx's. torch is imported here only; ptx itself never needs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch_reference import adam, image_grad_step
from benchmarks.torch_reference.patn import VGGRelu12, gan_loss
from benchmarks.torch_reference.scagan import VGGConv, contextual_loss

VGG19_BLOCKS = (2, 2, 4, 4, 4)  # convs per block; torchvision's features indices follow from these
STYLE_TAPS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
CONTENT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE_LAYERS = ("relu2_2", "relu3_4", "relu4_4", "relu5_2")
CX_LAYERS = ("relu3_2", "relu4_2")
LPIPS_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)


# ================================================================================================ VGG trunks
class VGGFeatures(nn.Sequential):
    """torchvision's ``features`` layout (keys ``N.weight``) with widths as parameters (the golden's narrow VGG19
    loads); ``forward(x, wanted)`` runs up to ``last`` and returns {relu<b>_<i>: activation} for ``wanted``."""

    def __init__(self, widths=(64, 128, 256, 512, 512), last: str | None = None, blocks=VGG19_BLOCKS):
        mods: list[nn.Module] = []
        names: dict[int, str] = {}  # index of a ReLU -> its name
        cin = 3
        for b, (n, width) in enumerate(zip(blocks, widths), start=1):
            for i in range(1, n + 1):
                mods += [nn.Conv2d(cin, width, 3, padding=1), nn.ReLU()]
                names[len(mods) - 1] = f"relu{b}_{i}"
                cin = width
            mods.append(nn.MaxPool2d(2))
        super().__init__(*mods)
        self.relu_names = names
        self.stop = max(k for k, v in names.items() if v == last) if last else len(mods) - 1

    def forward(self, x: torch.Tensor, wanted=()) -> dict[str, torch.Tensor]:
        out = {}
        for idx in range(self.stop + 1):
            x = self[idx](x)
            if self.relu_names.get(idx) in wanted:
                out[self.relu_names[idx]] = x
        return out


# ================================================================================================ generator
class Conv2dBlock(nn.Module):
    """MUNIT's block as CASD uses it: reflect pad, conv (bias), optional norm, optional activation (``.conv``,
    ``.norm``)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0, norm: nn.Module | None = None,
                 act: str = "none"):  # fmt: skip
        super().__init__()
        self.pad = pad
        self.conv = nn.Conv2d(cin, cout, k, stride)
        if norm is not None:
            self.norm = norm
        self.act = act

    def forward(self, x: torch.Tensor, norm_args: tuple = ()) -> torch.Tensor:
        x = self.conv(F.pad(x, (self.pad,) * 4, mode="reflect") if self.pad else x)
        if hasattr(self, "norm"):
            x = self.norm(x, *norm_args)
        return {"none": x, "relu": torch.relu(x), "tanh": torch.tanh(x)}[self.act]


class ContentEncoder(nn.Module):
    """Pre-activation pose encoder: [IN, LReLU(0.1), conv4x4 s2 p1, IN, LReLU, conv3x3 p1] per block (zero
    padding), then IN, LReLU, 1x1 conv to the decoder width (``block0``, ``encoder{i}``, ``model0``)."""

    def __init__(self, cfg):
        super().__init__()
        cin = cfg.pose_nc
        for i, w in enumerate(cfg.content_widths):
            seq = nn.Sequential(
                nn.InstanceNorm2d(cin, affine=True), nn.LeakyReLU(0.1), nn.Conv2d(cin, w, 4, 2, 1),
                nn.InstanceNorm2d(w, affine=True), nn.LeakyReLU(0.1), nn.Conv2d(w, w, 3, 1, 1),
            )  # fmt: skip
            block = nn.Module()
            block.model = seq
            self.add_module("block0" if i == 0 else f"encoder{i - 1}", block)
            cin = w
        self.n = len(cfg.content_widths)
        self.model0 = nn.Sequential(
            nn.InstanceNorm2d(cin, affine=True), nn.LeakyReLU(0.1), nn.Conv2d(cin, cfg.dim, 1)
        )

    def forward(self, pose: torch.Tensor) -> torch.Tensor:
        x = pose
        for i in range(self.n):
            x = getattr(self, "block0" if i == 0 else f"encoder{i - 1}").model(x)
        return self.model0(x)


def region_pool(codes: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) codes, (B, K, H, W) parsing -> (B, K*C, 1, 1) region means, region-major; an empty region
    (after nearest resizing) takes the whole map's mean."""
    mask = (F.interpolate(sem, size=codes.shape[2:], mode="nearest") != 0).to(codes.dtype)
    count = mask.sum((2, 3))  # (B, K)
    sums = torch.einsum("bkhw,bchw->bkc", mask, codes)
    whole = codes.mean((2, 3))[:, None, :].expand_as(sums)
    pooled = torch.where(count[..., None] > 0, sums / count.clamp(min=1)[..., None], whole)
    return pooled.reshape(codes.shape[0], -1, 1, 1)


class StyleEncoder(nn.Module):
    """``VggStyleEncoder``: learned reflect-padded convs interleaved with the frozen VGG19's relu1_1..relu4_1,
    1x1 ``model0``, region pooling. The VGG runs on the raw [-1, 1] image."""

    def __init__(self, cfg):
        super().__init__()
        sw, vw = cfg.style_widths, cfg.vgg_widths
        self.vgg = VGGFeatures(vw, last="relu4_1")
        self.vgg.requires_grad_(False)
        self.conv1 = Conv2dBlock(cfg.image_nc, sw[0], 7, 1, 3, act="relu")
        self.conv2 = Conv2dBlock(sw[0] + vw[0], sw[1], 4, 2, 1, act="relu")
        self.conv3 = Conv2dBlock(sw[1] + vw[1], sw[2], 4, 2, 1, act="relu")
        self.conv4 = Conv2dBlock(sw[2] + vw[2], sw[3], 4, 2, 1, act="relu")
        self.model0 = nn.Sequential(nn.Conv2d(sw[3] + vw[3], cfg.dim, 1))

    def forward(self, image: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        feats = self.vgg(image, STYLE_TAPS)
        x = torch.cat([self.conv1(image), feats["relu1_1"]], 1)
        for conv, tap in ((self.conv2, "relu2_1"), (self.conv3, "relu3_1"), (self.conv4, "relu4_1")):
            x = torch.cat([conv(x), feats[tap]], 1)
        return region_pool(self.model0(x), sem)


class AdaIN(nn.Module):
    """Per-sample per-channel instance norm (biased, eps 1e-5) with given scale / shift; the original's unused
    ``running_mean`` / ``running_var`` buffers are kept for the checkpoint."""

    def __init__(self, c: int):
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def forward(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        y = F.instance_norm(x, eps=1e-5)
        return y * scale[:, :, None, None] + shift[:, :, None, None]


class ResBlockAdaIN(nn.Module):
    """``ResBlock_my``: x + AdaIN(conv(ReLU(AdaIN(conv(x))))) (``model1.0``, ``model2.0``)."""

    def __init__(self, c: int):
        super().__init__()
        self.model1 = nn.Sequential(Conv2dBlock(c, c, 3, 1, 1, norm=AdaIN(c), act="relu"))
        self.model2 = nn.Sequential(Conv2dBlock(c, c, 3, 1, 1, norm=AdaIN(c)))

    def forward(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        s1, b1, s2, b2 = (p[:, i * c : (i + 1) * c] for i in range(4))
        y = self.model1[0](x, (s1, b1))
        return x + self.model2[0](y, (s2, b2))


def batch_stat_norm(x: torch.Tensor, group: int, eps: float = 1e-6) -> torch.Tensor:
    """(x - mean) / (var + eps), mean and unbiased var over (samples of a group, H, W) per channel."""
    b = x.shape[0]
    k = b if not group else group
    if b % k:
        raise ValueError(f"batch_stat_norm: batch {b} is not a multiple of the statistics group {k}")
    g = x.reshape(b // k, k, *x.shape[1:])
    mean = g.mean((1, 3, 4), keepdim=True)
    var = g.var((1, 3, 4), keepdim=True, unbiased=True)
    return ((g - mean) / (var + eps)).reshape(x.shape)


class ResBlockSpade(nn.Module):
    """``ResBlock_myDFNM``: x + N(conv(ReLU(N(conv(x); s1))); s2), s_i = conv(ReLU(IN(conv(m)))) (``model1/2``,
    ``models1/2``)."""

    def __init__(self, c: int, group: int):
        super().__init__()
        self.group = group
        self.model1 = nn.Sequential(Conv2dBlock(c, c, 3, 1, 1))
        self.model2 = nn.Sequential(Conv2dBlock(c, c, 3, 1, 1))
        for i in (1, 2):
            self.add_module(
                f"models{i}", nn.Sequential(Conv2dBlock(c, c, 3, 1, 1), Conv2dBlock(c, 2 * c, 3, 1, 1))
            )

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]

        def style(seq: nn.Sequential) -> torch.Tensor:
            return seq[1](torch.relu(F.instance_norm(seq[0](m), eps=1e-5)))

        def modulate(y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            return batch_stat_norm(y, self.group) * (1 + s[:, :c]) + s[:, c:]

        s1, s2 = style(self.models1), style(self.models2)
        y = torch.relu(modulate(self.model1[0](x), s1))
        return x + modulate(self.model2[0](y), s2)


class ILN(nn.Module):
    """rho * IN + (1 - rho) * LN, then * gamma + beta; IN over ``in_dims``, LN over channels (dim 1); unbiased
    variance, eps 1e-5 inside the root. ``shape`` (1, C, 1[, 1]) as the original's ILNKVT / ILNQT."""

    def __init__(self, shape: tuple[int, ...], in_dims: tuple[int, ...]):
        super().__init__()
        self.in_dims = in_dims
        self.rho = nn.Parameter(torch.zeros(shape))
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def norm(dims):
            return (x - x.mean(dims, keepdim=True)) / torch.sqrt(
                x.var(dims, keepdim=True, unbiased=True) + 1e-5
            )

        return (self.rho * norm(self.in_dims) + (1 - self.rho) * norm((1,))) * self.gamma + self.beta


class FFN(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact erf GELU; dropout p = 0


class LinearBlock(nn.Module):
    def __init__(self, cin: int, cout: int, relu: bool):
        super().__init__()
        self.fc, self.relu = nn.Linear(cin, cout), relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x)) if self.relu else self.fc(x)


class MunitLayerNorm(nn.Module):
    """Per sample over (C, H, W): (x - mean) / (unbiased std + 1e-5), then per-channel gamma / beta."""

    def __init__(self, c: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.rand(c))
        self.beta = nn.Parameter(torch.zeros(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        mean, std = flat.mean(1), flat.std(1, unbiased=True)
        y = (x - mean[:, None, None, None]) / (std[:, None, None, None] + 1e-5)
        return y * self.gamma[None, :, None, None] + self.beta[None, :, None, None]


class Decoder(nn.Module):
    """MLP -> AdaIN blocks, cross-attention blocks 3 and 4, SPADE blocks from the content, upsampling, tanh."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = c = cfg
        d, k = cfg.dim, cfg.regions
        self.fc = LinearBlock(k * d, k * d, True)
        widths = [k * d] + [cfg.mlp_dim] * (cfg.mlp_layers - 1) + [cfg.n_res * 4 * d]
        mlp = nn.Module()
        mlp.model = nn.Sequential(*(LinearBlock(a, b, i < cfg.mlp_layers - 1)
                                    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))))  # fmt: skip
        self.mlp = mlp
        for i in range(c.n_adain):
            self.add_module(f"model0_{i}", nn.Sequential(ResBlockAdaIN(d)))
        for n in (3, 4):
            for g in ("1", "2", "3", "style_sa"):
                setattr(self, f"gamma{n}_{g}", nn.Parameter(torch.zeros(1)))
            for name in (f"value{n}_conv_sa", f"query{n}_conv", f"key{n}_conv", f"value{n}_conv"):
                self.add_module(name, nn.Conv2d(d, d, 1))
            self.add_module(f"query{n}_conv_0", nn.Conv2d(d, k, 1))
            self.add_module(f"LN_{n}_style", ILN((1, d, 1), (2,)))
            self.add_module(f"LN_{n}_pose", ILN((1, d, 1, 1), (2, 3)))
            self.add_module(f"LN_{n}_pose_0", ILN((1, d, 1, 1), (2, 3)))
            self.add_module(f"FFN{n}_1", FFN(d))
        for i in range(c.n_spade):
            self.add_module(f"model0_{c.n_adain + i}", nn.Sequential(ResBlockSpade(d, cfg.spade_group_size)))
        ups, w = [], d
        for _ in range(cfg.n_upsample):
            ups += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                Conv2dBlock(w, w // 2, 5, 1, 2, MunitLayerNorm(w // 2), "relu"),
            ]
            w //= 2
        self.model1 = nn.Sequential(*ups)
        self.model2 = nn.Sequential(Conv2dBlock(w, cfg.image_nc, 7, 1, 3, act="tanh"))

    @staticmethod
    def _conv1d(conv: nn.Conv2d, s: torch.Tensor) -> torch.Tensor:
        return conv(s[..., None])[..., 0]  # a 1x1 conv over (B, C, K)

    def attention(self, n: int, x, x0, style) -> tuple[torch.Tensor, torch.Tensor]:
        """``styleatt`` block n: returns (features, energy (B, K, h, w))."""
        g = lambda name: getattr(self, name)  # noqa: E731
        b, c, h, w = x.shape
        k = self.cfg.regions
        xn, x0n = g(f"LN_{n}_pose")(x), g(f"LN_{n}_pose_0")(x0)
        s = g(f"LN_{n}_style")(style.reshape(b, k, c).permute(0, 2, 1))  # (B, C, K)
        a = torch.softmax(s.transpose(1, 2) @ s, dim=1) + 1e-8
        a = a / a.sum(2, keepdim=True)
        sk = s.transpose(1, 2) + g(f"gamma{n}_style_sa") * (
            a @ self._conv1d(g(f"value{n}_conv_sa"), s).transpose(1, 2)
        )
        s = sk.transpose(1, 2)
        q = g(f"query{n}_conv")(xn).reshape(b, c, h * w)
        key = self._conv1d(g(f"key{n}_conv"), s).transpose(1, 2).detach()  # (B, K, C)
        v = self._conv1d(g(f"value{n}_conv"), s)  # (B, C, K)
        e = g(f"query{n}_conv_0")(x0n).reshape(b, k, h * w) + key @ q
        att = torch.softmax(e, dim=2) + 1e-8
        att = att / att.sum(1, keepdim=True)
        out = g(f"gamma{n}_1") * (v @ att).reshape(b, c, h, w) + xn
        out = out + g(f"gamma{n}_3") * g(f"FFN{n}_1")(out)
        return out, e.reshape(b, k, h, w)

    def forward(self, content: torch.Tensor, style: torch.Tensor):
        cfg, d = self.cfg, self.cfg.dim
        p = self.mlp.model(self.fc(style.flatten(1)))
        x = content
        for i in range(cfg.n_adain):
            x = getattr(self, f"model0_{i}")[0](x, p[:, 4 * d * i : 4 * d * (i + 1)])
        energies = []
        for n in (3, 4):
            x, e = self.attention(n, x, content, style)
            energies.append(e)
        y = content
        for i in range(cfg.n_spade):
            y = getattr(self, f"model0_{cfg.n_adain + i}")[0](y, x)
        return self.model2(self.model1(y)), energies


class ADGen(nn.Module):
    """``ADGen.forward(img_A pose (B, 30, H, W), img_B image, sem_B parsing)`` -> (image, [energy3, energy4])."""

    def __init__(self, cfg):
        super().__init__()
        self.enc_style = StyleEncoder(cfg)
        self.enc_content = ContentEncoder(cfg)
        self.dec = Decoder(cfg)

    def forward(self, pose: torch.Tensor, image: torch.Tensor, sem: torch.Tensor, trace: dict | None = None):
        style = self.enc_style(image, sem)
        content = self.enc_content(pose)
        if trace is not None:
            trace["style_codes"] = style
        return self.dec(content, style)


def init_generator(net: nn.Module) -> None:
    """``init_weights(net, 'normal')``: conv / linear weights N(0, 0.02), biases keep PyTorch's default."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)


class ResnetDiscriminator(nn.Module):
    """reflect pad 3, conv7x7, IN, ReLU, then ``n_downsampling_d`` x (conv3x3 s2 p1, IN, ReLU); the ReLU
    features are the LSGAN "logits" (``model.1``, ``model.4``, ...). PyTorch default init."""

    def __init__(self, cfg, in_ch: int):
        super().__init__()
        w = cfg.ndf
        mods: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_ch, w, 7),
            nn.InstanceNorm2d(w),
            nn.ReLU(),
        ]
        for _ in range(cfg.n_downsampling_d):
            mods += [nn.Conv2d(w, 2 * w, 3, 2, 1), nn.InstanceNorm2d(2 * w), nn.ReLU()]
            w *= 2
        self.model = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# ================================================================================================= losses
class LPIPSVgg(nn.Module):
    """LPIPS v0.1 with a VGG16 trunk on [-1, 1] images: shift / scale, unit channel vectors at five taps, squared
    difference weighted by a 1x1 ``lin`` per tap, spatial mean, summed -> (B,). Random trunk, lin weights 1 (the
    benchmark's work does not depend on the values; tests load ptx's)."""

    def __init__(self):
        super().__init__()
        self.net = VGGFeatures(last="relu5_3", blocks=(2, 2, 3, 3, 3))
        self.lins = nn.ParameterList([nn.Parameter(torch.ones(c)) for c in (64, 128, 256, 512, 512)])
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        n = x0.shape[0]
        feats = self.net((torch.cat([x0, x1]) - self.shift) / self.scale, LPIPS_TAPS)
        total = 0.0
        for tap, lin in zip(LPIPS_TAPS, self.lins):
            f = feats[tap]
            f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + torch.einsum("bchw,c->bhw", (f[:n] - f[n:]).pow(2), lin).mean((1, 2))
        return total


def gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def amce(energy: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of an energy map bilinearly upsampled (align_corners False) to the labels' size."""
    return F.cross_entropy(F.interpolate(energy, size=labels.shape[-2:], mode="bilinear"), labels)


# ========================================================================================== training step
class Trainer:
    """G, D_PB, D_PP, the frozen loss networks and three Adams, stepping as the original's
    ``optimize_parameters``: G forward, G update, D_PP update, D_PB update (detached fake)."""

    def __init__(self, cfg, weights: Mapping[str, float], optim: Mapping[str, Mapping]):
        self.cfg, self.w = cfg, dict(weights)
        self.gen = ADGen(cfg)
        init_generator(self.gen)
        self.disc = {
            "disc_image": ResnetDiscriminator(cfg, 2 * cfg.image_nc),
            "disc_pose": ResnetDiscriminator(cfg, cfg.image_nc + cfg.pose_nc),
        }
        w = self.w
        self.vgg_perceptual = VGGRelu12().requires_grad_(False) if w.get("perceptual") else None
        self.vgg = (
            VGGFeatures(last="relu5_2").requires_grad_(False) if w.get("content") or w.get("style") else None
        )
        self.vgg_cx = VGGConv() if w.get("contextual") else None
        self.lpips = LPIPSVgg() if w.get("lpips") else None
        if (
            self.vgg_perceptual is not None and self.vgg is not None
        ):  # one VGG19 file feeds both in the original
            self.vgg_perceptual.features.load_state_dict(
                {k: v for k, v in self.vgg.state_dict().items() if k.split(".")[0] in ("0", "2")}
            )
        trainable = [p for p in self.gen.parameters() if p.requires_grad]  # the style VGG19 is frozen
        self.optims = {"gen": adam(trainable, optim["gen"], method="CASD", default_lr=1e-3)}
        self.optims |= {
            k: adam(d.parameters(), optim[k], method="CASD", default_lr=1e-3) for k, d in self.disc.items()
        }

    def generate(self, x: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.gen(x["pose"], x["source"], x["source_regions"])

    def critic_input(self, player: str, image: torch.Tensor, x: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([image, x["source"] if player == "disc_image" else x["pose"]], 1)

    def generator_terms(self, x, fake: torch.Tensor, energies) -> dict[str, torch.Tensor]:
        """Unweighted G terms with a non-zero weight (names as ``ptx.methods.casd.TERMS``)."""
        w, real, terms = self.w, x["target"], {}
        if w.get("l1"):
            terms["l1"] = (fake - real).abs().mean()
        if self.vgg_perceptual is not None:
            with torch.no_grad():
                ref = self.vgg_perceptual(real)
            terms["perceptual"] = (self.vgg_perceptual(fake) - ref).abs().mean()
        if self.vgg is not None:
            wanted = CONTENT_LAYERS + STYLE_LAYERS
            with torch.no_grad():
                ref = self.vgg(real, wanted)
            out = self.vgg(fake, wanted)
            if w.get("content"):
                terms["content"] = sum((out[n] - ref[n]).abs().mean() for n in CONTENT_LAYERS)
            if w.get("style"):
                terms["style"] = sum((gram(out[n]) - gram(ref[n])).abs().mean() for n in STYLE_LAYERS)
        if w.get("amce"):
            labels = x["target_regions"].argmax(1)
            terms["amce"] = sum(amce(e, labels) for e in energies)
        if self.lpips is not None:
            terms["lpips"] = self.lpips(fake, real).mean()
        if self.vgg_cx is not None:
            with torch.no_grad():
                ref = self.vgg_cx(real)
            out = self.vgg_cx(fake)
            terms["contextual"] = sum(contextual_loss(out[n], ref[n]) for n in CX_LAYERS)
        if w.get("gan"):
            adv = [
                gan_loss(self.disc[p](self.critic_input(p, fake, x)), True, "lsgan")
                for p in ("disc_pose", "disc_image")
            ]
            terms["gan"] = 0.5 * (adv[0] + adv[1])
        return terms

    def generator_loss(self, x, fake: torch.Tensor, energies) -> torch.Tensor:
        return sum(self.w[k] * v for k, v in self.generator_terms(x, fake, energies).items())

    def disc_loss(self, player: str, x, fake: torch.Tensor) -> torch.Tensor:
        """gan * 0.5 * (MSE(D(real), 1) + MSE(D(fake.detach()), 0)); no image pool."""
        d = self.disc[player]
        real = gan_loss(d(self.critic_input(player, x["target"], x)), True, "lsgan")
        fake = gan_loss(d(self.critic_input(player, fake.detach(), x)), False, "lsgan")
        return self.w.get("gan", 0.0) * 0.5 * (real + fake)

    def step(self, x: Mapping[str, torch.Tensor]) -> None:
        fake, energies = self.generate(x)
        self.optims["gen"].zero_grad(set_to_none=True)
        self.generator_loss(x, fake, energies).backward()
        self.optims["gen"].step()
        if not self.w.get("gan"):
            return
        for player in ("disc_image", "disc_pose"):  # D_PP, then D_PB
            self.optims[player].zero_grad(set_to_none=True)
            self.disc_loss(player, x, fake).backward()
            self.optims[player].step()


# ================================================================================================= inputs
def torch_batch(method: Any, batch: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Network inputs as ptx's recipe builds them (``CASD.inputs``: 30 pose channels, merged one-hot regions),
    made once on the host and laid out NCHW."""
    x = method.inputs(batch)

    def nchw(a) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32).transpose(0, 3, 1, 2)))

    return {k: nchw(v) for k, v in x.items()}


def build_trainer(config, batch_size: int, seed: int = 0) -> tuple[Trainer, dict[str, torch.Tensor]]:
    """(Trainer of ``config`` with random weights, one synthetic batch through ``method_batch``); the config is
    parsed by ``ptx.methods.casd.build``, so widths, sizes and loss weights are exactly ptx's."""
    from benchmarks.common import method_batch
    from ptx.methods import casd as method_lib

    method = method_lib.build(config)
    torch.manual_seed(seed)
    trainer = Trainer(method.cfg, method.weights, config.optim)
    return trainer, torch_batch(method, method_batch(method, config.data, batch_size, seed))


def torch_reference(config, batch_size: int, stage: str | None = None) -> Callable[[], None]:
    """One CASD optimisation step (G, D_PP, D_PB) of ``config`` at ``batch_size`` in PyTorch (CPU, all cores)."""
    if stage not in (None, "train"):
        raise ValueError(f"CASD has one stage 'train', not {stage!r}")
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    trainer, batch = build_trainer(config, batch_size, int(config.get("seed", 0)))

    def step() -> None:
        trainer.step(batch)

    step.networks = {"gen": trainer.gen, **trainer.disc}
    return step


def generator_step(config, batch_size: int) -> Callable[[], None]:
    """The generator forward in train mode and the gradient of mean|image| for every trainable generator
    parameter (no optimizer): the work ``benchmarks.generator`` times for ptx's ``predict``, whose SPADE
    statistics are ``predict_spade_stats`` ("sample": per sample, the same as the batch's at batch 1)."""
    import dataclasses

    from benchmarks.common import method_batch
    from ptx.methods import casd as method_lib

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    method = method_lib.build(config)
    seed = int(config.get("seed", 0))
    torch.manual_seed(seed)
    gen = ADGen(dataclasses.replace(method.cfg, spade_stats=method.options.predict_spade_stats))
    init_generator(gen)
    x = torch_batch(method, method_batch(method, config.data, batch_size, seed))

    return image_grad_step(gen, lambda: gen(x["pose"], x["source"], x["source_regions"])[0])
