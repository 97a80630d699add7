"""Reader of ``vgg_conv.pth``, the conv-only VGG19 of Gatys et al.'s PyTorch style-transfer code.

SCA-GAN, CASD and ADGAN load it for their contextual loss (``models/vgg.py``: a ``VGG`` module with attributes
``conv1_1`` ... ``conv5_4`` and parameter-free max-pools). Its state dict is therefore 32 tensors named
``conv{block}_{i}.weight`` (out, in, 3, 3) and ``.bias``; no classifier. The architecture is torchvision's
VGG19 trunk (3x3 convs with zero padding 1, ReLU, 2x2 max-pool after each block), so the weights load into
``ptx.nn.vgg.VGG("vgg19")`` whose conv names are the same. The originals feed it raw [-1, 1] RGB images.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from ptx.nn import vgg

FILE = "vgg_conv.pth"
WHERE = (
    "vgg_conv.pth (Gatys et al.'s conv-only VGG19, the file SCA-GAN / CASD / ADGAN read from their "
    "fashion_data folder; its PytorchNeuralStyleTransfer README links https://bethgelab.org/media/uploads/"
    "pytorch_models/vgg_conv.pth)"
)


def conv_names() -> list[str]:
    """``conv1_1`` ... ``conv5_4`` in forward order."""
    return list(vgg.torchvision_indices("vgg19"))


def convert_vgg_conv(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``vgg_conv.pth`` state dict -> ``ptx.nn.vgg.VGG("vgg19")`` params; any missing or extra key raises."""
    sd = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state_dict.items()}
    expected = {f"{name}.{leaf}" for name in conv_names() for leaf in ("weight", "bias")}
    missing, extra = sorted(expected - set(sd)), sorted(set(sd) - expected)
    if missing or extra:
        raise ValueError(
            f"not a {FILE} state dict: missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {extra[:4]}{'...' if len(extra) > 4 else ''}"
        )
    params = {}
    for name in conv_names():
        w = np.asarray(sd[f"{name}.weight"], np.float32)
        if w.ndim != 4 or w.shape[2:] != (3, 3):
            raise ValueError(f"{FILE}: {name}.weight has shape {w.shape}; expected (out, in, 3, 3)")
        params[name] = {
            "kernel": jnp.asarray(w.transpose(2, 3, 1, 0)),
            "bias": jnp.asarray(np.asarray(sd[f"{name}.bias"], np.float32)),
        }
    return params


def load_vgg_conv(path: str | os.PathLike) -> dict[str, Any]:
    """``VGG("vgg19")`` params from a ``vgg_conv.pth`` file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found; need {WHERE}")
    from ptx.io.torch_pickle import load_state_dict  # lazy: only needed for real files

    return convert_vgg_conv(load_state_dict(path))
