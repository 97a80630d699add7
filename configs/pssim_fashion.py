"""The pSSIM study (Shi et al., BMVC 2020) on DeepFashion: PATN trained with the part-based SSIM loss.

    python -m ptx.main --config configs/pssim_fashion.py --workdir runs/pssim_fashion \\
        --config.vgg_path ~/.cache/torch/hub/checkpoints/vgg19-dcbb9e9d.pth
    python -m ptx.main --config configs/pssim_fashion.py:demo --workdir /tmp/pssim_demo

Same method, data, networks and schedule as ``configs/patn_fashion.py``; only the loss preset differs: the
official ``--L1_type FPart_BSSIM_plus_perL1_L1`` with lambda_A 0, i.e. 1 VGG19-relu1_2 L1 + 1 * (1 - pSSIM)
(window 7, sigma 0.8; part masks from the target keypoints) + 5 LSGAN. Other ``--L1_type`` choices are other
weights in ``config.loss`` (``ptx.losses.pssim.RECONSTRUCTION_TERMS``), e.g. ``--config.loss.ssim=1``.

demo: the shared demo settings of ``configs/patn_fashion.py``, with 10 perceptual + 10 pSSIM + 10 pixel L1
(the preset's lambda_A 0 becomes 10: the demo is judged on L1) + 2 LSGAN. Measured (600 steps, 360 held-out pairs):
SSIM 0.664 / L1 0.137 / pSSIM 0.889, beating copy-source (0.355 / 0.225 / 0.723) and the mean training
image (0.308 / 0.208 / 0.780); 9.2 min wall, 521 CPU s at a load average of 9-13 (about 4-5 min on idle cores).
"""

from configs.patn_fashion import patn_config


def get_config(arg=None):
    return patn_config(arg, data="fashion", study="pssim").lock()
