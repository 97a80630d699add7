"""The pSSIM study (Shi et al., BMVC 2020) on Market-1501: PATN trained with the part-based SSIM loss.

    python -m ptx.main --config configs/pssim_market.py --workdir runs/pssim_market \\
        --config.vgg_path ~/.cache/torch/hub/checkpoints/vgg19-dcbb9e9d.pth
    python -m ptx.main --config configs/pssim_market.py:demo --workdir /tmp/pssim_market_demo

As ``configs/patn_market.py`` with the official pSSIM preset: 10 VGG19-relu1_2 L1 + 10 * (1 - pSSIM) (window 7,
sigma 0.8) + 5 BCE-GAN, lambda_A (pixel L1) 0, image pool 50.
"""

from configs.patn_fashion import patn_config


def get_config(arg=None):
    return patn_config(arg, data="market", study="pssim").lock()
