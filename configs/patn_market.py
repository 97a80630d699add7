"""PATN on Market-1501 (paper) or market-style puppets (demo, tiny).

    python -m ptx.main --config configs/patn_market.py --workdir runs/patn_market \\
        --config.vgg_path ~/.cache/torch/hub/checkpoints/vgg19-dcbb9e9d.pth
    python -m ptx.main --config configs/patn_market.py:demo --workdir /tmp/patn_market_demo

paper: the README recipe. Market-1501 128x64, batch 32, no flip; 9 attention blocks, ngf 64, batch norm, dropout;
D_PP and D_PB with sigmoid outputs; loss 10 L1 + 10 VGG19-relu1_2 L1 + 5 BCE-GAN (BCE on logits), image pool 50;
Adam 2e-4, betas (0.5, 0.999), constant for 499 "epochs" of 125 steps then linearly to 0 over 201 (87,500 steps).
Needs the VGG19 file and ``python -m data_builders market1501_pose``. Published: SSIM 0.311, IS 3.323,
mask-SSIM 0.811 (PATN paper, Tab. 1).

demo: market puppets at 64x32 with the shared demo settings of ``configs/patn_fashion.py`` (600 steps; batch
norm and BCE-GAN as the paper, no image pool). Measured on the 360 held-out pairs (random VGG): SSIM 0.209 /
L1 0.267 / pSSIM 0.690 vs copy-source 0.180 / 0.349 / 0.602 and the mean training target image 0.081 / 0.302 /
0.572: beats both in SSIM and L1 (``tests/test_patn_demo_slow.py``). The market puppets' backgrounds are
cluttered and unrelated between source and target, so the scores stay low; at 500 steps the samples are still a
pose-shaped blur; instance norm instead of batch norm was worse (0.204 / 0.281). 4.5 min wall, 332 CPU s at a
load average of 3-4 (6.5 min at load 12-15).

tiny: 32x16 for tests.
"""

from configs.patn_fashion import patn_config


def get_config(arg=None):
    return patn_config(arg, data="market").lock()
