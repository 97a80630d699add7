"""torchvision VGG16 / VGG19 feature trunks (NHWC), for perceptual losses and LPIPS.

``VGG`` returns the activation after every ReLU under torchvision-style names (``relu1_1`` ... ``relu5_4``)
and stops at the deepest layer asked for, so a loss that only needs ``relu1_2`` (PATN) runs two convs.
Parameters come from torchvision's ``features.N.weight/bias`` state dict (``convert_torchvision``) or, when no
file is given, from seeded random weights (``load_vgg(None)``) so tests and demos run without a download.
The module takes images already normalised by the caller (losses differ: ImageNet mean/std, or raw [-1, 1]
as GFLA does); ``imagenet_normalize`` is the common choice.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ptx.nn.layers import Conv2d, max_pool

# Convs per block; a 2x2 max-pool follows every block (torchvision ``cfgs`` "D" and "E").
_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_WIDTHS = (64, 128, 256, 512, 512)

WEIGHT_FILES = {"vgg16": "vgg16-397923af.pth", "vgg19": "vgg19-dcbb9e9d.pth"}
_WHERE = (
    "torchvision downloads it from https://download.pytorch.org/models/{name} into "
    "~/.cache/torch/hub/checkpoints/ (the file the original repositories use)"
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names(arch: str = "vgg19") -> list[str]:
    """ReLU names in forward order, e.g. ``relu1_1, relu1_2, relu2_1, ...``."""
    _check_arch(arch)
    return [f"relu{b + 1}_{i + 1}" for b, n in enumerate(_BLOCKS[arch]) for i in range(n)]


def torchvision_indices(arch: str = "vgg19") -> dict[str, int]:
    """Conv name (``conv3_2``) -> index N of ``features.N`` in torchvision's ``vgg16``/``vgg19``."""
    _check_arch(arch)
    out, idx = {}, 0
    for b, n in enumerate(_BLOCKS[arch]):
        for i in range(n):
            out[f"conv{b + 1}_{i + 1}"] = idx
            idx += 2  # conv, relu
        idx += 1  # max-pool
    return out


def _check_arch(arch: str) -> None:
    if arch not in _BLOCKS:
        raise ValueError(f"unknown VGG arch {arch!r}; expected one of {sorted(_BLOCKS)}")


def imagenet_normalize(x: jax.Array, input_range: tuple[float, float] = (-1.0, 1.0)) -> jax.Array:
    """Maps images in ``input_range`` to [0, 1], then (x - mean) / std with torchvision's ImageNet values."""
    lo, hi = input_range
    x = (x - lo) / (hi - lo)
    mean = jnp.asarray(IMAGENET_MEAN, x.dtype)
    std = jnp.asarray(IMAGENET_STD, x.dtype)
    return (x - mean) / std


class VGG(nn.Module):
    """torchvision VGG ``features`` trunk; returns ``{relu name: activation}`` (NHWC).

    ``layers`` selects the returned activations (default: all); computation stops after the deepest one.
    ``widths`` are the five blocks' channel counts (torchvision's by default; narrow ones for parity fixtures
    of networks that embed a VGG, e.g. CASD's style encoder).
    """

    arch: str = "vgg19"
    layers: Sequence[str] | None = None
    dtype: Any = None
    widths: Sequence[int] = _WIDTHS

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        names = layer_names(self.arch)
        wanted = list(names) if self.layers is None else list(self.layers)
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise ValueError(f"unknown {self.arch} layers {unknown}; available: {names}")
        last = max(names.index(n) for n in wanted)
        out: dict[str, jax.Array] = {}
        k = 0
        for b, n_convs in enumerate(_BLOCKS[self.arch]):
            if b > 0:
                x = max_pool(x, 2)
            for i in range(n_convs):
                name = f"{b + 1}_{i + 1}"
                x = Conv2d(self.widths[b], 3, padding=1, dtype=self.dtype, name=f"conv{name}")(x)
                x = jax.nn.relu(x)
                if f"relu{name}" in wanted:
                    out[f"relu{name}"] = x
                if k == last:
                    return out
                k += 1
        return out


_FEATURE_KEY = re.compile(r"(?:^|\.)features\.(\d+)\.(weight|bias)$")


def convert_torchvision(state_dict: Mapping[str, Any], arch: str | None = None) -> dict[str, Any]:
    """torchvision ``features.N.weight/bias`` (any prefix, classifier ignored) -> ``VGG`` params.

    ``arch`` is inferred from the number of convs when not given. Raises naming the missing keys.
    """
    found: dict[int, dict[str, np.ndarray]] = {}
    for key, value in state_dict.items():
        m = _FEATURE_KEY.search(key)
        if m:
            found.setdefault(int(m.group(1)), {})[m.group(2)] = np.asarray(value, np.float32)
    if arch is None:
        arch = {16: "vgg19", 13: "vgg16"}.get(len(found))
        if arch is None:
            raise ValueError(f"cannot infer VGG arch from {len(found)} features.N convs (expected 13 or 16)")
    params: dict[str, Any] = {}
    missing = []
    for conv, idx in torchvision_indices(arch).items():
        entry = found.get(idx, {})
        if "weight" not in entry or "bias" not in entry:
            missing.append(f"features.{idx}.weight/bias")
            continue
        w = entry["weight"]
        if w.ndim != 4 or w.shape[2:] != (3, 3):
            raise ValueError(f"features.{idx}.weight has shape {w.shape}; expected (out, in, 3, 3)")
        params[conv] = {"kernel": jnp.asarray(w.transpose(2, 3, 1, 0)), "bias": jnp.asarray(entry["bias"])}
    if missing:
        raise KeyError(f"{arch} state dict lacks {missing}")
    return params


def random_params(arch: str = "vgg19", seed: int = 0, widths: Sequence[int] = _WIDTHS) -> dict[str, Any]:
    """He-normal random VGG weights (numpy, deterministic): sane feature scale, no pretrained meaning."""
    _check_arch(arch)
    rs = np.random.RandomState(seed)
    params, cin = {}, 3
    for b, n in enumerate(_BLOCKS[arch]):
        for i in range(n):
            cout = widths[b]
            w = rs.standard_normal((3, 3, cin, cout)) * np.sqrt(2.0 / (9 * cin))
            params[f"conv{b + 1}_{i + 1}"] = {
                "kernel": jnp.asarray(w, jnp.float32),
                "bias": jnp.zeros((cout,), jnp.float32),
            }
            cin = cout
    return params


def missing_weights_message(arch: str) -> str:
    name = WEIGHT_FILES[arch]
    return f"{name} ({arch} ImageNet weights): " + _WHERE.format(name=name)


def load_vgg(path: str | os.PathLike | None, arch: str = "vgg19", *, seed: int = 0) -> dict[str, Any]:
    """``VGG`` params from a torchvision ``.pth`` file, or seeded random weights (with a warning) for None."""
    _check_arch(arch)
    if path is None:
        warnings.warn(
            f"no {WEIGHT_FILES[arch]} given: using seeded random {arch} weights; perceptual terms will not "
            "match the papers",
            stacklevel=2,
        )
        return random_params(arch, seed)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"VGG weights not found at {path}; need {missing_weights_message(arch)}")
    from ptx.io.torch_pickle import load_state_dict  # lazy: only needed for real files

    return convert_torchvision(load_state_dict(path), arch)
