"""CASD on DeepFashion (paper) or fashion-style puppets (demo, tiny).

    python -m ptx.main --config configs/casd_fashion.py --workdir runs/casd_fashion \\
        --config.vgg_path ~/.cache/torch/hub/checkpoints/vgg19-dcbb9e9d.pth \\
        --config.lpips_trunk_path ~/.cache/torch/hub/checkpoints/vgg16-397923af.pth
    python -m ptx.main --config configs/casd_fashion.py:demo --workdir /tmp/casd_demo

paper: the original's recipe (reference card ``casd.md`` sections 5-6). DeepFashion at the original's squashed
256x256 frame with ``semantic_merge3`` parsing, no flip; batch 16 (the original ran it as 2 x 8 on two GPUs, so its
batch statistics were per 8 samples: ``spade_group=8`` reproduces that); generator and both ResnetDiscriminators at
the original widths; loss 1 L1 + 1 VGG19-relu1_2 L1 + 5 LSGAN (mean of D_PB and D_PP) + 0.1 AMCE + 0.5 VGG content
+ 200 VGG style + 1 LPIPS-vgg + 0.1 contextual; Adam lr 1e-3, betas (0.5, 0.999) for all three players, constant
for 498 "epochs" of 250 steps then linearly to 0 over 501 more (the original's 'lambda' rule
1 - max(0, e + 2 - 500) / 501, stepped per epoch there and per step here), 250,000 steps in all. Needs the
VGG19 and VGG16 torchvision files, the LPIPS lin weights (the lpips package's v0.1/vgg.pth) and the dataset built by
``python -m data_builders deepfashion_pose`` with parsing maps. The contextual term reads Gatys' ``vgg_conv.pth``
from ``vgg_conv_path`` (default ``fashion_data/vgg_conv.pth``, where the original reads it; a missing file stops
the first step with its name; ``--config.loss.contextual=0`` trains without it). (The paper's metrics are not
quoted here: the paper was not available offline and the repository reports none.)

demo: fashion puppets at 64x64 (squashed as the original squashes), narrow networks, batch 8, 1000 steps, Adam 1e-3
held then linearly to 0 over the second half. No LPIPS and no contextual term (no weight files on a fresh
machine); the loss VGG19 is random when its file is absent (a warning says so). Not yet measured.

tiny: the smallest networks at 16x16 for tests (every loss term on except LPIPS; the VGGs are seeded random).
"""

import os

from configs import common

VGG_DEFAULT = os.path.join("~", ".cache", "torch", "hub", "checkpoints", "vgg19-dcbb9e9d.pth")
VGG_CONV_DEFAULT = os.path.join("fashion_data", "vgg_conv.pth")  # the original's <dataroot>/vgg_conv.pth
VGG16_DEFAULT = os.path.join("~", ".cache", "torch", "hub", "checkpoints", "vgg16-397923af.pth")
EPOCH = 250  # the original's 4000 random pairs per "epoch" at batch 16

_NARROW = {
    "demo": dict(
        dim=32,
        content_widths=(16, 32),
        vgg_widths=(8, 16, 32, 64, 64),
        style_widths=(8, 16, 32, 64),
        mlp_dim=32,
        n_res=4,
        ndf=16,
    ),
    "tiny": dict(
        dim=8,
        content_widths=(4, 8),
        vgg_widths=(4, 4, 8, 8, 8),
        style_widths=(4, 4, 8, 8),
        mlp_dim=8,
        n_res=4,
        ndf=4,
    ),
}
LOSS = dict(l1=1.0, perceptual=1.0, gan=5.0, amce=0.1, content=0.5, style=200.0, lpips=1.0, contextual=0.1)


def get_config(arg=None):
    arg = common.parse_arg(arg, variant="paper", steps=0, batch=0, fsdp=False)
    v = arg.variant
    c = common.base("casd")
    c.data = common.ConfigDict(
        {
            "name": common.by_variant(v, paper="deepfashion_pose", demo="puppets", tiny="puppets"),
            "builder_config": common.by_variant(v, paper="", demo="fashion_small", tiny="fashion_tiny"),
            "data_dir": os.environ.get("PTX_DATA_DIR", "~/ptx_datasets"),
            "image_size": common.by_variant(v, paper=(256, 256), demo=(64, 64), tiny=(16, 16)),
            "flip": False,  # the original does not flip
            "edges": False,
            "parsing": True,
            "names": False,
            "batch_size": arg.batch or common.by_variant(v, paper=16, demo=8, tiny=2),
            "worker_count": 0,
        }
    )
    c.model = common.ConfigDict(
        {
            **_NARROW.get(v, {}),
            "spade_stats": "batch",
            "spade_group": common.by_variant(v, paper=8, demo=0, tiny=0),
        }
    )
    loss = dict(LOSS)
    if v != "paper":
        loss.update(lpips=0.0, contextual=0.1 if v == "tiny" else 0.0)
    c.loss = common.ConfigDict(loss)
    steps = arg.steps or common.by_variant(v, paper=1000 * EPOCH, demo=1000, tiny=1)
    if v == "paper":
        adam = common.adam(
            1e-3, 0.5, 0.999, schedule="linear", decay_start=498 * EPOCH, decay_steps=501 * EPOCH
        )
    elif v == "demo":
        adam = common.adam(
            1e-3, 0.5, 0.999, schedule="linear", decay_start=steps // 2, decay_steps=steps - steps // 2
        )
    else:
        adam = common.adam(1e-3, 0.5, 0.999)
    c.optim = common.ConfigDict({p: adam for p in ("gen", "disc_image", "disc_pose")})
    c.stages = [common.stage("train", steps, ["gen", "disc_image", "disc_pose"])]  # the original's order
    c.predict_spade_stats = "sample"  # = the original's test.py (batch 1), for any eval batch size
    c.vgg_path = common.by_variant(v, paper=VGG_DEFAULT, demo=VGG_DEFAULT, tiny="")
    c.vgg_conv_path = common.by_variant(v, paper=VGG_CONV_DEFAULT, demo="", tiny="")
    c.vgg_fallback_random = v != "paper"
    c.lpips_trunk_path = common.by_variant(v, paper=VGG16_DEFAULT, demo="", tiny="")
    c.lpips_lin_path = ""
    c.sharding = common.sharding("fsdp" if arg.fsdp else "replicate")
    c.ckpt = common.ckpt(every_steps=common.by_variant(v, paper=20 * EPOCH, demo=0, tiny=0), keep=3)
    c.log = common.log(
        every_steps=common.by_variant(v, paper=100, demo=50, tiny=1),
        image_every_steps=common.by_variant(v, paper=2000, demo=250, tiny=0),
    )
    ssim = {"type": "ssim", "gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False,
            "data_range": "generated", "truncate": 3.5}  # fmt: skip
    c.evals = common.ConfigDict({} if v == "tiny" else {"ssim": ssim, "l1": {"type": "l1"}})
    c.eval_batches = common.by_variant(v, paper=0, demo=0, tiny=1)
    c.summary = common.summary_for(v)
    return c.lock()
