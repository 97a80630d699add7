"""The CMU body network (``bodypose_model`` / Caffe ``pose_deploy``): VGG-19 stem + 6 two-branch CPM stages.

Layer names are the Caffe names (``conv1_1`` ... ``Mconv7_stage6_L2``), so a ``body_pose_model.pth`` or
``pose_estimator.h5`` maps onto the parameters by name. Branch L1 predicts the 38 part-affinity-field channels,
L2 the 19 heatmaps (18 joints + background). Stage t >= 2 reads [L1, L2, stem] concatenated on channels.
Widths are fields of :class:`Config` (the golden fixtures use a narrow copy); the converter infers them.

``heatmap_relu`` reproduces pytorch-openpose's extra ReLU after ``Mconv7_stage6_L2`` (its ``no_relu_layers``
names the L1 layer twice); Caffe and the Keras model of the dataset scripts have none.

Bucketing: ``valid_hw`` lets one compiled program serve every image up to the array's size. The image sits at
the top-left, zeros around it, and every layer's output is zeroed outside the valid region (whose size halves,
flooring, at each pool), so each valid pixel sees exactly the zero padding it would see at its own size.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from ptx.nn.layers import Conv2d, max_pool

# VGG-19 conv1_1..conv4_2 plus the two CPM convs; "pool" marks a 2x2 stride-2 max pool.
STEM_LAYERS = (
    "conv1_1", "conv1_2", "pool", "conv2_1", "conv2_2", "pool", "conv3_1", "conv3_2", "conv3_3", "conv3_4",
    "pool", "conv4_1", "conv4_2", "conv4_3_CPM", "conv4_4_CPM",
)  # fmt: skip
STEM_CONVS = tuple(name for name in STEM_LAYERS if name != "pool")
STAGE1_KERNELS = (3, 3, 3, 1, 1)
STAGE_KERNELS = (7, 7, 7, 7, 7, 1, 1)


@dataclasses.dataclass(frozen=True)
class Config:
    """Output widths per layer; the defaults are the released COCO model (52,311,446 parameters)."""

    stem_widths: tuple[int, ...] = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 256, 128)
    stage1_widths: tuple[int, ...] = (128, 128, 128, 512)  # conv5_1..conv5_4 of each branch
    stage_widths: tuple[int, ...] = (128, 128, 128, 128, 128, 128)  # Mconv1..Mconv6 of stages >= 2
    n_stages: int = 6
    paf_channels: int = 38
    heatmap_channels: int = 19
    in_channels: int = 3
    heatmap_relu: bool = True

    def __post_init__(self):
        if len(self.stem_widths) != len(STEM_CONVS):
            raise ValueError(f"stem_widths needs {len(STEM_CONVS)} entries, got {len(self.stem_widths)}")
        if len(self.stage1_widths) != len(STAGE1_KERNELS) - 1:
            raise ValueError(f"stage1_widths needs {len(STAGE1_KERNELS) - 1} entries")
        if len(self.stage_widths) != len(STAGE_KERNELS) - 1:
            raise ValueError(f"stage_widths needs {len(STAGE_KERNELS) - 1} entries")
        if self.n_stages < 1:
            raise ValueError("n_stages must be >= 1")


def stage_layers(stage: int, branch: int) -> tuple[str, ...]:
    """Conv names of one branch (1 = PAF, 2 = heatmap) of one stage, in order."""
    if stage == 1:
        return tuple(f"conv5_{i}_CPM_L{branch}" for i in range(1, len(STAGE1_KERNELS) + 1))
    return tuple(f"Mconv{i}_stage{stage}_L{branch}" for i in range(1, len(STAGE_KERNELS) + 1))


def conv_shapes(cfg: Config) -> dict[str, tuple[int, int, int]]:
    """Every conv as ``{name: (kernel, in, out)}`` in Keras/Caffe creation order: stem, stage 1 L1, stage 1
    L2, then L1 and L2 of each later stage."""
    shapes = {}
    c = cfg.in_channels
    for name, width in zip(STEM_CONVS, cfg.stem_widths):
        shapes[name] = (3, c, width)
        c = width
    stem = c
    outs = {1: cfg.paf_channels, 2: cfg.heatmap_channels}
    for stage in range(1, cfg.n_stages + 1):
        kernels = STAGE1_KERNELS if stage == 1 else STAGE_KERNELS
        hidden = cfg.stage1_widths if stage == 1 else cfg.stage_widths
        for branch in (1, 2):
            c = stem if stage == 1 else cfg.paf_channels + cfg.heatmap_channels + stem
            for name, k, width in zip(stage_layers(stage, branch), kernels, (*hidden, outs[branch])):
                shapes[name] = (k, c, width)
                c = width
    return shapes


def _valid_mask(x: jax.Array, valid_hw: jax.Array | None, level: int) -> jax.Array:
    """Zeroes rows/columns of ``x`` beyond the valid size at pool level ``level`` (size // 2**level)."""
    if valid_hw is None:
        return x
    h, w = valid_hw[0] // 2**level, valid_hw[1] // 2**level
    rows = jnp.arange(x.shape[1]) < h
    cols = jnp.arange(x.shape[2]) < w
    return x * (rows[:, None] & cols[None, :])[None, :, :, None].astype(x.dtype)


class BodyPoseNet(nn.Module):
    """NHWC BGR image normalised by the caller -> (PAF (N, H/8, W/8, 38), heatmap (N, H/8, W/8, 19)).

    Stage outputs are sown into ``intermediates`` as ``stage{t}_L1`` / ``stage{t}_L2`` (and the last heatmap
    before the optional ReLU as ``stage{n}_L2_prerelu``).
    """

    cfg: Config

    @nn.compact
    def __call__(self, x: jax.Array, valid_hw: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        cfg, shapes = self.cfg, conv_shapes(self.cfg)

        def conv(name: str, h: jax.Array, level: int, relu: bool = True) -> jax.Array:
            k, _, width = shapes[name]
            h = Conv2d(width, k, padding=k // 2, name=name)(h)
            return _valid_mask(jax.nn.relu(h) if relu else h, valid_hw, level)

        level = 0
        h = _valid_mask(x, valid_hw, 0)
        for name in STEM_LAYERS:
            if name == "pool":
                level += 1
                h = _valid_mask(max_pool(h, 2), valid_hw, level)
            else:
                h = conv(name, h, level)
        stem = h
        paf = heat = None
        for stage in range(1, cfg.n_stages + 1):
            inputs = stem if stage == 1 else jnp.concatenate([paf, heat, stem], axis=-1)
            outs = []
            for branch in (1, 2):
                names = stage_layers(stage, branch)
                b = inputs
                for name in names[:-1]:
                    b = conv(name, b, level)
                b = conv(names[-1], b, level, relu=False)
                if stage == cfg.n_stages and branch == 2 and cfg.heatmap_relu:
                    self.sow("intermediates", f"stage{stage}_L2_prerelu", b)
                    b = jax.nn.relu(b)
                self.sow("intermediates", f"stage{stage}_L{branch}", b)
                outs.append(b)
            paf, heat = outs
        return paf, heat
