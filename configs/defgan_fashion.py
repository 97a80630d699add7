"""Deformable GANs on DeepFashion (paper) or fashion-style puppets (demo, tiny).

    python -m ptx.main --config configs/defgan_fashion.py:paper,setting=full --workdir runs/defgan_fashion \\
        --config.vgg_path ~/.keras/models/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5
    python -m ptx.main --config configs/defgan_fashion.py:demo --workdir /tmp/defgan_fashion_demo

Settings, schedule and VGG as ``configs/defgan_market.py``; ``full`` uses a 5x5 nearest-neighbour window and
batch 2 here, as the README's fashion command.

paper: the original trained on the raw 256x256 In-shop images (7-level network). ptx's ``deepfashion_pose`` data
is PATN's 256x176 crop of them, which no depth of the network fits (176 = 11 * 16); the data is padded back to
the original's 256x256 frame (40 columns each side, edge pixels), keypoints shifted, and outputs cropped to
256x176 (``ptx.models.defgan`` docs). Official fashion weights convert and run unchanged.

demo: fashion puppets at 64x44 in a 64x64 frame (the same padding), 5 levels, ``dsc``. Not yet measured.

tiny: 32x24 data in a 32x32 frame (exercises the padding), 4 levels, for tests.
"""

from configs.defgan_market import defgan_config


def get_config(arg=None):
    return defgan_config(arg, data="fashion").lock()
