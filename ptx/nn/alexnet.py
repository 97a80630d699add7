"""torchvision AlexNet ``features`` trunk (NHWC) with its five ReLU taps, as LPIPS-alex uses it.

Layout (torchvision ``alexnet().features`` indices): conv0 11x11/4 pad 2 -> relu -> maxpool 3/2 -> conv3 5x5
pad 2 -> relu -> maxpool -> conv6, conv8, conv10 3x3 pad 1, each followed by a ReLU. Parameters are named
``conv{N}`` after the torchvision index, so ``convert_torchvision`` is a rename plus the kernel transpose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ptx.nn.layers import Conv2d, max_pool

# (torchvision index, out channels, kernel, stride, padding, max-pool before)
_CONVS = (
    (0, 64, 11, 4, 2, False),
    (3, 192, 5, 1, 2, True),
    (6, 384, 3, 1, 1, True),
    (8, 256, 3, 1, 1, False),
    (10, 256, 3, 1, 1, False),
)
LAYERS = ("relu1", "relu2", "relu3", "relu4", "relu5")
WEIGHT_FILE = "alexnet-owt-7be5be79.pth"


class AlexNet(nn.Module):
    """Returns ``{"relu1": ..., ..., "relu5": ...}`` (NHWC) for already-normalised input."""

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        out = {}
        for name, (idx, feats, k, s, p, pool) in zip(LAYERS, _CONVS):
            if pool:
                x = max_pool(x, 3, 2)
            x = jax.nn.relu(Conv2d(feats, k, s, p, name=f"conv{idx}")(x))
            out[name] = x
        return out


_KEY = re.compile(r"(?:^|\.)features\.(\d+)\.(weight|bias)$")


def convert_torchvision(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """torchvision ``features.N.weight/bias`` (any prefix; classifier ignored) -> ``AlexNet`` params."""
    found: dict[int, dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        m = _KEY.search(key)
        if m:
            found.setdefault(int(m.group(1)), {})[m.group(2)] = np.asarray(value, np.float32)
    params = {}
    for idx, *_ in _CONVS:
        entry = found.get(idx, {})
        if set(entry) != {"weight", "bias"}:
            raise KeyError(f"AlexNet state dict lacks features.{idx}.weight/bias")
        params[f"conv{idx}"] = {
            "kernel": jnp.asarray(entry["weight"].transpose(2, 3, 1, 0)),
            "bias": jnp.asarray(entry["bias"]),
        }
    return params
