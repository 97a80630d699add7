"""GFLA's training step in PyTorch (our own implementation), for the benchmarks' PyTorch column.

The original's networks (``PoseFlowNet``, ``PoseGenerator`` with local attention, the spectral-norm
``ResDiscriminator``), losses and ``optimize_parameters`` of both stages, written from
shared/reference/gfla.md. Module names equal the original's state-dict names, so the golden fixtures' ``param/*``
arrays load with ``load_state_dict(strict=True)`` and ``tests/test_torch_reference_gfla.py`` checks the outputs
against the original's. NCHW, float32, CPU.

The original's three CUDA ops are written with torch-native ops: ``block_extractor`` is ``grid_sample``
(bilinear, border, align_corners=True: the same sampling in pixel units), the zero-flow target patches are a
replicate pad + ``unfold``, ``local_attn_reshape`` is ``pixel_shuffle``, and ``resample2d`` (the Gaussian 4x4
sampling of the correctness loss) is 16 ``gather`` taps with autograd weights.

Work per step, as ptx's step does it: one generator forward; D on the real and the detached fake, D update; D on
the fake (frozen), then VGG19 of the fake (to relu5_2, with gradient), of the target (to relu5_2, once, shared by
the content, style and correctness losses) and of the source (to relu4_1), G update. The original runs VGG19 to
relu5_4 four times per G step (twice on the target); those repeats are left out here as in ptx.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch_reference import adam, image_grad_step
from ptx.methods.common import model_fields
from ptx.methods.gfla import DEFAULT_WEIGHTS
from ptx.models.gfla import Config, encoder_widths

EPS = 1e-8
DESCRIPTION = "PyTorch re-implementation checked against the original's goldens, CPU"

# ------------------------------------------------------------------------------------------------ ops


def extract_blocks(source: torch.Tensor, flow: torch.Tensor, k: int) -> torch.Tensor:
    """GFLA block_extractor: (B, C, Hs, Ws), flow (B, 2, h, w) (x, y pixels) -> (B, C, h*k, w*k), the k x k
    patch around each flowed position (offsets -k//2 .. k-1-k//2), border-replicate bilinear."""
    hs, ws = source.shape[2:]
    h, w = flow.shape[2:]
    offs = torch.arange(k, dtype=flow.dtype) - k // 2
    ys = (torch.arange(h, dtype=flow.dtype)[:, None] + offs).reshape(-1)  # row Y = yf*k + j
    xs = (torch.arange(w, dtype=flow.dtype)[:, None] + offs).reshape(-1)
    up = F.interpolate(flow, scale_factor=k, mode="nearest")  # each flow vector over its k x k block
    px = up[:, 0] + xs
    py = up[:, 1] + ys[:, None]
    grid = torch.stack([px * (2 / max(ws - 1, 1)) - 1, py * (2 / max(hs - 1, 1)) - 1], dim=-1)
    return F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=True)


def identity_blocks(x: torch.Tensor, k: int) -> torch.Tensor:
    """``extract_blocks(x, 0, k)`` without sampling: replicate padding and unfold."""
    b, c, h, w = x.shape
    lo, hi = k // 2, k - 1 - k // 2
    cols = F.unfold(F.pad(x, (lo, hi, lo, hi), mode="replicate"), k)  # (B, C*k*k, h*w)
    cols = cols.view(b, c, k, k, h, w).permute(0, 1, 4, 2, 5, 3)
    return cols.reshape(b, c, h * k, w * k)


def local_attn_reshape(weights: torch.Tensor, k: int) -> torch.Tensor:
    """(B, k*k, h, w) -> (B, 1, h*k, w*k), tap j at (j // k, j % k) of its block."""
    return F.pixel_shuffle(weights, k)


def gaussian_resample(
    image: torch.Tensor, flow: torch.Tensor, kernel_size: int = 4, dilation: int = 1, sigma: float = 2.0
) -> torch.Tensor:
    """GFLA resample2d: (B, C, H, W) sampled at (x + flow_x, y + flow_y) over (B, 2, h, w) as the Gaussian-
    weighted mean of kernel_size^2 clamped taps around the point (gradient to the flow through the weights)."""
    b, c, hi, wi = image.shape
    h, w = flow.shape[2:]
    xf = flow[:, 0] + torch.arange(w, dtype=flow.dtype)
    yf = flow[:, 1] + torch.arange(h, dtype=flow.dtype)[:, None]
    x0, y0 = torch.floor(xf), torch.floor(yf)
    ax, ay = xf - x0, yf - y0
    half = kernel_size // 2
    offs = [-f * dilation for f in range(half)] + [(f + 1) * dilation for f in range(half)]
    flat = image.reshape(b, c, hi * wi)
    num = image.new_zeros(b, c, h, w)
    den = image.new_zeros(b, 1, h, w)
    for oy in offs:
        wy = torch.exp(-((oy - ay) ** 2) / (2 * sigma**2))
        iy = (y0 + oy).clamp(0, hi - 1)
        for ox in offs:
            wgt = (wy * torch.exp(-((ox - ax) ** 2) / (2 * sigma**2)))[:, None]
            idx = (iy * wi + (x0 + ox).clamp(0, wi - 1)).long().view(b, 1, h * w)
            tap = torch.gather(flat, 2, idx.expand(b, c, h * w)).view(b, c, h, w)
            num = num + wgt * tap
            den = den + wgt
    return num / den.clamp_min(1e-8)


# ------------------------------------------------------------------------------------------------ blocks


def _act(cfg: Config) -> nn.Module:
    return nn.LeakyReLU(0.1) if cfg.activation == "leaky_relu" else nn.ReLU()


def _conv(cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, spect: bool = False) -> nn.Module:
    conv = nn.Conv2d(cin, cout, k, stride, padding)
    return nn.utils.spectral_norm(conv) if spect else conv


def _up(cin: int, cout: int, spect: bool) -> nn.Module:
    conv = nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1)
    return nn.utils.spectral_norm(conv) if spect else conv


def _pre_act(cfg: Config, cin: int, mid: int, first: nn.Module, second: nn.Module) -> nn.Sequential:
    """[norm(cin)], act, first, [norm(mid)], act, second: torch indices model.{0,2,3,5} (model.{1,3} without norm)."""
    act = _act(cfg)
    if cfg.norm == "instance":
        return nn.Sequential(
            nn.InstanceNorm2d(cin, affine=True), act, first, nn.InstanceNorm2d(mid, affine=True), act, second
        )
    return nn.Sequential(act, first, act, second)


class EncoderBlock(nn.Module):
    """Pre-activation 4x4 stride-2 conv then 3x3 conv: halves H and W."""

    def __init__(self, cfg: Config, cin: int, cout: int):
        super().__init__()
        s = cfg.use_spect
        self.model = _pre_act(cfg, cin, cout, _conv(cin, cout, 4, 2, 1, s), _conv(cout, cout, 3, 1, 1, s))

    def forward(self, x):
        return self.model(x)


class ResBlock(nn.Module):
    def __init__(self, cfg: Config, c: int):
        super().__init__()
        s = cfg.use_spect
        self.model = _pre_act(cfg, c, c, _conv(c, c, 3, 1, 1, s), _conv(c, c, 3, 1, 1, s))

    def forward(self, x):
        return self.model(x) + x


class ResBlocks(nn.Module):
    def __init__(self, cfg: Config, n: int, c: int):
        super().__init__()
        self.model = nn.Sequential(*[ResBlock(cfg, c) for _ in range(n)])

    def forward(self, x):
        return self.model(x)


class ResBlockDecoder(nn.Module):
    """Pre-activation conv then transposed conv (x2), plus a transposed-conv shortcut of the raw input."""

    def __init__(self, cfg: Config, cin: int, cout: int, hidden: int):
        super().__init__()
        s = cfg.use_spect
        self.model = _pre_act(cfg, cin, hidden, _conv(cin, hidden, 3, 1, 1, s), _up(hidden, cout, s))
        self.shortcut = nn.Sequential(_up(cin, cout, s))

    def forward(self, x):
        return self.model(x) + self.shortcut(x)


class PadConv(nn.Module):
    """The original's Jump / Output (norm None): act, reflect pad 1, 3x3 conv [, tanh]. The conv is registered
    as ``conv1`` and again as ``model.2``, as there: both state-dict names are one tensor."""

    def __init__(self, cfg: Config, cin: int, cout: int, tanh: bool = False):
        super().__init__()
        self.conv1 = _conv(cin, cout, 3, 1, 0, cfg.use_spect)
        tail = [nn.Tanh()] if tanh else []
        self.model = nn.Sequential(_act(cfg), nn.ReflectionPad2d(1), self.conv1, *tail)

    def forward(self, x):
        return self.model(x)


class ExtractorAttn(nn.Module):
    """Local attention: softmax weights over the k*k source patch around each flowed position, predicted from
    [target patch, source patch]; output = mean over the taps of weight * source tap."""

    def __init__(self, cfg: Config, c: int, k: int):
        super().__init__()
        self.k = k
        self.fully_connect_layer = nn.Sequential(
            nn.Conv2d(2 * c, cfg.attn_hidden, k, k),
            _act(cfg),
            nn.Conv2d(cfg.attn_hidden, k * k, 1),
            nn.Softmax(1),
        )

    def forward(self, source, target, flow):
        k = self.k
        src = extract_blocks(source, flow, k)
        weights = self.fully_connect_layer(torch.cat([identity_blocks(target, k), src], 1))
        out = F.avg_pool2d(local_attn_reshape(weights, k) * src, k, k)
        return out, weights


# ------------------------------------------------------------------------------------------------ networks


class Encoder(nn.Module):
    """block0, encoder0 .. encoder{n-2}; returns every output."""

    def __init__(self, cfg: Config, cin: int, ngf: int, img_f: int, n: int):
        super().__init__()
        widths = encoder_widths(ngf, img_f, n)
        self.block0 = EncoderBlock(cfg, cin, widths[0])
        for i in range(1, n):
            self.add_module(f"encoder{i - 1}", EncoderBlock(cfg, widths[i - 1], widths[i]))
        self.n = n

    def features(self, x) -> list[torch.Tensor]:
        outs = [self.block0(x)]
        for i in range(self.n - 1):
            outs.append(getattr(self, f"encoder{i}")(outs[-1]))
        return outs


class PoseSourceNet(Encoder):
    def __init__(self, cfg: Config):
        super().__init__(cfg, cfg.image_nc, cfg.ngf, cfg.img_f, cfg.layers)

    def forward(self, image):
        return ([image] + self.features(image))[::-1]  # deepest first, the image last


class PoseTargetNet(Encoder):
    def __init__(self, cfg: Config):
        super().__init__(cfg, cfg.structure_nc, cfg.ngf, cfg.img_f, cfg.layers)
        self.cfg = cfg
        cap = cfg.img_f // cfg.ngf
        width = cfg.ngf * min(2 ** (cfg.layers - 1), cap)
        for i in range(cfg.layers):
            out = cfg.ngf * min(2 ** (cfg.layers - i - 2), cap) if i != cfg.layers - 1 else cfg.ngf
            up = ResBlockDecoder(cfg, width, out, width)
            rest = [ResBlocks(cfg, cfg.num_blocks - 1, width)] if cfg.num_blocks > 1 else []
            self.add_module(f"decoder{i}", nn.Sequential(*rest, up))
            if cfg.layers - i in cfg.attn_layer:
                self.add_module(f"attn{i}", ExtractorAttn(cfg, width, cfg.kernel_sizes[cfg.layers - i]))
            width = out
        self.outconv = PadConv(cfg, cfg.ngf, cfg.output_nc, tanh=True)

    def forward(self, target_pose, source_feats, flows, masks):
        cfg = self.cfg
        out = self.features(target_pose)[-1]
        attn, counter = [], 0
        for i in range(cfg.layers):
            if cfg.layers - i in cfg.attn_layer:
                warped, weights = getattr(self, f"attn{i}")(source_feats[i], out, flows[counter])
                m = masks[counter]
                out = out * (1 - m) + warped * m
                attn.append(weights)
                counter += 1
            out = getattr(self, f"decoder{i}")(out)
        return self.outconv(out), attn


class PoseFlowNet(Encoder):
    def __init__(self, cfg: Config):
        ngf, img_f, n = cfg.flow_ngf, cfg.flow_img_f, cfg.flow_layers
        super().__init__(cfg, cfg.image_nc + 2 * cfg.structure_nc, ngf, img_f, n)
        self.cfg = cfg
        width = encoder_widths(ngf, img_f, n)[-1]
        for i in range(n - min(cfg.attn_layer)):
            out = ngf * min(2 ** (n - i - 2), img_f // ngf) if i != n - 1 else ngf
            self.add_module(f"decoder{i}", ResBlockDecoder(cfg, width, out, out))
            self.add_module(f"jump{i}", PadConv(cfg, out, out))
            if n - i - 1 in cfg.attn_layer:
                self.add_module(f"output{i}", nn.Conv2d(out, 2, 3, 1, 1))
                self.add_module(f"mask{i}", nn.Sequential(nn.Conv2d(out, 1, 3, 1, 1), nn.Sigmoid()))
            width = out

    def forward(self, source, source_pose, target_pose):
        n = self.cfg.flow_layers
        skips = self.features(torch.cat([source, source_pose, target_pose], 1))
        out, flows, masks = skips[-1], [], []
        for i in range(n - min(self.cfg.attn_layer)):
            out = getattr(self, f"decoder{i}")(out) + getattr(self, f"jump{i}")(skips[n - i - 2])
            if n - i - 1 in self.cfg.attn_layer:
                flows.append(getattr(self, f"output{i}")(out))
                masks.append(getattr(self, f"mask{i}")(out))
        return flows, masks


class PoseGenerator(nn.Module):
    """forward -> (image, flows, masks, attention softmax weights); lists deepest first."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.source = PoseSourceNet(cfg)
        self.target = PoseTargetNet(cfg)
        self.flow_net = PoseFlowNet(cfg)

    def forward(self, source, source_pose, target_pose):
        feats = self.source(source)
        flows, masks = self.flow_net(source, source_pose, target_pose)
        image, attn = self.target(target_pose, feats, flows, masks)
        return image, flows, masks, attn


class PoseFlowNetGenerator(nn.Module):
    """Stage-1 model: the flow net alone, under the same ``flow_net`` key."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.flow_net = PoseFlowNet(cfg)

    def forward(self, source, source_pose, target_pose):
        return self.flow_net(source, source_pose, target_pose)


class ResBlockEncoder(nn.Module):
    """Discriminator block (norm none): act, SN conv3x3, act, SN conv4x4 s2; shortcut avg-pool then SN 1x1."""

    def __init__(self, cfg: Config, cin: int, cout: int, hidden: int):
        super().__init__()
        s = cfg.disc_use_spect
        act = _act(cfg)
        self.model = nn.Sequential(act, _conv(cin, hidden, 3, 1, 1, s), act, _conv(hidden, cout, 4, 2, 1, s))
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), _conv(cin, cout, 1, 1, 0, s))

    def forward(self, x):
        return self.model(x) + self.shortcut(x)


class ResDiscriminator(nn.Module):
    """Image-only patch discriminator; raw logits."""

    def __init__(self, cfg: Config):
        super().__init__()
        widths = encoder_widths(cfg.disc_ndf, cfg.disc_img_f, cfg.disc_layers)
        self.block0 = ResBlockEncoder(cfg, cfg.output_nc, widths[0], widths[0])
        for i in range(1, cfg.disc_layers):
            self.add_module(f"encoder{i - 1}", ResBlockEncoder(cfg, widths[i - 1], widths[i], widths[i - 1]))
        self.act = _act(cfg)
        self.conv = _conv(widths[-1], 1, 1, spect=True)  # spectral-normed whatever use_spect says
        self.n = cfg.disc_layers

    def forward(self, image):
        out = self.block0(image)
        for i in range(self.n - 1):
            out = getattr(self, f"encoder{i}")(out)
        return self.conv(self.act(out))


# ------------------------------------------------------------------------------------------------ VGG19

_VGG19 = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    512,
    "M",
)
# Named activations -> index of their ReLU in torchvision's vgg19().features.
VGG_LAYERS = {
    "relu1_1": 1,
    "relu2_1": 6,
    "relu2_2": 8,
    "relu3_1": 11,
    "relu3_4": 17,
    "relu4_1": 20,
    "relu4_4": 26,
    "relu5_1": 29,
    "relu5_2": 31,
}
CONTENT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STYLE_LAYERS = ("relu2_2", "relu3_4", "relu4_4", "relu5_2")
CORRECTNESS_LAYER = {1: "relu2_1", 2: "relu3_1", 3: "relu4_1"}  # attention layer -> VGG layer


class VGG19(nn.Module):
    """torchvision's vgg19().features (same ``features.N`` names), frozen, fed [-1, 1] images as GFLA does."""

    def __init__(self):
        super().__init__()
        mods, cin = [], 3
        for v in _VGG19:
            if v == "M":
                mods.append(nn.MaxPool2d(2, 2))
            else:
                mods += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*mods)
        self.requires_grad_(False)

    def forward(self, x, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Only as deep as the deepest requested layer."""
        wanted = {VGG_LAYERS[n]: n for n in layers}
        out = {}
        for i, mod in enumerate(self.features[: max(wanted) + 1]):
            x = mod(x)
            if i in wanted:
                out[wanted[i]] = x
        return out


# ------------------------------------------------------------------------------------------------ losses


def content_loss(fx: Mapping[str, torch.Tensor], fy: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return sum(F.l1_loss(fx[n], fy[n]) for n in CONTENT_LAYERS)


def gram(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def style_loss(fx: Mapping[str, torch.Tensor], fy: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return sum(F.l1_loss(gram(fx[n]), gram(fy[n])) for n in STYLE_LAYERS)


def sampling_correctness(target: torch.Tensor, source: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """One flow against one VGG layer's features (no gradient to them): exp(-cos(warped, target) / best cos)."""
    b, c, h, w = target.shape
    flow = F.interpolate(flow, size=(h, w), mode="nearest")
    t = target.reshape(b, c, h * w)
    with torch.no_grad():
        s = source.reshape(b, c, h * w).transpose(1, 2)
        sn = s / (s.norm(dim=2, keepdim=True) + EPS)
        tn = t / (t.norm(dim=1, keepdim=True) + EPS)
        best = torch.bmm(sn, tn).amax(dim=1)  # (B, h*w): best source match of each target position
    warped = gaussian_resample(source, flow, 4, 1, 2.0).reshape(b, c, h * w)
    cos = F.cosine_similarity(warped, t, dim=1, eps=EPS)
    return torch.mean(torch.exp(-cos / (best + EPS))) - math.exp(-1.0)


def correctness_loss(target_feats, source_feats, flows, attn_layers: Sequence[int]) -> torch.Tensor:
    """Flow i (deepest first) against the VGG layer of attention layer sorted(attn_layers, reverse=True)[i]."""
    used = sorted(attn_layers, reverse=True)
    return sum(
        sampling_correctness(target_feats[CORRECTNESS_LAYER[a]], source_feats[CORRECTNESS_LAYER[a]], f)
        for f, a in zip(flows, used)
    )


@functools.cache
def _residual_matrix(kz: int) -> np.ndarray:
    """(P - I) of the least-squares affine fit over a kz x kz window (taps row-major)."""
    rows, cols = np.meshgrid(np.arange(kz), np.arange(kz), indexing="ij")
    a = np.stack([rows.ravel(), cols.ravel(), np.ones(kz * kz)], axis=1)
    return a @ np.linalg.inv(a.T @ a) @ a.T - np.eye(kz * kz)


def affine_regularization(flow: torch.Tensor, kz: int) -> torch.Tensor:
    """Mean over windows of the squared affine-fit residual of the sampling grid, x term + y term."""
    b, _, h, w = flow.shape
    coords = torch.stack(
        torch.meshgrid(torch.arange(w, dtype=flow.dtype), torch.arange(h, dtype=flow.dtype), indexing="xy")
    )
    grid = (flow + coords).reshape(b * 2, 1, h, w)
    m = torch.as_tensor(_residual_matrix(kz), dtype=flow.dtype)
    r = m @ F.unfold(grid, kz)  # (2B, kz*kz, windows)
    return r.square().sum(1).view(b, 2, -1).mean(dim=(0, 2)).sum()


def multi_affine_regularization(flows, kernel_sizes: Mapping[int, int]) -> torch.Tensor:
    """Flow i paired with the window of the i-th key in reverse string order (GFLA's pairing)."""
    table = {str(k): v for k, v in kernel_sizes.items()}
    return sum(affine_regularization(f, table[key]) for f, key in zip(flows, sorted(table, reverse=True)))


def gan_loss(logits: torch.Tensor, real: bool, mode: str, for_disc: bool) -> torch.Tensor:
    if mode == "lsgan":
        return F.mse_loss(logits, torch.full_like(logits, 1.0 if real else 0.0))
    if mode == "nsgan":
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 1.0 if real else 0.0))
    if mode == "hinge":
        if not for_disc:
            return -logits.mean()
        return F.relu(1 - logits).mean() if real else F.relu(1 + logits).mean()
    raise ValueError(f"unknown gan_mode {mode!r}")


# ------------------------------------------------------------------------------------------------ the step


def orthogonal_init(module: nn.Module, gain: float) -> None:
    """The original's init_weights('orthogonal', gain): conv weights orthogonal, biases 0 (norms untouched)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            weight = m.weight_orig if hasattr(m, "weight_orig") else m.weight
            nn.init.orthogonal_(weight, gain)
            nn.init.zeros_(m.bias)


def _heatmaps(kps: torch.Tensor, h: int, w: int, sigma: float = 6.0) -> torch.Tensor:
    """(B, 18, 2) (y, x) pixels, -1 missing -> (B, 18, H, W) Gaussians, zero channels for missing joints."""
    y, x = kps[..., 0, None, None].trunc(), kps[..., 1, None, None].trunc()
    rows = torch.arange(h, dtype=torch.float32)[:, None]
    cols = torch.arange(w, dtype=torch.float32)
    maps = torch.exp(-((rows - y) ** 2 + (cols - x) ** 2) / (2 * sigma**2))
    return maps * (kps.min(-1).values >= 0)[..., None, None]


def synthetic_inputs(batch_size: int, size: tuple[int, int], structure_nc: int, seed: int = 0):
    """Images in [-1, 1] and pose heatmaps of random in-frame keypoints (10% missing)."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    out = {}
    for role in ("source", "target"):
        out[role] = torch.rand(batch_size, 3, h, w, generator=g) * 2 - 1
        kps = (torch.rand(batch_size, structure_nc, 2, generator=g) * 0.9 + 0.05) * torch.tensor([h, w])
        kps[torch.rand(batch_size, structure_nc, generator=g) < 0.1] = -1.0
        out[f"{role}_pose"] = _heatmaps(kps, h, w)
    return out


def _setup(config, batch_size: int):
    torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores jax's CPU client uses
    torch.manual_seed(int(config.get("seed", 0)))
    cfg = Config(**model_fields(Config, config.model, "gfla"))
    return cfg, synthetic_inputs(batch_size, tuple(config.data.image_size), cfg.structure_nc)


def generator_step(config, batch_size: int) -> Callable[[], None]:
    """The work the original's CPU timing quotes: full generator forward (train mode) and the gradient of
    mean|image| for every generator parameter (no optimizer)."""
    cfg, x = _setup(config, batch_size)
    gen = PoseGenerator(cfg)
    orthogonal_init(gen, float(config.get("init_gain", 0.02)))

    return image_grad_step(gen, lambda: gen(x["source"], x["source_pose"], x["target_pose"])[0])


def torch_reference(config, batch_size: int, *, stage: str | None = None) -> Callable[[], None]:
    """One GFLA optimisation step (``optimize_parameters`` of stage ``flow`` or ``full``, default the config's
    last stage) in PyTorch on CPU, random weights (VGG too) and one synthetic batch held inside. The returned
    callable's ``networks`` attribute maps player names to the trained modules."""
    cfg, x = _setup(config, batch_size)
    stages = [s.name for s in config.stages]
    stage = stage or stages[-1]
    if stage not in ("flow", "full"):
        raise ValueError(f"GFLA stages are 'flow' and 'full', not {stage!r}")
    weights = {**DEFAULT_WEIGHTS, **{k: float(v) for k, v in config.loss.items() if k != "gan_mode"}}
    gan_mode = str(config.loss.get("gan_mode", "lsgan"))
    gain = float(config.get("init_gain", 0.02))
    src, tgt, sp, tp = x["source"], x["target"], x["source_pose"], x["target_pose"]
    vgg = VGG19().eval()
    corr_layers = sorted({CORRECTNESS_LAYER[a] for a in cfg.attn_layer})

    if stage == "flow":
        gen = PoseFlowNetGenerator(cfg)
        orthogonal_init(gen, gain)
        opt_g = adam(gen.parameters(), config.optim.gen, method="GFLA")

        def flow_step() -> None:
            flows, _ = gen(src, sp, tp)
            opt_g.zero_grad(set_to_none=True)
            with torch.no_grad():
                t_feats, s_feats = vgg(tgt, corr_layers), vgg(src, corr_layers)
            loss = weights["flow_correctness"] * correctness_loss(t_feats, s_feats, flows, cfg.attn_layer)
            loss = loss + weights["flow_regularization"] * multi_affine_regularization(
                flows, cfg.kernel_sizes
            )
            loss.backward()
            opt_g.step()

        flow_step.networks = {"gen": gen}
        return flow_step

    gen, disc = PoseGenerator(cfg), ResDiscriminator(cfg)
    orthogonal_init(gen, gain)
    orthogonal_init(disc, gain)
    opt_g = adam(gen.parameters(), config.optim.gen, method="GFLA")
    opt_d = adam(disc.parameters(), config.optim.disc, method="GFLA")
    full_layers = sorted({*CONTENT_LAYERS, *STYLE_LAYERS})

    def full_step() -> None:
        fake, flows, _, _ = gen(src, sp, tp)
        # D: real vs the detached fake.
        disc.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        d_loss = 0.5 * (
            gan_loss(disc(tgt), True, gan_mode, True) + gan_loss(disc(fake.detach()), False, gan_mode, True)
        )
        d_loss.backward()
        opt_d.step()
        # G: every term, D frozen.
        disc.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with torch.no_grad():
            t_feats, s_feats = vgg(tgt, full_layers), vgg(src, corr_layers)
        f_feats = vgg(fake, full_layers)
        terms = {
            "l1": F.l1_loss(fake, tgt),
            "correctness": correctness_loss(t_feats, s_feats, flows, cfg.attn_layer),
            "adversarial": gan_loss(disc(fake), True, gan_mode, False),
            "regularization": multi_affine_regularization(flows, cfg.kernel_sizes),
            "content": content_loss(f_feats, t_feats),
            "style": style_loss(f_feats, t_feats),
        }
        sum(weights[k] * v for k, v in terms.items()).backward()
        opt_g.step()

    full_step.networks = {"gen": gen, "disc": disc}
    return full_step
