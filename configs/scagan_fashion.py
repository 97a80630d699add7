"""SCA-GAN on DeepFashion (paper) or fashion-style puppets (demo, tiny): PCT-Net, then IS-Net.

    python -m ptx.main --config configs/scagan_fashion.py --workdir runs/scagan_fashion \\
        --config.vgg_path ~/.cache/torch/hub/checkpoints/vgg19-dcbb9e9d.pth \\
        --config.vgg_conv_path fashion_data/vgg_conv.pth
    python -m ptx.main --config configs/scagan_fashion.py:demo --workdir /tmp/scagan_demo

paper: the original's scripts (reference card §6-7). DeepFashion at its 256x176 frame with the ``trainE/diff``
XDoG edges (``data.edges``; built by ``python -m data_builders deepfashion_pose`` with the edge folder), no flip.
Stage ``pctnet`` (``train_pctnet.sh``): PCT-Net, batch 5, Adam 2e-4 betas (0.5, 0.999), 2 + 2 "epochs" of 4000
random pairs (800 steps). Stage ``isnet`` (``train_isnet.sh``): IS-Net with the stage-1 PCT-Net frozen, batch 3,
Adam 1e-4, 200 + 200 epochs (1334 steps: 4000 pairs, the original's last batch of 1 counted as a step). Both
critics per stage (ndf 64, 3 blocks, dropout), Adam at the stage's rate. Learning rate: the original's LambdaLR
``1 - max(0, e + 1 - niter) / (niter_decay + 1)`` in epoch e (1-based), stepped once per epoch: the decay
starts one epoch early and the last epoch runs at rate 0 (``linear`` from epoch niter - 1 over niter_decay + 1
epochs, changing every ``interval`` = one epoch of steps). Loss: 1 L1 + 1 VGG19-relu1_2 L1 + 5 LSGAN
(D_PB and D_PP averaged), + 0.1 contextual loss on vgg_conv relu3_2 + relu4_2 in stage ``isnet``. BEP2 in the
original's compatibility mode (``loss.bep_mode``; values 507 / 509, ``ptx.data.shifted_edges``), radius 20;
sigma-12 pose maps. Needs the torchvision VGG19 file and Gatys' ``vgg_conv.pth``. Published (paper Tab. 1,
DeepFashion): SSIM 0.775, FID 10.09, LPIPS 0.204 (not reproduced here).

demo: fashion puppets at 64x44, XDoG edges computed from the photos, narrow networks, the paper's loss weights
and learning rates, each stage's per-epoch decay compressed (pctnet 4 epochs of 75 steps, isnet 20 of 30). Uses
the VGG files when present, otherwise seeded random VGG features (a warning says so). Measured
(``tests/test_scagan_demo_slow.py``, random VGG features, the 360 held-out pairs of the test split; SSIM
Gaussian 1.5 / range 255, L1 in [0, 1]): image 0.472 / 0.0950 vs copy-source 0.370 / 0.1125 and the mean
training target 0.421 / 0.1038 (beats both); stage-1 edges L1 0.168 vs copying the source's edges 0.204. Time:
18.5 min wall for the run (puppets build included) on the 2 shared cores at a load average of 6-8; 773 CPU
seconds, so about 6.5 min on idle cores.

tiny: the smallest networks at 64x44 (the IS-Net's height must be a multiple of 32), one step per stage.
"""

import os

from configs import common

VGG_DEFAULT = os.path.join("~", ".cache", "torch", "hub", "checkpoints", "vgg19-dcbb9e9d.pth")
VGG_CONV_DEFAULT = os.path.join("fashion_data", "vgg_conv.pth")  # where the original reads it

# (niter, niter_decay, steps per epoch, batch, lr) per stage and variant.
SCHEDULES = {
    "paper": {"pctnet": (2, 2, 800, 5, 2e-4), "isnet": (200, 200, 1334, 3, 1e-4)},
    "demo": {"pctnet": (2, 2, 75, 5, 2e-4), "isnet": (10, 10, 30, 3, 1e-4)},
    "tiny": {"pctnet": (2, 0, 1, 2, 2e-4), "isnet": (2, 0, 1, 2, 1e-4)},
}
_NARROW = {
    "demo": dict(
        edge_ngf=16, edge_blocks=3, style_ngf=8, nf=16, z_dim=32, spade_hidden=32, ndf=16, n_blocks_d=1
    ),
    "tiny": dict(edge_ngf=4, edge_blocks=1, style_ngf=4, nf=4, z_dim=8, spade_hidden=8, ndf=4, n_blocks_d=1),
}
STAGE_PLAYERS = {
    "pctnet": ["gen", "edge_disc_image", "edge_disc_pose"],
    "isnet": ["gen", "disc_image", "disc_pose"],
}


def epoch_adam(lr: float, niter: int, niter_decay: int, epoch_steps: int) -> common.ConfigDict:
    """Adam (0.5, 0.999) with the original's per-epoch LambdaLR (module docstring) for ``epoch_steps``-step
    epochs: factor 1 - max(0, e + 1 - niter) / (niter_decay + 1) in epoch e (niter >= 2: with 1 the original
    runs its first epoch at rate 0)."""
    if niter < 2:
        raise ValueError(f"niter={niter}: the per-epoch rule needs niter >= 2")
    adam = common.adam(
        lr,
        0.5,
        0.999,
        schedule="linear",
        decay_start=(niter - 2) * epoch_steps,
        decay_steps=(niter_decay + 1) * epoch_steps,
    )
    adam.interval = epoch_steps
    return adam


def stages(variant: str, steps: int = 0) -> list:
    out = []
    for name in ("pctnet", "isnet"):
        niter, decay, epoch, batch, lr = SCHEDULES[variant][name]
        num_steps = steps or (niter + decay) * epoch
        adam = epoch_adam(lr, niter, decay, epoch)
        players = STAGE_PLAYERS[name]
        optim = common.ConfigDict({p: adam for p in players})
        out.append(common.stage(name, num_steps, players, batch_size=batch, optim=optim))
    return out


def evals(variant: str) -> dict:
    """paper: SSIM as getMetrics_fashion (PATN's call, 40 white columns each side), FID at batch 1 and LPIPS
    alex (its 8-panel JPEG strips are not reproduced); demo/tiny: SSIM and L1 on the puppets as generated."""
    ssim = {"type": "ssim", "gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False,
            "data_range": "generated", "truncate": 3.5}  # fmt: skip
    if variant == "paper":
        return {
            "ssim": {**ssim, "pad_white": 40},
            "fid": {"type": "fid", "batch_size": 1},
            "lpips": {"type": "lpips", "net": "alex"},
        }
    return {"ssim": ssim, "l1": {"type": "l1"}}


def get_config(arg=None):
    arg = common.parse_arg(arg, variant="paper", steps=0, bep_mode="compat")
    v = arg.variant
    c = common.base("scagan")
    c.data = common.ConfigDict(
        {
            "name": common.by_variant(v, paper="deepfashion_pose", demo="puppets", tiny="puppets"),
            "builder_config": common.by_variant(v, paper="", demo="fashion_small", tiny="fashion_tiny"),
            "data_dir": os.environ.get("PTX_DATA_DIR", "~/ptx_datasets"),
            "image_size": common.by_variant(v, paper=(256, 176), demo=(64, 44), tiny=(64, 44)),
            "flip": False,  # use_flip 0
            "edges": v == "paper",  # trainE/diff; the puppets' edges are computed by the host transform
            "parsing": False,
            "names": False,
            "batch_size": SCHEDULES[v]["pctnet"][3],
            "worker_count": 0,
        }
    )
    c.model = common.ConfigDict(_NARROW.get(v, {}))
    c.loss = common.ConfigDict(
        {"l1": 1.0, "perceptual": 1.0, "gan": 5.0, "cx": 0.1, "bep_mode": arg.bep_mode, "crop_radius": 20}
    )
    c.stages = stages(v, arg.steps or common.by_variant(v, paper=0, demo=0, tiny=1))
    c.optim = common.ConfigDict()  # per stage (stages[i].optim)
    c.heatmap_sigma = 12.0
    c.edge_batch_stats = True  # the frozen PCT-Net's batch norm in stage isnet, as the original
    c.vgg_path = common.by_variant(v, paper=VGG_DEFAULT, demo=VGG_DEFAULT, tiny="")
    c.vgg_conv_path = common.by_variant(v, paper=VGG_CONV_DEFAULT, demo="", tiny="")
    c.vgg_fallback_random = v != "paper"
    c.ckpt = common.ckpt(every_steps=common.by_variant(v, paper=5000, demo=0, tiny=0), keep=3)
    c.log = common.log(
        every_steps=common.by_variant(v, paper=100, demo=50, tiny=1),
        image_every_steps=common.by_variant(v, paper=2000, demo=250, tiny=0),
    )
    c.evals = common.ConfigDict(evals(v))
    c.eval_batches = common.by_variant(v, paper=0, demo=0, tiny=1)
    return c.lock()
