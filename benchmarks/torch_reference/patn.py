"""PATN / pSSIM training step in plain PyTorch: the "same work" figure beside ptx's in ``benchmarks.train_step``.

Our own PyTorch implementation written from the reference cards (``shared/reference/patn.md``, ``pssim.md``),
validated against the goldens recorded from the original code (``tests/test_torch_reference_patn.py``):

* :class:`PATNetwork` -- generator with the original's module tree (``model.stream1_down``,
  ``model.stream2_down``, ``model.att.<k>.conv_block_stream{1,2}``, ``model.stream1_up``), so the goldens'
  ``param/*`` arrays and official checkpoints load with ``load_state_dict(strict=True)``.
* :class:`ResnetDiscriminator` -- D_PB (image + target pose maps) and D_PP (image + source image), ``model.<idx>``.
* :class:`VGGRelu12` -- torchvision VGG19 ``features[0..3]`` (relu1_2) for the perceptual L1.
* Losses: :func:`gan_loss` (LSGAN / BCE on sigmoid outputs), :func:`ssim_value` (valid Gaussian-window SSIM),
  :func:`part_ssim` (``FPart_BSSIM``), :func:`part_masks`, :func:`gram_style`.
* :func:`torch_reference` -- one full ``optimize_parameters`` step (G forward, G update with every loss term
  whose ``config.loss`` weight is non-zero, then D_PP and D_PB updates with their image pools), Adam per
  ``config.optim``; random weights (random VGG too) and one synthetic batch held inside.

NCHW throughout, as the original. torch is imported here only; ptx itself never needs it.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch_reference import adam, image_grad_step

NUM_KEYPOINTS = 18
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
C1 = 0.01**2  # SSIM constants at data range 1
C2 = 0.03**2
# pSSIM parts (pssim.md section 3): joints (two endpoints, or shoulders + hips for the torso) and sigma_perp.
PSSIM_PARTS: tuple[tuple[tuple[int, ...], float], ...] = (
    ((0, 1), 9.0),
    ((2, 3), 9.0),
    ((3, 4), 9.0),
    ((5, 6), 9.0),
    ((6, 7), 9.0),
    ((8, 9), 9.0),
    ((9, 10), 9.0),
    ((11, 12), 9.0),
    ((12, 13), 9.0),
    ((2, 5, 8, 11), 13.0),
)


# ================================================================================================ networks
def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, eps=1e-5)
    if kind == "batch":
        return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)
    raise ValueError(f"norm {kind!r}: expected 'instance' or 'batch'")


def _pad(padding_type: str, amount: int) -> list[nn.Module]:
    """Explicit padding layer (an empty list for zero padding, which the conv does itself)."""
    if padding_type == "reflect":
        return [nn.ReflectionPad2d(amount)]
    if padding_type == "replicate":
        return [nn.ReplicationPad2d(amount)]
    if padding_type == "zero":
        return []
    raise ValueError(f"padding_type {padding_type!r}: expected reflect, replicate or zero")


def conv_block(
    dim_in: int,
    hidden: int,
    dim_out: int,
    *,
    norm: str,
    padding_type: str,
    use_dropout: bool,
    use_bias: bool,
    last_norm: bool = True,
) -> nn.Sequential:
    """pad, conv3, norm, ReLU, [Dropout 0.5], pad, conv3, [norm]: body of PATBlock streams and ResnetBlock.

    Layer positions (and so state-dict indices) follow the original: the pads are modules, zero padding is not.
    """
    p = 1 if padding_type == "zero" else 0
    layers: list[nn.Module] = [*_pad(padding_type, 1), nn.Conv2d(dim_in, hidden, 3, padding=p, bias=use_bias)]
    layers += [_norm(norm, hidden), nn.ReLU(True)]
    if use_dropout:
        layers.append(nn.Dropout(0.5))
    layers += [*_pad(padding_type, 1), nn.Conv2d(hidden, dim_out, 3, padding=p, bias=use_bias)]
    if last_norm:
        layers.append(_norm(norm, dim_out))
    return nn.Sequential(*layers)


def encoder_layers(in_ch: int, widths: Sequence[int], norm: str, use_bias: bool) -> list[nn.Module]:
    """ReflectionPad(3) + 7x7 conv, then stride-2 3x3 convs (zero pad 1); each conv + norm + ReLU."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(3)]
    prev = in_ch
    for i, width in enumerate(widths):
        if i == 0:
            conv = nn.Conv2d(prev, width, 7, bias=use_bias)
        else:
            conv = nn.Conv2d(prev, width, 3, stride=2, padding=1, bias=use_bias)
        layers += [conv, _norm(norm, width), nn.ReLU(True)]
        prev = width
    return layers


class PATBlock(nn.Module):
    """Image features += sigmoid(pose branch) * image branch; next pose input = cat(pose branch, new image)."""

    def __init__(self, dim: int, first: bool, **block):
        super().__init__()
        self.conv_block_stream1 = conv_block(dim, dim, dim, **block)
        pose_in = dim if first else 2 * dim
        self.conv_block_stream2 = conv_block(pose_in, pose_in, dim, last_norm=False, **block)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s2 = self.conv_block_stream2(x2)
        att = torch.sigmoid(s2)
        x1 = x1 + att * self.conv_block_stream1(x1)
        return x1, torch.cat([s2, x1], dim=1), att


class PATNModel(nn.Module):
    """Two encoders, ``n_blocks`` PATBlocks, decoder of the image stream."""

    def __init__(self, cfg):
        super().__init__()
        widths = [cfg.ngf * 2**i for i in range(cfg.n_downsampling + 1)]
        bias = cfg.norm == "instance"
        self.stream1_down = nn.Sequential(*encoder_layers(cfg.image_nc, widths, cfg.norm, bias))
        self.stream2_down = nn.Sequential(*encoder_layers(cfg.pose_nc, widths, cfg.norm, bias))
        block = dict(norm=cfg.norm, padding_type=cfg.padding_type, use_dropout=cfg.use_dropout, use_bias=bias)
        self.att = nn.ModuleList(PATBlock(widths[-1], k == 0, **block) for k in range(cfg.n_blocks))
        up: list[nn.Module] = []
        for i in range(cfg.n_downsampling, 0, -1):
            up.append(
                nn.ConvTranspose2d(widths[i], widths[i - 1], 3, 2, padding=1, output_padding=1, bias=bias)
            )
            up += [_norm(cfg.norm, widths[i - 1]), nn.ReLU(True)]
        up += [nn.ReflectionPad2d(3), nn.Conv2d(cfg.ngf, cfg.output_nc, 7), nn.Tanh()]
        self.stream1_up = nn.Sequential(*up)

    def forward(self, image: torch.Tensor, pose: torch.Tensor, trace: dict | None = None) -> torch.Tensor:
        x1, x2 = self.stream1_down(image), self.stream2_down(pose)
        if trace is not None:
            trace.update(stream1_down=x1, stream2_down=x2)
        for k, block in enumerate(self.att):
            x1, x2, att = block(x1, x2)
            if trace is not None:
                trace[f"block{k}_att"], trace[f"block{k}_x1"] = att, x1
        if trace is not None:
            trace["last_x2_cat"] = x2
        return self.stream1_up(x1)


class PATNetwork(nn.Module):
    """The generator; ``forward(image, pose)`` with pose = cat(source maps, target maps) on channels."""

    def __init__(self, cfg):
        super().__init__()
        self.model = PATNModel(cfg)

    def forward(self, image: torch.Tensor, pose: torch.Tensor, trace: dict | None = None) -> torch.Tensor:
        return self.model(image, pose, trace)


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, **block):
        super().__init__()
        self.conv_block = conv_block(dim, dim, dim, **block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetDiscriminator(nn.Module):
    """Encoder + residual blocks -> (B, 4 ndf, H/4, W/4) map; a Sigmoid at the end for the BCE GAN."""

    def __init__(self, cfg, in_ch: int, use_sigmoid: bool):
        super().__init__()
        widths = [cfg.ndf * 2 ** min(i, 2) for i in range(cfg.n_downsampling_d + 1)]
        bias = cfg.norm == "instance"
        layers = encoder_layers(in_ch, widths, cfg.norm, bias)
        block = dict(norm=cfg.norm, padding_type="reflect", use_dropout=cfg.use_dropout_d, use_bias=bias)
        layers += [ResnetBlock(widths[-1], **block) for _ in range(cfg.n_blocks_d)]
        if use_sigmoid:
            layers.append(nn.Sigmoid())
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_generator(net: nn.Module) -> None:
    """init_type 'normal' of the original, G only: conv / transposed-conv weights N(0, 0.02), BN weight
    N(1, 0.02) and bias 0; conv biases keep PyTorch's default."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class VGGRelu12(nn.Module):
    """VGG19 ``features[0..3]`` (conv1_1, ReLU, conv1_2, ReLU) on [-1, 1] images mapped to ImageNet input.

    ``features.0`` / ``features.2`` keys, so torchvision's weights load; random (torch default) otherwise.
    Its weights keep ``requires_grad`` as in the original (no optimizer holds them, but every G backward
    computes their gradients: same work).
    """

    def __init__(self):
        super().__init__()
        convs = (nn.Conv2d(3, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1))
        self.features = nn.Sequential(convs[0], nn.ReLU(), convs[1], nn.ReLU())
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(((x + 1) / 2 - self.mean) / self.std)


# ================================================================================================== losses
def gan_loss(pred: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    """``GANLoss``: MSE against 1/0 (lsgan) or BCE of sigmoid outputs (nsgan, market's ``--no_lsgan``)."""
    target = torch.full_like(pred, 1.0 if real else 0.0)
    if mode == "lsgan":
        return F.mse_loss(pred, target)
    if mode == "nsgan":
        return F.binary_cross_entropy(pred, target)
    raise ValueError(f"gan_mode {mode!r}: expected 'lsgan' or 'nsgan'")


def gaussian_window(win_size: int, sigma: float, dtype=torch.float32) -> torch.Tensor:
    t = torch.arange(win_size, dtype=torch.float64) - win_size // 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)


def _blur(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable depthwise valid filter: along the width, then along the height."""
    c = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def ssim_map(x: torch.Tensor, y: torch.Tensor, win_size: int, sigma: float) -> torch.Tensor:
    """Windowed SSIM map (data range 1, no padding) of NCHW images in [0, 1]."""
    g = gaussian_window(win_size, sigma, x.dtype).to(x.device)
    mx, my = _blur(x, g), _blur(y, g)
    vx = _blur(x * x, g) - mx * mx
    vy = _blur(y * y, g) - my * my
    vxy = _blur(x * y, g) - mx * my
    return ((2 * mx * my + C1) / (mx * mx + my * my + C1)) * ((2 * vxy + C2) / (vx + vy + C2))


def ssim_value(x: torch.Tensor, y: torch.Tensor, win_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The pSSIM study's ``SSIM`` loss module: [-1, 1] images -> [0, 1], mean of the valid SSIM map."""
    return ssim_map((x + 1) / 2, (y + 1) / 2, win_size, sigma).mean()


def foreground_ssim(x: torch.Tensor, y: torch.Tensor, part_mask: torch.Tensor) -> torch.Tensor:
    """(B,) SSIM of whole-image mask-weighted moments, mean over 3 channels x 10 parts."""
    x01, y01 = (x + 1) / 2, (y + 1) / 2
    m = part_mask[:, 1:]
    w = m / (m.sum(dim=(2, 3), keepdim=True) + 1e-6)  # (B, P, H, W)

    def moment(a: torch.Tensor) -> torch.Tensor:  # (B, C, P)
        return torch.einsum("bchw,bphw->bcp", a, w)

    mx, my = moment(x01), moment(y01)
    vx, vy = moment(x01 * x01) - mx * mx, moment(y01 * y01) - my * my
    vxy = moment(x01 * y01) - mx * my
    s = ((2 * mx * my + C1) / (mx * mx + my * my + C1)) * ((2 * vxy + C2) / (vx + vy + C2))
    return s.mean(dim=(1, 2))


def background_ssim(
    x: torch.Tensor, y: torch.Tensor, part_mask: torch.Tensor, win_size: int, sigma: float
) -> torch.Tensor:
    """(B,) windowed SSIM of the [0, 1] images times the soft background mask (channel 0)."""
    bg = part_mask[:, :1]
    return ssim_map((x + 1) / 2 * bg, (y + 1) / 2 * bg, win_size, sigma).mean(dim=(1, 2, 3))


def part_ssim(
    x: torch.Tensor, y: torch.Tensor, part_mask: torch.Tensor, win_size: int = 7, sigma: float = 0.8
) -> torch.Tensor:
    """``FPart_BSSIM`` (size_average): (mean foreground term + mean background term) / 2."""
    fg = foreground_ssim(x, y, part_mask)
    bg = background_ssim(x, y, part_mask, win_size, sigma)
    return 0.5 * (fg.mean() + bg.mean())


def part_masks(keypoints: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """(B, 18, 2) (y, x) keypoints, -1 missing -> (B, 11, H, W) float32: background, then the 10 parts.

    Each part: Gaussian centred between its endpoints, variance max(5, length^2 / 1.2) along the limb and
    sigma_perp^2 across, peak-normalised; any missing joint leaves the part all zero. Computed in float64.
    """
    kps = np.asarray(keypoints, np.float64)
    h, w = int(size[0]), int(size[1])
    rows = np.arange(h, dtype=np.float64)[:, None]
    cols = np.arange(w, dtype=np.float64)[None, :]
    out = np.zeros((kps.shape[0], 1 + len(PSSIM_PARTS), h, w))
    for b, pts in enumerate(kps):
        for p, (joints, sigma_perp) in enumerate(PSSIM_PARTS, start=1):
            if np.any(pts[list(joints)] == -1):
                continue
            if len(joints) == 2:
                p0, p1 = pts[joints[0]], pts[joints[1]]
            else:
                p0, p1 = (pts[joints[0]] + pts[joints[1]]) / 2, (pts[joints[2]] + pts[joints[3]]) / 2
            out[b, p] = _limb_gaussian(p0, p1, sigma_perp, rows, cols)
        out[b, 0] = 1.0 - out[b, 1:].max(axis=0)
    return torch.from_numpy(out.astype(np.float32))


def _limb_gaussian(p0: np.ndarray, p1: np.ndarray, sigma_perp: float, rows, cols) -> np.ndarray:
    (y0, x0), (y1, x1) = p0, p1
    var_par = max(5.0, ((y1 - y0) ** 2 + (x1 - x0) ** 2) / 1.2)
    var_perp = sigma_perp**2
    theta = math.atan2(x1 - x0, y0 - y1)
    cos2, sin2, sin2t = math.cos(theta) ** 2, math.sin(theta) ** 2, math.sin(2 * theta)
    a = cos2 / (2 * var_par) + sin2 / (2 * var_perp)
    b = -sin2t / (4 * var_par) + sin2t / (4 * var_perp)
    c = sin2 / (2 * var_par) + cos2 / (2 * var_perp)
    dr, dc = rows - (y0 + y1) / 2, cols - (x0 + x1) / 2
    g = np.exp(-(a * dr**2 + 2 * b * dr * dc + c * dc**2))
    return g / (g.max() + 1e-6)


def gram_style(fx: torch.Tensor, fy: torch.Tensor) -> torch.Tensor:
    """``Style``: mean |G(fx) - G(fy)|, G = F F^T / (h w c) per image."""

    def gram(f: torch.Tensor) -> torch.Tensor:
        b, c, h, w = f.shape
        f = f.reshape(b, c, h * w)
        return f @ f.transpose(1, 2) / (c * h * w)

    return (gram(fx) - gram(fy)).abs().mean()


def heatmaps(keypoints: np.ndarray, size: tuple[int, int], sigma: float = 6.0) -> torch.Tensor:
    """(B, 18, 2) (y, x) -> (B, 18, H, W) Gaussian maps, peak 1; a missing joint gives a zero channel."""
    kps = torch.as_tensor(np.asarray(keypoints), dtype=torch.float32)
    rows = torch.arange(size[0], dtype=torch.float32).view(1, 1, -1, 1)
    cols = torch.arange(size[1], dtype=torch.float32).view(1, 1, 1, -1)
    y, x = kps[..., 0, None, None], kps[..., 1, None, None]
    maps = torch.exp(-((rows - y) ** 2 + (cols - x) ** 2) / (2 * sigma**2))
    return maps * (kps != -1).all(dim=-1)[..., None, None]


class ImagePool:
    """pix2pix image pool: fill first; then each image is, with p 0.5, swapped for a random stored one."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.random() > 0.5:
                k = random.randrange(self.size)
                out.append(self.images[k].clone())
                self.images[k] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


# ============================================================================================ training step
class Trainer:
    """The original's ``TransferModel`` training side: G, D_PB, D_PP, VGG front, three Adams, the pools."""

    def __init__(self, cfg, weights: Mapping[str, float], options, optim: Mapping[str, Mapping]):
        self.cfg, self.w, self.opt = cfg, dict(weights), options
        sigmoid = options.gan_mode == "nsgan"
        self.gen = PATNetwork(cfg)
        init_generator(self.gen)
        self.d_pb = ResnetDiscriminator(cfg, cfg.image_nc + cfg.pose_nc // 2, sigmoid)
        self.d_pp = ResnetDiscriminator(cfg, 2 * cfg.image_nc, sigmoid)
        self.vgg = VGGRelu12() if self.w.get("perceptual") or self.w.get("style") else None
        self.pools = {"pb": ImagePool(options.pool_size), "pp": ImagePool(options.pool_size)}
        self.optims = {
            name: adam(net.parameters(), optim[player], method="PATN", default_lr=2e-4)
            for name, net, player in (
                ("gen", self.gen, "gen"),
                ("pb", self.d_pb, "disc_pose"),
                ("pp", self.d_pp, "disc_image"),
            )
        }
        for net in (self.gen, self.d_pb, self.d_pp):
            net.train()  # dropout on, batch statistics: the original never leaves train mode while training

    def generator_terms(
        self, fake: torch.Tensor, batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Unweighted G loss terms whose weight is non-zero (names as ``ptx.methods.patn.TERMS``)."""
        w, opt, target = self.w, self.opt, batch["target"]
        terms: dict[str, torch.Tensor] = {}
        if w.get("l1"):
            terms["l1"] = (fake - target).abs().mean()
        if self.vgg is not None:
            feats_fake = self.vgg(fake)
            with torch.no_grad():
                feats_real = self.vgg(target)
            if w.get("perceptual"):
                terms["perceptual"] = (feats_fake - feats_real).abs().mean()
            if w.get("style"):
                terms["style"] = gram_style(feats_fake, feats_real)
        if w.get("ssim"):
            terms["ssim"] = 1 - ssim_value(fake, target, opt.win_size, opt.win_sigma)
        if w.get("pssim"):
            terms["pssim"] = 1 - part_ssim(fake, target, batch["part_mask"], opt.win_size, opt.win_sigma)
        if w.get("gan"):
            pb = gan_loss(self.d_pb(torch.cat([fake, batch["target_pose"]], 1)), True, opt.gan_mode)
            pp = gan_loss(self.d_pp(torch.cat([fake, batch["source"]], 1)), True, opt.gan_mode)
            terms["gan"] = (pb + pp) / 2
        return terms

    def generator_loss(self, fake: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``backward_G``'s loss: the weighted sum of :meth:`generator_terms`."""
        return sum(self.w[k] * v for k, v in self.generator_terms(fake, batch).items())

    def disc_loss(self, net: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """``backward_D_basic``'s loss: lambda_GAN * 0.5 * (GAN(D(real), 1) + GAN(D(fake), 0))."""
        mode = self.opt.gan_mode
        both = gan_loss(net(real), True, mode) + gan_loss(net(fake), False, mode)
        return 0.5 * self.w.get("gan", 0.0) * both

    def disc_step(self, name: str, net: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> None:
        self.optims[name].zero_grad()
        self.disc_loss(net, real, self.pools[name].query(fake.detach())).backward()
        self.optims[name].step()

    def step(self, batch: Mapping[str, torch.Tensor]) -> None:
        """``optimize_parameters``: G forward and update, then D_PP, then D_PB (DG_ratio 1)."""
        fake = self.gen(batch["source"], batch["pose"])
        self.optims["gen"].zero_grad()
        self.generator_loss(fake, batch).backward()
        self.optims["gen"].step()
        if not self.w.get("gan"):
            return
        target, source, target_pose = batch["target"], batch["source"], batch["target_pose"]
        self.disc_step("pp", self.d_pp, torch.cat([target, source], 1), torch.cat([fake, source], 1))
        self.disc_step(
            "pb", self.d_pb, torch.cat([target, target_pose], 1), torch.cat([fake, target_pose], 1)
        )


def synthetic_batch(batch_size: int, size: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """A pipeline-style batch: uint8 NHWC images, integer (y, x) keypoints inside the frame, 10 % missing."""
    rng = np.random.default_rng(seed)
    h, w = size
    batch = {}
    for role in ("source", "target"):
        batch[f"{role}_image"] = rng.integers(0, 256, (batch_size, h, w, 3), dtype=np.uint8)
        kps = np.floor(rng.uniform(0.05, 0.95, (batch_size, NUM_KEYPOINTS, 2)) * [h, w]).astype(np.float32)
        kps[rng.uniform(size=(batch_size, NUM_KEYPOINTS)) < 0.1] = -1.0
        batch[f"{role}_keypoints"] = kps
    return batch


def torch_batch(batch: Mapping[str, np.ndarray], heatmap_sigma: float = 6.0) -> dict[str, torch.Tensor]:
    """The original's inputs from a pipeline batch: NCHW [-1, 1] images, 18 Gaussian maps per pose, and the
    target's pSSIM part masks."""

    def image(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float() / 127.5 - 1

    size = batch["source_image"].shape[1:3]
    source_pose = heatmaps(batch["source_keypoints"], size, heatmap_sigma)
    target_pose = heatmaps(batch["target_keypoints"], size, heatmap_sigma)
    return {
        "source": image(batch["source_image"]),
        "target": image(batch["target_image"]),
        "pose": torch.cat([source_pose, target_pose], 1),
        "target_pose": target_pose,
        "part_mask": part_masks(batch["target_keypoints"], size),
    }


def build_trainer(config, batch_size: int, seed: int = 0) -> tuple[Trainer, dict[str, torch.Tensor]]:
    """(Trainer of ``config`` with random weights, one synthetic batch); ``ptx.methods.patn.build`` parses the
    config, so model fields, loss weights, GAN mode, pool and (p)SSIM window are read exactly as ptx reads them."""
    from ptx.methods import patn as method_lib  # config parsing only (jax is already imported by the caller)

    method = method_lib.build(config)
    torch.manual_seed(seed)
    trainer = Trainer(method.cfg, method.weights, method.options, config.optim)
    batch = synthetic_batch(batch_size, tuple(int(v) for v in config.data.image_size), seed)
    return trainer, torch_batch(batch, method.cfg.heatmap_sigma)


def torch_reference(config, batch_size: int, stage: str | None = None) -> Callable[[], None]:
    """One PATN / pSSIM optimisation step of ``config`` at ``batch_size`` in PyTorch (CPU, all cores)."""
    if stage not in (None, "train"):
        raise ValueError(f"PATN has one stage 'train', not {stage!r}")
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    trainer, batch = build_trainer(config, batch_size, int(config.get("seed", 0)))
    return lambda: trainer.step(batch)


DESCRIPTION = "PyTorch re-implementation checked against the original's goldens, CPU"


def generator_step(config, batch_size: int) -> Callable[[], None]:
    """The work the reference card's CPU timing quotes: the generator forward in train mode (dropout on) and
    the gradient of mean|image| for every generator parameter (no optimizer)."""
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    trainer, batch = build_trainer(config, batch_size, int(config.get("seed", 0)))
    gen = trainer.gen

    return image_grad_step(gen, lambda: gen(batch["source"], batch["pose"]))
