"""Def-GAN training step in plain PyTorch: the "same work" figure beside ptx's in ``benchmarks.train_step``.

Our own PyTorch implementation written from the reference card (``shared/reference/defgan.md`` sections 3-5)
and ptx's port (``ptx.models.defgan``, ``ptx.methods.defgan``), validated against the golden recorded from the
original semantics (``tests/test_torch_reference_defgan.py``):

* :class:`Generator` -- two encoders (``encoder_app``, ``encoder_pose``; one ``encoder`` for the baseline),
  the deformable skips (:func:`affine_warp`: nearest-neighbour gather, round half away from zero, zeros
  outside, part masks, max / avg over parts) and the decoder, with the PyTorch port's module tree
  (``encoder_app.net.1.net.1.weight`` ...), so the goldens' ``param/*`` arrays load with ``strict=True``.
* :class:`Discriminator` -- the 42-channel ``disc_type=call`` patch discriminator (``net.*``).
* :class:`KerasInstanceNorm` -- keras-contrib's ``axis=None`` instance norm (one scalar gamma/beta,
  ``(x - mean) / (std + 1e-3)``; ``formula="torch"`` for the port's ``sqrt(var + 1e-3)``).
* Losses: BCE on probabilities with the original's 1e-7 inside the log (:func:`generator_gan`,
  :func:`discriminator_terms`), :func:`reconstruction_loss` (mean L1, or the nearest-neighbour loss over a
  k x k window, real map padded with -10000, channels summed) on images or VGG19 features (:class:`VGGTrunk`).
* :func:`torch_reference` -- one ptx-shaped step: one train-mode generator pass, D's Adam step on it, then G's
  Adam step through the updated D (ptx's player order ``disc``, ``gen``); random weights and one synthetic
  batch from ``benchmarks.common.method_batch`` (the pair filter and the host geometry, as ptx gets it).

The part transforms and masks are host-side numpy in ptx and in the original alike; both sides take them from
the same batch, so only the network, the warp and the losses are timed. NCHW throughout; torch is imported
here only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch_reference import adam, image_grad_step

EPS_BCE = 1e-7
NN_PAD = -10000.0
NUM_WARPED_SKIPS = 4
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)  # subtracted in RGB order, then flipped (the original's quirk)
VGG19_BLOCKS = (2, 2, 4, 4, 4)
VGG19_WIDTHS = (64, 128, 256, 512, 512)

DESCRIPTION = "PyTorch re-implementation checked against the original's goldens, CPU"


# ================================================================================================ networks
class KerasInstanceNorm(nn.Module):
    """Per-sample statistics over (C, H, W) jointly, scalar ``weight``/``bias`` of shape (1,)."""

    def __init__(self, formula: str = "keras", eps: float = 1e-3):
        super().__init__()
        if formula not in ("keras", "torch"):
            raise ValueError(f"instance norm formula {formula!r}: expected 'keras' or 'torch'")
        self.formula, self.eps = formula, eps
        self.weight = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=(1, 2, 3), keepdim=True, correction=0)
        if self.formula == "keras":
            y = (x - mean) / (var.sqrt() + self.eps)
        else:
            y = (x - mean) * torch.rsqrt(var + self.eps)
        return y * self.weight + self.bias


class Block(nn.Module):
    """Activation, 4x4 stride-2 conv (down) or transposed conv (up), no bias, [norm], [dropout 0.5].

    Positions as the port's ``net``: down ``0`` act, ``1`` conv, ``2`` norm; up ``0`` act, ``1`` transposed conv,
    ``2`` the original's 1-px crop (folded into the transposed conv's ``padding=1`` here), ``3`` norm,
    ``4`` dropout -- so the state-dict keys are the port's.
    """

    def __init__(self, cin: int, cout: int, *, down: bool, norm: str | None, dropout: bool = False):
        super().__init__()
        layers: list[nn.Module] = [nn.LeakyReLU(0.2) if down else nn.ReLU()]
        if down:
            layers.append(nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False))
        else:
            layers += [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False), nn.Identity()]
        if norm is not None:
            layers.append(KerasInstanceNorm(norm))
        if dropout:
            layers.append(nn.Dropout(0.5))  # element-wise, as Keras' Dropout
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Encoder(nn.Module):
    """3x3 conv (bias, no activation), then down blocks, the deepest without norm; returns every level."""

    def __init__(self, cin: int, filters: Sequence[int], norm: str):
        super().__init__()
        last = len(filters) - 1
        layers: list[nn.Module] = [nn.Conv2d(cin, filters[0], 3, padding=1)]
        for i in range(1, len(filters)):
            layers.append(Block(filters[i - 1], filters[i], down=True, norm=None if i == last else norm))
        self.net = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for layer in self.net:
            x = layer(x)
            out.append(x)
        return out


class Decoder(nn.Module):
    """Skips deepest first; up blocks (dropout in the first three), then ReLU, 3x3 conv with bias, tanh."""

    def __init__(self, skip_channels: Sequence[int], filters: Sequence[int], norm: str):
        super().__init__()
        n = len(filters)
        skips = list(reversed(skip_channels))  # deepest first
        layers: list[nn.Module] = []
        prev = 0
        for i in range(n - 1):
            layers.append(Block(prev + skips[i], filters[i], down=False, norm=norm, dropout=i < 3))
            prev = filters[i]
        layers += [nn.ReLU(), nn.Conv2d(prev + skips[-1], filters[-1], 3, padding=1), nn.Tanh()]
        self.net = nn.ModuleList(layers)
        self.levels = n

    def forward(self, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        skips = list(reversed(skips))
        x = self.net[0](skips[0])
        for i in range(1, self.levels - 1):
            x = self.net[i](torch.cat([x, skips[i]], 1))
        x = torch.cat([x, skips[-1]], 1)
        for layer in self.net[self.levels - 1 :]:
            x = layer(x)
        return x


def round_half_away(v: torch.Tensor) -> torch.Tensor:
    """C's ``std::round`` (``torch.round`` rounds half to even)."""
    return torch.sign(v) * torch.floor(v.abs() + 0.5)


def affine_warp(
    features: torch.Tensor,
    transforms: torch.Tensor,
    masks: torch.Tensor | None,
    init_size: Sequence[int],
    aggregation: str = "max",
) -> torch.Tensor:
    """The original's ``AffineTransformLayer`` on NCHW ``features`` (B,C,h,w) -> (B,C,h,w).

    ``transforms`` (B,T,8) map target (x, y) -> source (x, y) in pixels of ``init_size``; only the translations
    are divided by the down-scale factor. Source coordinates in float32 as ``(a0*x + a1*y) + a2`` (separate
    kernels, no fused multiply-add: ties at .5 are common), rounded half away from zero, zeros outside. Masks
    (B,T,H0,W0) are sub-sampled at ``floor(i * H0 / h)`` and multiply each warped copy; then max (masked-out
    zeros included) or avg (sum / mask count, 0/0 -> 0) over T.
    """
    b, c, h, w = features.shape
    h0, w0 = int(init_size[0]), int(init_size[1])
    t = transforms.to(torch.float32).clone()
    t[..., 2] = t[..., 2] / (h0 / h)
    t[..., 5] = t[..., 5] / (w0 / w)
    t = t[..., None, None, :]  # (B, T, 1, 1, 8)
    ys = torch.arange(h, dtype=torch.float32).view(h, 1)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    x_in = round_half_away(t[..., 0] * xs + t[..., 1] * ys + t[..., 2])  # (B, T, h, w)
    y_in = round_half_away(t[..., 3] * xs + t[..., 4] * ys + t[..., 5])
    valid = (x_in >= 0) & (x_in < w) & (y_in >= 0) & (y_in < h)
    idx = (y_in.clamp(0, h - 1) * w + x_in.clamp(0, w - 1)).long()
    weight = valid.to(features.dtype)
    if masks is not None:
        rows = (torch.arange(h) * h0) // h
        cols = (torch.arange(w) * w0) // w
        small = masks.to(features.dtype)[:, :, rows][..., cols]
        weight = weight * small
    flat = features.permute(0, 2, 3, 1).reshape(b, h * w, c)  # gather whole channel vectors
    n_t = transforms.shape[1]
    warped = flat[torch.arange(b).view(b, 1), idx.view(b, n_t * h * w)]  # (B, T*h*w, C)
    warped = warped.view(b, n_t, h, w, c) * weight[..., None]
    if aggregation == "max":
        out = warped.amax(dim=1)
    elif aggregation == "avg":
        if masks is None:
            raise ValueError("aggregation 'avg' needs masks")
        out = warped.sum(dim=1) / small.sum(dim=1)[..., None]
        out = torch.nan_to_num(out, nan=0.0)
    else:
        raise ValueError(f"aggregation {aggregation!r}: expected 'max' or 'avg'")
    return out.permute(0, 3, 1, 2)


class Generator(nn.Module):
    """``forward(source, source_pose, target_pose, transforms, masks) -> image`` (B,3,H,W) in [-1, 1].

    ``cfg`` is a ``ptx.models.defgan.Config`` (widths, ``warp_skip``, ``warp_agg``, ``norm``, ...).
    """

    def __init__(self, cfg: Any):
        super().__init__()
        self.cfg = cfg
        enc, dec = tuple(cfg.encoder), tuple(cfg.decoder)
        app_nc = cfg.image_nc + (cfg.pose_nc if cfg.use_input_pose else 0)
        if cfg.warp_skip == "none":
            self.encoder = Encoder(app_nc + cfg.pose_nc, enc, cfg.norm)
            skips = enc
        else:
            self.encoder_app = Encoder(app_nc, enc, cfg.norm)
            self.encoder_pose = Encoder(cfg.pose_nc, enc, cfg.norm)
            skips = tuple(2 * f for f in enc)
        self.decoder = Decoder(skips, dec, cfg.norm)

    def skips(self, source, source_pose, target_pose, transforms=None, masks=None) -> list[torch.Tensor]:
        """The decoder's inputs, shallow first: cat(warped appearance, pose) for the 4 shallowest levels."""
        cfg = self.cfg
        appearance = [source, source_pose] if cfg.use_input_pose else [source]
        if cfg.warp_skip == "none":
            return self.encoder(torch.cat([*appearance, target_pose], 1))
        app = self.encoder_app(torch.cat(appearance, 1))
        pose = self.encoder_pose(target_pose)
        use_masks = masks if cfg.warp_skip == "mask" else None
        out = []
        for i, (a, p) in enumerate(zip(app, pose)):
            if i < NUM_WARPED_SKIPS:
                a = affine_warp(a, transforms, use_masks, cfg.image_size, cfg.warp_agg)
            out.append(torch.cat([a, p], 1))
        return out

    def forward(self, source, source_pose, target_pose, transforms=None, masks=None) -> torch.Tensor:
        return self.decoder(self.skips(source, source_pose, target_pose, transforms, masks))


class Discriminator(nn.Module):
    """cat(source, source pose, image, target pose) -> 4x4/2 'valid' conv with bias -> leaky blocks -> a
    1-channel block without norm -> sigmoid, flattened to (B, P) patch probabilities."""

    def __init__(self, cfg: Any):
        super().__init__()
        f = tuple(cfg.disc_filters)
        cin = 2 * cfg.image_nc + (2 if cfg.use_input_pose else 1) * cfg.pose_nc
        layers: list[nn.Module] = [nn.Conv2d(cin, f[0], 4, stride=2)]
        for i in range(1, len(f)):
            layers.append(Block(f[i - 1], f[i], down=True, norm=cfg.norm))
        layers.append(Block(f[-1], 1, down=True, norm=None))
        self.net = nn.Sequential(*layers)
        self.use_input_pose = cfg.use_input_pose

    def forward(self, source, source_pose, image, target_pose) -> torch.Tensor:
        parts = (
            [source, source_pose, image, target_pose] if self.use_input_pose else [source, image, target_pose]
        )
        return torch.sigmoid(self.net(torch.cat(parts, 1))).flatten(1)


def init_keras(net: nn.Module) -> None:
    """Keras defaults: glorot-uniform kernels, zero biases (instance norms start at gamma 1, beta 0)."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class VGGTrunk(nn.Module):
    """torchvision VGG19 ``features`` up to the deepest wanted ReLU; returns ``{relu name: activation}``.

    ``keras_input``: the original's input (0-255, Caffe mean subtracted in RGB order, then BGR), used by ptx
    with Keras' weight file; otherwise torchvision's ImageNet mean/std (ptx's choice for other or random
    weights). Weights stay trainable-shaped but no optimizer holds them.
    """

    def __init__(self, layers: Sequence[str], keras_input: bool):
        super().__init__()
        names = [f"relu{b + 1}_{i + 1}" for b, n in enumerate(VGG19_BLOCKS) for i in range(n)]
        self.wanted = tuple(layers)
        last = max(names.index(n) for n in self.wanted)
        modules: list[nn.Module] = []
        self.taps: dict[int, str] = {}
        cin, k = 3, 0
        for b, n_convs in enumerate(VGG19_BLOCKS):
            if b > 0:
                modules.append(nn.MaxPool2d(2))
            for _ in range(n_convs):
                modules += [nn.Conv2d(cin, VGG19_WIDTHS[b], 3, padding=1), nn.ReLU()]
                cin = VGG19_WIDTHS[b]
                if names[k] in self.wanted:
                    self.taps[len(modules) - 1] = names[k]
                k += 1
                if k > last:
                    break
            if k > last:
                break
        self.features = nn.Sequential(*modules)
        self.keras_input = keras_input
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.register_buffer("caffe", torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.keras_input:
            x = (255.0 * (images + 1.0) / 2.0 - self.caffe).flip(1)
        else:
            x = ((images + 1) / 2 - self.mean) / self.std
        out = {}
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out[self.taps[i]] = x
        return out


# ================================================================================================== losses
def generator_gan(d_fake: torch.Tensor) -> torch.Tensor:
    """-mean(log(D(fake) + 1e-7)) over every patch."""
    return -torch.log(d_fake + EPS_BCE).mean()


def discriminator_terms(d_real: torch.Tensor, d_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(-mean(log(D(real) + 1e-7)), -mean(log(1 - D(fake) + 1e-7))); D's loss is their sum."""
    return -torch.log(d_real + EPS_BCE).mean(), -torch.log(1.0 - d_fake + EPS_BCE).mean()


def nearest_neighbour_map(real: torch.Tensor, fake: torch.Tensor, area: int) -> torch.Tensor:
    """(B,H,W): min over the k x k window of sum_c |real(neighbour) - fake|, real padded with -10000.

    ``amin``'s gradient splits evenly between tied neighbours, as TensorFlow's ``reduce_min`` (and ptx's).
    """
    p = area // 2
    padded = F.pad(real, (p, p, p, p), value=NN_PAD)
    h, w = fake.shape[2:]
    dists = [
        (padded[:, :, dy : dy + h, dx : dx + w] - fake).abs().sum(dim=1)
        for dy in range(area)
        for dx in range(area)
    ]
    return torch.stack(dists, 0).amin(dim=0)


def reconstruction_loss(real: torch.Tensor, fake: torch.Tensor, area: int = 1) -> torch.Tensor:
    """The original's ``st_loss``: mean |real - fake| at area 1, else the mean nearest-neighbour distance."""
    if area == 1:
        return (real - fake).abs().mean()
    return nearest_neighbour_map(real, fake, area).mean()


# ================================================================================================== inputs
def heatmaps(keypoints: np.ndarray, size: Sequence[int], sigma: float) -> torch.Tensor:
    """(B,18,2) (y, x) -> (B,18,H,W) Gaussians, peak 1, centres truncated toward zero, tails of off-frame
    joints kept (ptx's ``gaussian_heatmaps(..., keep_outside=True)``); a missing joint gives zeros."""
    kps = torch.as_tensor(np.asarray(keypoints), dtype=torch.float32)
    present = (kps != -1).all(dim=-1)[..., None, None]
    kps = torch.trunc(kps)
    rows = torch.arange(int(size[0]), dtype=torch.float32).view(1, 1, -1, 1)
    cols = torch.arange(int(size[1]), dtype=torch.float32).view(1, 1, 1, -1)
    y, x = kps[..., 0, None, None], kps[..., 1, None, None]
    maps = torch.exp(-((rows - y) ** 2 + (cols - x) ** 2) / (2 * sigma**2))
    return maps * present


def frame_offset(size: Sequence[int], frame: Sequence[int]) -> tuple[int, int]:
    """(top, left) of the centred data inside the network frame (256x176 DeepFashion in 256x256)."""
    return (int(frame[0]) - int(size[0])) // 2, (int(frame[1]) - int(size[1])) // 2


def pad_to_frame(x: torch.Tensor, frame: Sequence[int]) -> torch.Tensor:
    """Border-replicating pad of NCHW ``x`` into ``frame`` (no-op when the sizes agree)."""
    top, left = frame_offset(x.shape[2:], frame)
    return F.pad(x, (left, left, top, top), mode="replicate") if top or left else x


def crop_from_frame(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    top, left = frame_offset(size, x.shape[2:])
    return x[:, :, top : top + int(size[0]), left : left + int(size[1])]


def torch_batch(batch: Mapping[str, np.ndarray], cfg: Any) -> dict[str, torch.Tensor]:
    """Network inputs from a host batch (``benchmarks.common.method_batch``): NCHW [-1, 1] images (source
    padded into the frame), heatmaps in the frame, the warp inputs, the data size."""

    def image(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float() / 127.5 - 1

    size = tuple(batch["source_image"].shape[1:3])
    frame = tuple(cfg.image_size)
    top, left = frame_offset(size, frame)
    out: dict[str, Any] = {"size": size, "target": image(batch["target_image"])}
    out["source"] = pad_to_frame(image(batch["source_image"]), frame)
    for side in ("source", "target"):
        kps = np.asarray(batch[f"{side}_keypoints"], np.float32)
        shifted = np.where((kps == -1).any(-1, keepdims=True), -1.0, kps + [top, left]).astype(np.float32)
        out[f"{side}_pose"] = heatmaps(shifted, frame, cfg.heatmap_sigma)
    out["transforms"] = (
        torch.from_numpy(np.asarray(batch["transforms"], np.float32)) if "transforms" in batch else None
    )
    out["masks"] = torch.from_numpy(np.asarray(batch["masks"], np.float32)) if "masks" in batch else None
    return out


# ============================================================================================ training step
class Trainer:
    """G, D, the optional VGG trunk and two Adams, stepping as ptx's trainer does (see module doc)."""

    def __init__(self, cfg: Any, options: Any, optim: Mapping[str, Mapping], keras_vgg: bool = False):
        self.cfg, self.opt = cfg, options
        self.gen, self.disc = Generator(cfg), Discriminator(cfg)
        init_keras(self.gen)
        init_keras(self.disc)
        layers = tuple(_keras_to_relu(n) for n in options.content_layers)
        self.vgg = VGGTrunk(layers, keras_vgg) if layers else None
        if self.vgg is not None:
            self.vgg.requires_grad_(False)  # frozen in the original; the gradient flows through it only
        self.optims = {
            "gen": adam(self.gen.parameters(), optim["gen"], method="Def-GAN", default_lr=2e-4),
            "disc": adam(self.disc.parameters(), optim["disc"], method="Def-GAN", default_lr=2e-4),
        }
        self.gen.train()
        self.disc.train()

    def generate(self, x: Mapping[str, Any]) -> torch.Tensor:
        """The generated image at the data's size."""
        out = self.gen(x["source"], x["source_pose"], x["target_pose"], x["transforms"], x["masks"])
        return crop_from_frame(out, x["size"])

    def d(self, x: Mapping[str, Any], image: torch.Tensor) -> torch.Tensor:
        return self.disc(
            x["source"], x["source_pose"], pad_to_frame(image, self.cfg.image_size), x["target_pose"]
        )

    def disc_terms(self, x: Mapping[str, Any], fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{true, fake}`` terms of D's loss (names as ptx's metrics), D applied to each as ptx does."""
        real_term, fake_term = discriminator_terms(self.d(x, x["target"]), self.d(x, fake))
        return {"true": real_term, "fake": fake_term}

    def generator_terms(self, x: Mapping[str, Any], fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted ``gan`` and ``l1`` terms whose weight is non-zero (names as ptx's)."""
        opt, terms = self.opt, {}
        if opt.gan:
            terms["gan"] = generator_gan(self.d(x, fake))
        if opt.l1:
            if self.vgg is not None:
                feats_fake = self.vgg(fake)
                with torch.no_grad():
                    feats_real = self.vgg(x["target"])
                pairs = [(feats_real[n], feats_fake[n]) for n in self.vgg.wanted]
            else:
                pairs = [(x["target"], fake)]
            terms["l1"] = sum(reconstruction_loss(r, f, opt.nn_area) for r, f in pairs)
        return terms

    def generator_loss(self, x: Mapping[str, Any], fake: torch.Tensor) -> torch.Tensor:
        terms = self.generator_terms(x, fake)
        return self.opt.gan * terms.get("gan", 0.0) + self.opt.l1 * terms.get("l1", 0.0)

    def step(self, x: Mapping[str, Any]) -> None:
        """One generator pass; D's update on its detached output; G's update through the updated D."""
        fake = self.generate(x)
        self.optims["disc"].zero_grad(set_to_none=True)
        sum(self.disc_terms(x, fake.detach()).values()).backward()
        self.optims["disc"].step()
        self.disc.requires_grad_(False)  # "D is frozen inside the G model": no D gradients in G's backward
        try:
            self.optims["gen"].zero_grad(set_to_none=True)
            self.generator_loss(x, fake).backward()
            self.optims["gen"].step()
        finally:
            self.disc.requires_grad_(True)


def _keras_to_relu(name: str) -> str:
    """``block1_conv2`` -> ``relu1_2``."""
    block, conv = name.removeprefix("block").split("_conv")
    return f"relu{int(block)}_{int(conv)}"


def build_trainer(config, batch_size: int, seed: int = 0) -> tuple[Trainer, dict[str, Any]]:
    """(Trainer of ``config`` with random weights, one synthetic batch through the method's pair hooks);
    ``ptx.methods.defgan.build`` parses the config, so ptx and this reference read it identically."""
    from benchmarks.common import method_batch
    from ptx.methods import defgan as method_lib  # config parsing and host geometry only

    method = method_lib.build(config)
    torch.manual_seed(seed)
    trainer = Trainer(method.cfg, method.options, config.optim, keras_vgg=method.keras_vgg)
    batch = method_batch(method, config.data, batch_size, seed)
    return trainer, torch_batch(batch, method.cfg)


def torch_reference(config, batch_size: int, stage: str | None = None) -> Callable[[], None]:
    """One Def-GAN optimisation step (D then G) of ``config`` at ``batch_size`` in PyTorch (CPU, all cores)."""
    if stage not in (None, "train"):
        raise ValueError(f"Def-GAN has one stage 'train', not {stage!r}")
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    trainer, batch = build_trainer(config, batch_size, int(config.get("seed", 0)))

    def step() -> None:
        trainer.step(batch)

    step.networks = {"gen": trainer.gen, "disc": trainer.disc}
    return step


def generator_step(config, batch_size: int) -> Callable[[], None]:
    """The generator forward in train mode (dropout on) and the gradient of mean|image| for every generator
    parameter (no optimizer): the work ``benchmarks.generator`` times for ptx."""
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    trainer, batch = build_trainer(config, batch_size, int(config.get("seed", 0)))
    gen = trainer.gen

    return image_grad_step(gen, lambda: trainer.generate(batch))
