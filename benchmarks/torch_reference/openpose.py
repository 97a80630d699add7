"""Our PyTorch body network in pytorch-openpose's ``bodypose_model`` layout (state-dict names
``model0.conv1_1.weight`` ... ``model6_2.Mconv7_stage6_L2.bias``), any width (a ptx ``Config``).

Used as the reference network where no golden exists (other input sizes, the multi-scale pipeline) and for the
pose benchmark's PyTorch column; ``tests/test_pose.py`` checks it against ``openpose_body_small`` first.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from ptx.models.openpose.network import STEM_LAYERS, Config, conv_shapes, stage_layers


def _convs(names, shapes, *, relu_last: bool, pool_names=None) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, name in enumerate(names):
        if name == "pool":
            layers[pool_names.pop(0)] = nn.MaxPool2d(2, 2)
            continue
        k, cin, cout = shapes[name]
        layers[name] = nn.Conv2d(cin, cout, k, padding=k // 2)
        if i < len(names) - 1 or relu_last:
            layers[f"relu_{name}"] = nn.ReLU()
    return nn.Sequential(layers)


class BodyPoseModel(nn.Module):
    """(N, 3, H, W) normalised BGR -> (PAF, heatmap), NCHW; ``heatmap_relu`` as in ptx's Config."""

    def __init__(self, cfg: Config | None = None):
        super().__init__()
        cfg = cfg or Config()
        shapes = conv_shapes(cfg)
        self.n_stages = cfg.n_stages
        pools = ["pool1_stage1", "pool2_stage1", "pool3_stage1"]
        self.model0 = _convs(STEM_LAYERS, shapes, relu_last=True, pool_names=pools)
        for b in (1, 2):  # registration order = the original's state-dict order: all L1 stages, then L2
            for t in range(1, cfg.n_stages + 1):
                last_relu = cfg.heatmap_relu and t == cfg.n_stages and b == 2
                setattr(self, f"model{t}_{b}", _convs(stage_layers(t, b), shapes, relu_last=last_relu))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stem = self.model0(x)
        paf, heat = self.model1_1(stem), self.model1_2(stem)
        for t in range(2, self.n_stages + 1):
            h = torch.cat([paf, heat, stem], dim=1)
            paf, heat = getattr(self, f"model{t}_1")(h), getattr(self, f"model{t}_2")(h)
        return paf, heat


def load_flat(model: BodyPoseModel, flat) -> None:
    """Loads a ``body_pose_model.pth``-style flat state dict (``conv1_1.weight``) as pytorch-openpose's
    ``util.transfer`` does: every module key minus its block prefix; strict."""
    state = {key: torch.as_tensor(np.array(flat[key.split(".", 1)[1]])) for key in model.state_dict()}
    model.load_state_dict(state, strict=True)


def run_nhwc(model: BodyPoseModel, image) -> tuple:
    """float32 (h, w, 3) normalised image -> (paf, heatmap) as float32 NumPy (h', w', C), like ptx's network."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(np.transpose(image, (2, 0, 1))[None], np.float32))
        paf, heat = model(x)
    return paf[0].permute(1, 2, 0).numpy(), heat[0].permute(1, 2, 0).numpy()
