"""SCA-GAN training steps in plain PyTorch: the "same work" figure beside ptx's in ``benchmarks.train_step``.

Our own PyTorch implementation written from the reference card (``shared/reference/scagan.md``) and ptx's model
(``ptx.models.scagan``), validated against the goldens recorded from the original code
(``tests/test_torch_reference_scagan.py``):

* :class:`PCTNet` -- the PCT-Net (``ResnetGenerator(37, 1)`` with batch norm): ``prepro``, ``encoder``,
  ``residual.<k>.conv_block``, ``decoder``, ``postpro``, so official checkpoints load with ``strict=True``.
* :class:`ISNet` -- ``CSGenerator``: ``edge_generator.model_edge`` (a frozen PCT-Net), ``enc_style`` (its blocks
  registered twice, as ``head_0`` / ``down_k`` and as ``model.<k>``, giving the original's aliased keys), ``fc``,
  seven Content-Style DeBlks (``head_0``, ``G_middle_0``, ``G_middle_1``, ``up_0`` .. ``up_3``), ``conv_img``.
* :class:`ResnetDiscriminator` (PATN's, instance norm, dropout) for D_PB and D_PP of both stages.
* Losses: L1, VGG19 relu1_2 perceptual L1 (PATN reference's :class:`VGGRelu12`), LSGAN, the contextual loss on
  a conv-only VGG19's relu3_2 / relu4_2 (:func:`contextual_loss`).
* :func:`torch_reference` -- one ``optimize_parameters`` step of stage ``pctnet`` or ``isnet``; Adam per
  ``config.stages[i].optim``; random weights (random VGGs) and one synthetic batch held inside.

NCHW throughout, as the original; the config is parsed by ``ptx.methods.scagan.build`` so sizes, widths and
loss weights are exactly ptx's. torch is imported here only; ptx itself never needs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch_reference import adam, image_grad_step
from benchmarks.torch_reference.patn import ResnetBlock, VGGRelu12, encoder_layers, gan_loss, heatmaps

DECODER = (  # (module name, output width / nf, upsample after it): CSGenerator's DeBlk schedule
    ("head_0", 8, True),
    ("G_middle_0", 8, False),
    ("G_middle_1", 8, True),
    ("up_0", 8, True),
    ("up_1", 4, True),
    ("up_2", 2, True),
    ("up_3", 1, False),
)
CX_LAYERS = ("relu3_2", "relu4_2")
VGG19_BLOCKS = (2, 2, 4, 4, 4)  # convs per block; a 2x2 max-pool after each


# ================================================================================================ PCT-Net
def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-5, momentum=0.1)


class PCTBlock(nn.Module):
    """x + [pad, conv3, BN, ReLU, pad, conv3, BN] (``conv_block.1/2/5/6``), no activation after the sum."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), _bn(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=False), _bn(dim),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class PCTNet(nn.Module):
    """cat(EP1, BP2, BEP2) -> target edge map (tanh). Stride-2 convs zero-pad, 7x7 and residual convs reflect."""

    def __init__(self, cfg):
        super().__init__()
        ngf, n_down = cfg.edge_ngf, cfg.edge_downsampling
        widths = [ngf * 2**i for i in range(n_down + 1)]
        self.prepro = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(cfg.pct_input_nc, ngf, 7, bias=False), _bn(ngf), nn.ReLU(True)
        )
        enc: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            enc += [nn.Conv2d(a, b, 3, stride=2, padding=1, bias=False), _bn(b), nn.ReLU(True)]
        self.encoder = nn.Sequential(*enc)
        self.residual = nn.Sequential(*(PCTBlock(widths[-1]) for _ in range(cfg.edge_blocks)))
        dec: list[nn.Module] = []
        for a, b in zip(widths[:0:-1], widths[-2::-1]):
            dec += [
                nn.ConvTranspose2d(a, b, 3, 2, padding=1, output_padding=1, bias=False),
                _bn(b),
                nn.ReLU(True),
            ]
        self.decoder = nn.Sequential(*dec)
        self.postpro = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, cfg.edge_nc, 7), nn.Tanh())

    def forward(
        self, edge: torch.Tensor, pose: torch.Tensor, shifted: torch.Tensor, trace: dict | None = None
    ) -> torch.Tensor:
        x = self.encoder(self.prepro(torch.cat([edge, pose, shifted], 1)))
        y = self.residual(x)
        if trace is not None:
            trace.update(encoder=x, residual=y)
        return self.postpro(self.decoder(y))


class EdgeContentEncoder(nn.Module):
    """Holder of the frozen PCT-Net, so its keys read ``edge_generator.model_edge.*``."""

    def __init__(self, cfg):
        super().__init__()
        self.model_edge = PCTNet(cfg)


# ================================================================================================= IS-Net
class PadConv(nn.Module):
    """Reflect pad + conv with bias (the ``.conv`` child gives the original's ``<name>.conv.*`` keys)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, pad: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(pad)
        self.conv = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(self.pad(x)))


class ResidualConvBlock(nn.Module):
    """ReLU(conv(x)) + ReLU(conv3(ReLU(conv(x)))) with mid width max(in, out): ``skip``, ``conv1``, ``conv2``."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, pad: int):
        super().__init__()
        mid = max(cin, cout)
        self.conv1 = PadConv(cin, mid, k, stride, pad)
        self.skip = PadConv(cin, cout, k, stride, pad)
        self.conv2 = PadConv(mid, cout, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + self.skip(x)


class StyleEncoder(nn.Module):
    """``SPADEStyleEncoder``: head (7x7) then stride-2 blocks -> a spatial style map; ``model`` aliases them."""

    def __init__(self, widths: Sequence[int], in_ch: int = 3):
        super().__init__()
        self.head_0 = ResidualConvBlock(in_ch, widths[0], 7, 1, 3)
        blocks = [self.head_0]
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            setattr(self, f"down_{i}", ResidualConvBlock(a, b, 3, 2, 1))
            blocks.append(getattr(self, f"down_{i}"))
        self.model = nn.Sequential(*blocks)  # the same modules again: the state dict lists them twice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class SPADE(nn.Module):
    """IN(x) * (1 + gamma(c)) + beta(c), c nearest-resized (torch's legacy rule) to x; hidden width ``hidden``."""

    def __init__(self, norm_nc: int, label_nc: int, hidden: int):
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False, eps=1e-5)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, 3, padding=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        a = self.mlp_shared(F.interpolate(cond, size=x.shape[2:], mode="nearest"))
        return self.param_free_norm(x) * (1 + self.mlp_gamma(a)) + self.mlp_beta(a)


class DeBlock(nn.Module):
    """Content-Style DeBlk: edge branch (style, then edges twice) + pose branch (style, then pose twice); no
    shortcut. Convs 3x3 zero-padded with bias, LeakyReLU 0.2 before each."""

    def __init__(self, fin: int, fout: int, style_nc: int, edge_nc: int, pose_nc: int, hidden: int, w: float):
        super().__init__()
        mid, self.w = min(fin, fout), w
        self.conv_s1, self.conv_e1, self.conv_e2 = self._convs(fin, mid, fout)
        self.conv_s2, self.conv_p1, self.conv_p2 = self._convs(fin, mid, fout)
        self.norm_s1 = SPADE(fin, style_nc, hidden)
        self.norm_e1, self.norm_e2 = SPADE(mid, edge_nc, hidden), SPADE(mid, edge_nc, hidden)
        self.norm_s2 = SPADE(fin, style_nc, hidden)
        self.norm_p1, self.norm_p2 = SPADE(mid, pose_nc, hidden), SPADE(mid, pose_nc, hidden)

    @staticmethod
    def _convs(fin: int, mid: int, fout: int) -> tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d]:
        return (nn.Conv2d(fin, mid, 3, padding=1), nn.Conv2d(mid, mid, 3, padding=1),
                nn.Conv2d(mid, fout, 3, padding=1))  # fmt: skip

    @staticmethod
    def _step(conv: nn.Module, norm: SPADE, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return conv(F.leaky_relu(norm(x, cond), 0.2))

    def forward(self, x, style, edge, pose) -> torch.Tensor:
        e = self._step(self.conv_s1, self.norm_s1, x, style)
        e = self._step(self.conv_e2, self.norm_e2, self._step(self.conv_e1, self.norm_e1, e, edge), edge)
        p = self._step(self.conv_s2, self.norm_s2, x, style)
        p = self._step(self.conv_p2, self.norm_p2, self._step(self.conv_p1, self.norm_p1, p, pose), pose)
        return e + p if self.w <= 0 else self.w * e + (1 - self.w) * p


class ISNet(nn.Module):
    """``CSGenerator``: (P1, EP1, BP2, BEP2, EP2, z) -> (fake_EP2, image); z ~ N(0, I) drawn when not given."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.edge_generator = EdgeContentEncoder(cfg)
        self.edge_generator.requires_grad_(False)  # frozen, as the original
        widths = cfg.style_widths
        self.enc_style = StyleEncoder(widths, cfg.image_nc)
        self.fc = nn.Linear(cfg.z_dim, 8 * cfg.nf * cfg.latent_size[0] * cfg.latent_size[1])
        fin = 8 * cfg.nf
        for name, mult, _ in DECODER:
            block = DeBlock(fin, mult * cfg.nf, widths[-1], cfg.edge_nc, cfg.pose_nc, cfg.spade_hidden,
                            cfg.content_weight)  # fmt: skip
            setattr(self, name, block)
            fin = mult * cfg.nf
        self.conv_img = nn.Conv2d(cfg.nf, cfg.image_nc, 3, padding=1)

    def forward(
        self,
        source: torch.Tensor,
        source_edge: torch.Tensor,
        target_pose: torch.Tensor,
        shifted: torch.Tensor,
        target_edge: torch.Tensor | None = None,  # accepted and unused, as the original
        z: torch.Tensor | None = None,
        trace: dict | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, b = self.cfg, source.shape[0]
        edge = self.edge_generator.model_edge(source_edge, target_pose, shifted)
        style = self.enc_style(source)
        z = torch.randn(b, cfg.z_dim) if z is None else z
        latent = self.fc(z)
        x = latent.view(b, 8 * cfg.nf, *cfg.latent_size)
        if trace is not None:
            trace.update(fake_EP2=edge, style=style, fc=latent)
        sizes = iter(cfg.up_sizes)
        for name, _, upsample in DECODER:
            x = getattr(self, name)(x, style, edge, target_pose)
            if trace is not None:
                trace[name] = x
            if upsample:
                x = F.interpolate(x, size=next(sizes), mode="bilinear", align_corners=False)
        image = torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))
        if trace is not None:
            trace["image"] = image
        return edge, image


# ================================================================================================ critics
class ResnetDiscriminator(nn.Module):
    """PATN's critic with instance norm and dropout: a (B, 4 ndf, H/4, W/4) LSGAN score map, ``model.<idx>``."""

    def __init__(self, cfg, in_ch: int):
        super().__init__()
        widths = [cfg.ndf * 2 ** min(i, 2) for i in range(cfg.n_downsampling_d + 1)]
        layers = encoder_layers(in_ch, widths, "instance", True)
        block = dict(norm="instance", padding_type="reflect", use_dropout=cfg.use_dropout_d, use_bias=True)
        layers += [ResnetBlock(widths[-1], **block) for _ in range(cfg.n_blocks_d)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def init_generator(net: nn.Module) -> None:
    """``init_weights(net, 'normal')`` as define_G: conv / linear weights N(0, 0.02) (biases keep PyTorch's
    default), batch-norm weight N(1, 0.02) and bias 0. Critics keep PyTorch's defaults (define_D inits none)."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# ================================================================================================= losses
class VGGConv(nn.Module):
    """Gatys' conv-only VGG19 (``vgg_conv.pth`` names ``conv<b>_<i>``) up to relu4_2 on raw [-1, 1] input;
    returns {relu3_2, relu4_2}. Frozen: the contextual loss only reads it."""

    def __init__(self, last: str = "relu4_2"):
        super().__init__()
        self.order: list[str] = []
        cin = 3
        for b, (n, width) in enumerate(zip(VGG19_BLOCKS, (64, 128, 256, 512, 512)), start=1):
            for i in range(1, n + 1):
                self.add_module(f"conv{b}_{i}", nn.Conv2d(cin, width, 3, padding=1))
                self.order.append(f"{b}_{i}")
                cin = width
                if f"relu{b}_{i}" == last:
                    break
            else:
                continue
            break
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out, block = {}, 1
        for name in self.order:
            b = int(name.split("_")[0])
            if b != block:
                x, block = F.max_pool2d(x, 2), b
            x = torch.relu(getattr(self, f"conv{name}")(x))
            if f"relu{name}" in CX_LAYERS:
                out[f"relu{name}"] = x
        return out


def contextual_loss(generated: torch.Tensor, target: torch.Tensor, sigma: float = 0.5, eps: float = 1e-5):
    """CXLoss(sigma 0.5, b 1): centre by the target's batch-and-space mean, unit channel vectors, d = (1 -
    cos) / 2, relative to each generated position's nearest target, softmax over targets of -d~ / sigma;
    mean over batch of -log(mean_j max_i CX_ij). NCHW feature maps."""
    mean = target.mean(dim=(0, 2, 3), keepdim=True)
    i, t = generated - mean, target - mean
    i = (i / i.norm(dim=1, keepdim=True)).flatten(2)  # (B, C, N)
    t = (t / t.norm(dim=1, keepdim=True)).flatten(2)
    d = (1 - torch.bmm(i.transpose(1, 2), t)) / 2  # (B, N_generated, N_target)
    rel = d / (d.min(dim=2, keepdim=True).values + eps)
    cx = torch.softmax(-rel / sigma, dim=2)
    return -torch.log(cx.max(dim=1).values.mean(dim=1)).mean()


# ========================================================================================== training step
CONDITION = {  # critic -> the batch tensor concatenated after the fake / real sample
    ("pctnet", "pp"): "source_edge",
    ("pctnet", "pb"): "target_pose",
    ("isnet", "pp"): "source",
    ("isnet", "pb"): "target_pose",
}
PLAYER = {  # (stage, critic) -> the ptx player holding its optimizer settings
    ("pctnet", "pp"): "edge_disc_image",
    ("pctnet", "pb"): "edge_disc_pose",
    ("isnet", "pp"): "disc_image",
    ("isnet", "pb"): "disc_pose",
}


class Trainer:
    """``scagan_pct`` / ``scagan_is`` training side of one stage: G, D_PB, D_PP, the VGGs, three Adams."""

    def __init__(self, cfg, weights: Mapping[str, float], stage: str, optim: Mapping[str, Mapping]):
        if stage not in ("pctnet", "isnet"):
            raise ValueError(f"SCA-GAN stages are pctnet and isnet, not {stage!r}")
        self.cfg, self.w, self.stage = cfg, dict(weights), stage
        self.gen = PCTNet(cfg) if stage == "pctnet" else ISNet(cfg)
        init_generator(self.gen)
        fake_nc = cfg.edge_nc if stage == "pctnet" else cfg.image_nc
        cond_nc = {"pp": cfg.edge_nc if stage == "pctnet" else cfg.image_nc, "pb": cfg.pose_nc}
        self.disc = {k: ResnetDiscriminator(cfg, fake_nc + n) for k, n in cond_nc.items()}
        self.vgg = VGGRelu12() if self.w.get("perceptual") else None
        self.vgg_cx = VGGConv() if stage == "isnet" and self.w.get("cx") else None
        trainable = [p for p in self.gen.parameters() if p.requires_grad]  # IS-Net: PCT-Net excluded
        self.optims = {"gen": adam(trainable, optim["gen"], method="SCA-GAN", default_lr=2e-4)}
        self.optims |= {
            k: adam(d.parameters(), optim[PLAYER[stage, k]], method="SCA-GAN", default_lr=2e-4)
            for k, d in self.disc.items()
        }
        for net in (self.gen, *self.disc.values()):
            net.train()  # the original never calls .eval() while training (frozen PCT-Net BN included)

    def generate(self, batch: Mapping[str, torch.Tensor], z: torch.Tensor | None = None) -> torch.Tensor:
        """Stage pctnet: fake edges; isnet: the image (z drawn unless given)."""
        args = (batch["source_edge"], batch["target_pose"], batch["shifted_edges"])
        if self.stage == "pctnet":
            return self.gen(*args)
        return self.gen(batch["source"], *args, None, z)[1]

    def real(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return batch["target_edge"] if self.stage == "pctnet" else batch["target"]

    def critic_input(self, key: str, sample: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([sample, batch[CONDITION[self.stage, key]]], 1)

    def generator_terms(
        self, fake: torch.Tensor, batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Unweighted G terms with a non-zero weight (names as ``ptx.methods.scagan.TERMS``)."""
        w, real, terms = self.w, self.real(batch), {}
        if w.get("l1"):
            terms["l1"] = (fake - real).abs().mean()
        if self.vgg is not None:
            with torch.no_grad():
                feats_real = self.vgg(real)
            terms["perceptual"] = (self.vgg(fake) - feats_real).abs().mean()
        if self.vgg_cx is not None:
            with torch.no_grad():
                feats_real = self.vgg_cx(real)
            feats_fake = self.vgg_cx(fake)
            terms["cx"] = sum(contextual_loss(feats_fake[n], feats_real[n]) for n in CX_LAYERS)
        if w.get("gan"):
            adv = [
                gan_loss(d(self.critic_input(k, fake, batch)), True, "lsgan") for k, d in self.disc.items()
            ]
            terms["gan"] = sum(adv) / len(adv)
        return terms

    def generator_loss(self, fake: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.w[k] * v for k, v in self.generator_terms(fake, batch).items())

    def disc_loss(self, key: str, fake: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """lambda_GAN * 0.5 * (MSE(D(real), 1) + MSE(D(fake.detach()), 0)); no image pool (pool_size 0)."""
        d = self.disc[key]
        real_in = self.critic_input(key, self.real(batch), batch)
        fake_in = self.critic_input(key, fake.detach(), batch)
        both = gan_loss(d(real_in), True, "lsgan") + gan_loss(d(fake_in), False, "lsgan")
        return 0.5 * self.w.get("gan", 0.0) * both

    def step(self, batch: Mapping[str, torch.Tensor]) -> None:
        """``optimize_parameters``: G forward and update, then D_PP, then D_PB."""
        fake = self.generate(batch)
        self.optims["gen"].zero_grad()
        self.generator_loss(fake, batch).backward()
        self.optims["gen"].step()
        if not self.w.get("gan"):
            return
        for key in ("pp", "pb"):
            self.optims[key].zero_grad()
            self.disc_loss(key, fake, batch).backward()
            self.optims[key].step()


# ================================================================================================= inputs
def pipeline_batch(batch_size: int, size: tuple[int, int], seed: int = 0) -> dict[str, np.ndarray]:
    """A pipeline-style batch after SCA-GAN's host transform: uint8 images, (y, x) keypoints (10 % missing),
    XDoG edges and BEP2 shifted-edge crops (ptx's ``add_shifted_edges``, the original's compat values)."""
    from ptx.methods.scagan import add_shifted_edges

    rng = np.random.default_rng(seed)
    h, w = size
    batch = {}
    for role in ("source", "target"):
        batch[f"{role}_image"] = rng.integers(0, 256, (batch_size, h, w, 3), dtype=np.uint8)
        kps = np.floor(rng.uniform(0.05, 0.95, (batch_size, 18, 2)) * [h, w]).astype(np.float32)
        kps[rng.uniform(size=(batch_size, 18)) < 0.1] = -1.0
        batch[f"{role}_keypoints"] = kps
    rows = [add_shifted_edges({k: v[i] for k, v in batch.items()}) for i in range(batch_size)]
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def torch_batch(batch: Mapping[str, np.ndarray], heatmap_sigma: float = 12.0) -> dict[str, torch.Tensor]:
    """The original's tensors from a pipeline batch: NCHW [-1, 1] images, inverted edges (lines +1), sigma-12
    target pose maps, BEP2 as it is (values -1 / 507 / 509)."""

    def image(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).float() / 127.5 - 1

    def edge(x: np.ndarray) -> torch.Tensor:
        return ((255.0 - torch.from_numpy(np.asarray(x, np.float32))) / 255.0 - 0.5)[:, None] / 0.5

    size = batch["source_image"].shape[1:3]
    return {
        "source": image(batch["source_image"]),
        "target": image(batch["target_image"]),
        "source_edge": edge(batch["source_edge"]),
        "target_edge": edge(batch["target_edge"]),
        "target_pose": heatmaps(batch["target_keypoints"], size, heatmap_sigma),
        "shifted_edges": torch.from_numpy(np.ascontiguousarray(batch["shifted_edges"].transpose(0, 3, 1, 2))),
    }


def build_trainer(
    config, batch_size: int, stage: str, seed: int = 0
) -> tuple[Trainer, dict[str, torch.Tensor]]:
    """(Trainer of ``config``'s stage ``stage`` with random weights, one synthetic batch); the config is parsed
    by ``ptx.methods.scagan.build``, so widths, sizes and loss weights are exactly ptx's."""
    from ptx.methods import scagan as method_lib

    method = method_lib.build(config)
    optim = {s.name: s.optim for s in config.stages}[stage]
    torch.manual_seed(seed)
    trainer = Trainer(method.cfg, method.weights, stage, optim)
    batch = pipeline_batch(batch_size, tuple(int(v) for v in config.data.image_size), seed)
    return trainer, torch_batch(batch, method.options.heatmap_sigma)


def torch_reference(config, batch_size: int, stage: str | None = None) -> Callable[[], None]:
    """One SCA-GAN optimisation step of ``config``'s ``stage`` (default: the last, isnet) in PyTorch (CPU)."""
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    stage = stage or config.stages[-1].name
    trainer, batch = build_trainer(config, batch_size, stage, int(config.get("seed", 0)))
    return lambda: trainer.step(batch)


DESCRIPTION = "PyTorch re-implementation checked against the original's goldens, CPU"


def generator_step(config, batch_size: int) -> Callable[[], None]:
    """The reference card's CPU timing: the IS-Net forward in train mode (z drawn, the frozen PCT-Net on batch
    statistics) and the gradient of mean|image| for every trainable generator parameter (no optimizer)."""
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    trainer, batch = build_trainer(config, batch_size, "isnet", int(config.get("seed", 0)))
    gen = trainer.gen

    return image_grad_step(gen, lambda: trainer.generate(batch))
