"""The pSSIM study (Shi et al., BMVC 2020) on Market-1501: PATN trained with the part-based SSIM loss.

    python -m ptx.main --config configs/pssim_market.py --workdir runs/pssim_market \\
        --config.vgg_path ~/.cache/torch/hub/checkpoints/vgg19-dcbb9e9d.pth
    python -m ptx.main --config configs/pssim_market.py:demo --workdir /tmp/pssim_market_demo

As ``configs/patn_market.py`` with the official pSSIM preset: 10 VGG19-relu1_2 L1 + 10 * (1 - pSSIM) (window 7,
sigma 0.8) + 5 BCE-GAN, lambda_A (pixel L1) 0, image pool 50.

demo: the shared demo settings of ``configs/patn_fashion.py``, with 10 perceptual + 10 pSSIM + 10 pixel L1 + 2
BCE-GAN, no pool. Measured (600 steps, 360 held-out pairs): SSIM 0.285 / L1 0.262 / pSSIM 0.716; beats
copy-source (0.180 / 0.349 / 0.602) and the mean training image (0.081 / 0.302 / 0.572) in SSIM and L1. 6.6 min wall, 391 CPU s at a
load average of 10-12 (about 3-4 min on idle cores).
"""

from configs.patn_fashion import patn_config


def get_config(arg=None):
    return patn_config(arg, data="market", study="pssim").lock()
