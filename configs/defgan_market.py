"""Deformable GANs on Market-1501 (paper) or market-style puppets (demo, tiny); also the shared Def-GAN config
builder (``configs/defgan_fashion.py`` uses it).

    python -m ptx.main --config configs/defgan_market.py:paper,setting=full --workdir runs/defgan_market \\
        --config.vgg_path ~/.keras/models/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5
    python -m ptx.main --config configs/defgan_market.py:demo --workdir /tmp/defgan_market_demo

``setting`` picks one of the paper's four models (README commands, card section 5); every other option is the
``cmd.py`` default (gan weight 1, input pose on, max aggregation, ``disc_type=call``, heatmaps sigma 6):

=====================  ===========  ======  =========  ================
setting                warp_skip    l1      nn area    content layer
=====================  ===========  ======  =========  ================
``baseline``           none         100     1          (images)
``dsc``                mask         100     1          (images)
``full``               mask         0.01    3 (5 f.)   block1_conv2
``feature_matching``   mask         0.5     1          block2_conv1
=====================  ===========  ======  =========  ================

paper: 128x64 (the original's 6-level network), batch 4 (fashion ``full``: 2), no flip; Adam 2e-4, betas (0.5,
0.999), constant, for 90 "epochs" of 1000 iterations (90,000 steps), each step D then G. The content layers need
Keras' ImageNet VGG19 file (the paper's features, with the original's VGG input quirk: ``ptx.nn.keras_vgg``);
a torchvision ``vgg19-dcbb9e9d.pth`` also runs, with other weights. Needs ``python -m data_builders
market1501_pose``. Evaluation: the original's ``test.py`` protocol (``ptx.evaluate.protocols``, "defgan").

demo: market puppets at 64x32, a 5-level network (16..64 wide), ``dsc`` by default (pixel L1 100 converges in a
few hundred CPU steps; ``full`` would train on random VGG features without the weight file), 1000 steps at the
paper's Adam settings. Measured once each (``python -m ptx.main``, 1 CPU device, 2 cores shared at a load
average of 9-11), on the 268 held-out test pairs the pair filter keeps (of 360); SSIM / L1 on [-1, 1]:
``dsc`` 0.360 / 0.264 (8.9 min wall including building the puppets, 179 CPU s), ``setting=baseline`` 0.185 /
0.298 (3.3 min, 111 CPU s); copy the source 0.190 / 0.346, the mean training target 0.093 / 0.308. The
deformable skips beat the baseline generator and both trivial baselines; the baseline generator beats them in
L1 but not copy-source in SSIM.

tiny: 32x16, 4 levels, ``full`` by default (nearest-neighbour loss on VGG relu1_2, random weights), for tests.
"""

import os

from configs import common

KERAS_VGG = os.path.join("~", ".keras", "models", "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
SETTINGS = ("baseline", "dsc", "full", "feature_matching")
# data -> paper dataset, data frame, network frame, nn area of the "full" model, demo/tiny data and frames.
DATA = {
    "market": dict(
        name="market1501_pose",
        size=(128, 64),
        frame=(128, 64),
        full_area=3,
        demo=((64, 32), (64, 32)),
        tiny=((32, 16), (32, 16)),
    ),
    "fashion": dict(
        name="deepfashion_pose",
        size=(256, 176),  # ptx's DeepFashion (PATN's crop), run in the original's raw 256x256 frame
        frame=(256, 256),
        full_area=5,
        demo=((64, 44), (64, 64)),
        tiny=((32, 24), (32, 32)),
    ),
}
_NARROW = {
    "demo": dict(
        encoder_filters=(16, 32, 64, 64, 64), decoder_filters=(64, 64, 32, 16, 3), disc_filters=(16, 32, 64)
    ),
    "tiny": dict(encoder_filters=(4, 8, 8, 8), decoder_filters=(8, 8, 4, 3), disc_filters=(4, 8)),
}


def setting_loss(setting: str, data: str) -> dict:
    """(warp_skip, loss block) of one of the paper's four models."""
    if setting not in SETTINGS:
        raise ValueError(f"Def-GAN setting {setting!r}; expected one of {SETTINGS}")
    area = DATA[data]["full_area"]
    return {
        "baseline": ("none", dict(l1=100.0, nn_area=1, content_layers="")),
        "dsc": ("mask", dict(l1=100.0, nn_area=1, content_layers="")),
        "full": ("mask", dict(l1=0.01, nn_area=area, content_layers="block1_conv2")),
        "feature_matching": ("mask", dict(l1=0.5, nn_area=1, content_layers="block2_conv1")),
    }[setting]


def defgan_config(arg, *, data: str) -> common.ConfigDict:
    arg = common.parse_arg(arg, variant="paper", setting="", steps=0, batch=0, warp_agg="max", fsdp=False)
    v = arg.variant
    d = DATA[data]
    setting = arg.setting or common.by_variant(v, paper="full", demo="dsc", tiny="full")
    warp_skip, loss = setting_loss(setting, data)
    size, frame = (d["size"], d["frame"]) if v == "paper" else d[v]
    c = common.base("defgan")
    c.setting = setting
    c.data = common.ConfigDict(
        {
            "name": common.by_variant(v, paper=d["name"], demo="puppets", tiny="puppets"),
            "builder_config": common.by_variant(v, paper="", demo=f"{data}_small", tiny=f"{data}_tiny"),
            "data_dir": os.environ.get("PTX_DATA_DIR", "~/ptx_datasets"),
            "image_size": size,
            "flip": False,  # the original's pose_dataset.py does not augment
            "edges": False,
            "parsing": False,
            "names": False,
            "batch_size": arg.batch
            or common.by_variant(v, paper=2 if (data, setting) == ("fashion", "full") else 4, demo=4, tiny=2),
            "worker_count": 0,
        }
    )
    c.model = common.ConfigDict(
        {"image_size": frame, "warp_skip": warp_skip, "warp_agg": arg.warp_agg, **_NARROW.get(v, {})}
    )
    c.loss = common.ConfigDict({"gan": 1.0, **loss, "dropout_at_test": False})
    steps = arg.steps or common.by_variant(v, paper=90 * 1000, demo=1000, tiny=1)
    adam = common.adam(2e-4, 0.5, 0.999)
    c.optim = common.ConfigDict({p: adam for p in ("disc", "gen")})
    c.stages = [common.stage("train", steps, ["disc", "gen"])]
    c.vgg_path = common.by_variant(v, paper=KERAS_VGG, demo=KERAS_VGG, tiny="")
    c.vgg_fallback_random = v != "paper"
    c.sharding = common.sharding("fsdp" if arg.fsdp else "replicate")
    c.ckpt = common.ckpt(every_steps=common.by_variant(v, paper=5000, demo=0, tiny=0), keep=3)
    c.log = common.log(
        every_steps=common.by_variant(v, paper=100, demo=50, tiny=1),
        image_every_steps=common.by_variant(v, paper=2000, demo=250, tiny=0),
    )
    c.evals = common.ConfigDict(evals(v, data))
    c.eval_batches = common.by_variant(v, paper=0, demo=0, tiny=1)
    c.summary = common.summary_for(v)
    return c


def evals(variant: str, data: str) -> dict:
    """paper: the original's test.py metrics (``ptx.evaluate.protocols``); demo/tiny: SSIM and L1."""
    if variant == "paper":
        from ptx.evaluate import protocols

        return protocols.get("defgan", data)
    ssim = {"type": "ssim", "gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False,
            "data_range": "generated", "truncate": 3.5}  # fmt: skip
    return {"ssim": ssim, "l1": {"type": "l1"}}


def get_config(arg=None):
    return defgan_config(arg, data="market").lock()
