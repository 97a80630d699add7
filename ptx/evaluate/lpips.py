"""LPIPS v0.1 (``lpips.LPIPS(net=..., version='0.1')``) in JAX, for net ``alex`` and ``vgg``.

Pipeline (inputs in [-1, 1], NHWC): (x - shift) / scale -> trunk ReLU taps (alex: relu1..5; vgg16: relu1_2,
relu2_2, relu3_3, relu4_3, relu5_3) -> unit-normalise each feature vector over channels (eps 1e-10) ->
squared difference -> 1x1 "lin" weights (no bias) -> spatial mean -> sum over the five taps.
Trunk weights are torchvision's ImageNet files; the lin weights ship inside the ``lpips`` package
(``lpips/weights/v0.1/<net>.pth``); both are converted here, never downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ptx.nn import alexnet, vgg

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
VGG_TAPS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
TAPS = {"alex": alexnet.LAYERS, "vgg": VGG_TAPS}
TRUNK_FILES = {"alex": alexnet.WEIGHT_FILE, "vgg": vgg.WEIGHT_FILES["vgg16"]}


class LPIPS(nn.Module):
    """Per-image LPIPS distance (B,) between NHWC images in [-1, 1]; ``per_layer`` adds the five terms."""

    net: str = "alex"

    @nn.compact
    def __call__(self, x0: jax.Array, x1: jax.Array, per_layer: bool = False):
        if self.net not in TAPS:
            raise ValueError(f"LPIPS net must be one of {sorted(TAPS)}, got {self.net!r}")
        trunk = alexnet.AlexNet(name="net") if self.net == "alex" else vgg.VGG("vgg16", VGG_TAPS, name="net")
        shift, scale = jnp.asarray(SHIFT), jnp.asarray(SCALE)
        n = x0.shape[0]
        feats = trunk((jnp.concatenate([x0, x1]) - shift) / scale)
        terms = []
        for i, tap in enumerate(TAPS[self.net]):
            f = feats[tap]
            f = f / (jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True)) + 1e-10)
            d = jnp.square(f[:n] - f[n:])
            w = self.param(f"lin{i}", nn.initializers.ones, (f.shape[-1],))
            terms.append(jnp.mean(d @ w, axis=(1, 2)))
        total = sum(terms)
        return (total, terms) if per_layer else total


_SLICE = re.compile(r"^net\.slice\d+\.(\d+)\.(weight|bias)$")
_LIN = re.compile(r"^lins?\.?(\d+)\.model\.1\.weight$")


def convert(lin_state_dict: Mapping[str, Any], trunk_state_dict: Mapping[str, Any], net: str) -> dict:
    """LPIPS params from the lpips package's lin file and a trunk state dict.

    The trunk may be torchvision's ``features.N.*`` file or a full LPIPS state dict (``net.sliceK.N.*``).
    """
    trunk = {}
    for key, value in trunk_state_dict.items():
        m = _SLICE.match(key)
        trunk[f"features.{m.group(1)}.{m.group(2)}" if m else key] = value
    params: dict[str, Any] = {
        "net": alexnet.convert_torchvision(trunk)
        if net == "alex"
        else vgg.convert_torchvision(trunk, "vgg16")
    }
    for key, value in lin_state_dict.items():
        m = _LIN.match(key)
        if m:
            params[f"lin{m.group(1)}"] = jnp.asarray(np.asarray(value, np.float32).reshape(-1))
    missing = [f"lin{i}.model.1.weight" for i in range(5) if f"lin{i}" not in params]
    if missing:
        raise KeyError(f"LPIPS lin weights lack {missing}")
    return params


def default_lin_path(net: str) -> str | None:
    """``lpips/weights/v0.1/<net>.pth`` inside an installed ``lpips`` package, if there is one."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "weights", "v0.1", f"{net}.pth")
    return path if os.path.isfile(path) else None


def missing_file_message(net: str, which: str) -> str:
    if which == "lin":
        return (
            f"LPIPS lin weights v0.1/{net}.pth: shipped inside the lpips package "
            f"(pip install lpips; file lpips/weights/v0.1/{net}.pth)"
        )
    name = TRUNK_FILES[net]
    return f"{name}: torchvision's ImageNet weights, from https://download.pytorch.org/models/{name}"


def load_lpips(net: str, trunk_path: str | os.PathLike, lin_path: str | os.PathLike | None = None) -> dict:
    """LPIPS params from files (a one-line error naming the missing file and where users get it)."""
    lin_path = lin_path or default_lin_path(net)
    for which, path in (("trunk", trunk_path), ("lin", lin_path)):
        if path is None or not os.path.isfile(os.fspath(path)):
            raise FileNotFoundError(
                f"LPIPS-{net} {which} weights not found ({path}); need {missing_file_message(net, which)}"
            )
    from ptx.io.torch_pickle import load_state_dict

    return convert(load_state_dict(os.fspath(lin_path)), load_state_dict(os.fspath(trunk_path)), net)
