"""GFLA on Market-1501 (paper) or market-style puppets (demo, tiny).

    python -m ptx.main --config configs/gfla_market.py --workdir runs/gfla_market \\
        --config.vgg_path ~/.cache/torch/hub/checkpoints/vgg19-dcbb9e9d.pth
    python -m ptx.main --config configs/gfla_market.py:demo --workdir /tmp/gfla_market_demo

paper: the original's market options: 128x64 images, one attention layer at 1/4 (window 3), a 3-level
discriminator, batch 8, Adam betas (0, 0.999), lr 1e-4 (G) / 1e-5 (D); stages and losses as in
configs/gfla_fashion.py. Not reproduced: the original's small random affine augmentation of market images (the
pipeline offers flips only; off here). The paper reports FID 19.751, LPIPS 0.2817 (Tab. 1).

demo: market-style puppets (cluttered backgrounds) resized to 64x32, narrow networks, minutes on 2 CPU cores, with
the fashion demo's VGG-free losses and initialisers (see configs/gfla_fashion.py); expected to beat the copy-source and mean-image baselines as the fashion demo does (not asserted by a test).

tiny: the smallest networks at 64x32, a few steps, for tests.
"""

from configs.gfla_fashion import gfla_config


def get_config(arg=None):
    return gfla_config(arg, data="market").lock()
