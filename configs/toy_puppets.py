"""Toy two-player method on the built-in puppets data: the trainer's smoke test.

    python -m ptx.main --config configs/toy_puppets.py:demo --workdir /tmp/toy
    python -m ptx.main --config configs/toy_puppets.py:tiny,steps=20 --workdir /tmp/toy --config.seed=1

Stage ``warmup`` trains the generator alone (L1); stage ``full`` adds the patch critic (LSGAN). There is no
expected metric: the toy exists to exercise stages, sharding, checkpoints and logging in seconds.
Switches: ``steps`` (total over both stages), ``batch`` (global batch), ``fsdp`` (shard params and moments).
"""

from configs import common
from ptx.data import pipeline


def get_config(arg=None):
    arg = common.parse_arg(arg, variant="demo", steps=0, batch=0, fsdp=False)
    v = arg.variant
    c = common.base("toy")

    c.data = pipeline.default_data_config(
        "puppets",
        common.by_variant(v, paper="fashion_default", demo="fashion_small", tiny="fashion_tiny"),
        image_size=common.by_variant(v, paper=(128, 64), demo=(64, 32), tiny=(32, 16)),
        flip=True,
    )
    c.data.batch_size = arg.batch or common.by_variant(v, paper=16, demo=8, tiny=8)
    c.data.worker_count = 0
    c.model = common.ConfigDict(
        {"width": common.by_variant(v, paper=32, demo=16, tiny=4), "dtype": "float32", "noise": 0.05}
    )
    c.loss = common.ConfigDict({"l1": 10.0, "gan": 1.0})
    c.optim = common.ConfigDict({"gen": common.adam(2e-4), "disc": common.adam(2e-4)})

    steps = arg.steps or common.by_variant(v, paper=20000, demo=400, tiny=6)
    c.stages = [
        common.stage("warmup", steps // 2, ["gen"]),
        common.stage("full", steps - steps // 2, ["gen", "disc"]),
    ]

    c.sharding = common.sharding(
        "fsdp" if arg.fsdp else "replicate",
        fsdp_min_size=common.by_variant(v, paper=4096, demo=4096, tiny=16),
    )
    c.ckpt = common.ckpt(every_steps=common.by_variant(v, paper=2000, demo=100, tiny=2), keep=2)
    c.log = common.log(
        every_steps=common.by_variant(v, paper=100, demo=20, tiny=2),
        image_every_steps=common.by_variant(v, paper=2000, demo=200, tiny=0),
    )
    # Cheap metrics on a few test batches; an entry's every_steps > 0 also runs it during training.
    c.evals = common.ConfigDict(
        {}
        if v == "tiny"
        else {"ssim": {"type": "ssim", "every_steps": 0}, "l1": {"type": "l1", "every_steps": 0}}
    )
    c.eval_batches = common.by_variant(v, paper=0, demo=2, tiny=1)
    c.summary = common.summary_for(v)
    return c.lock()
