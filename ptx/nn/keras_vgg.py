"""Keras' VGG19 (``keras.applications.vgg19``, ImageNet weights) for Keras-era perceptual losses (Def-GAN).

The network is torchvision's VGG19 trunk (``ptx.nn.vgg.VGG``: 3x3 'same' convs, ReLU, 2x2 max-pools); only the
weights and the expected input differ. Keras' weights are the Caffe model's: BGR input on the 0-255 scale with
the per-channel ImageNet mean subtracted. Keras layer names map to ptx's post-ReLU taps (Keras convs carry their
ReLU): ``blockB_convI`` -> ``reluB_I``.

:func:`defgan_preprocess` is the Def-GAN original's ``preprocess_for_vgg``, quirk included: it subtracts the
mean vector [103.939, 116.779, 123.68] (Caffe's B, G, R means) from the RGB image *before* flipping it to BGR,
so the blue channel gets -123.68 and the red channel -103.939 (swapped against what the weights were trained
with). Paper numbers used exactly this input.

Weights: ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (Keras downloads it to ``~/.keras/models/``;
users of the original have it), read with ``h5py`` (optional): layer groups ``blockB_convI`` holding a kernel
(3, 3, in, out), which is ptx's layout, and a bias.
"""

from __future__ import annotations

import os
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ptx.nn.vgg import layer_names

WEIGHT_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
_LAYER = re.compile(r"^block(\d)_conv(\d)$")


def keras_layer(name: str) -> str:
    """``block1_conv2`` -> ``relu1_2`` (the post-ReLU activation ptx's VGG returns)."""
    m = _LAYER.match(name)
    if m is None or f"relu{m.group(1)}_{m.group(2)}" not in layer_names("vgg19"):
        raise ValueError(f"{name!r} is not a Keras VGG19 conv layer (block1_conv1 ... block5_conv4)")
    return f"relu{m.group(1)}_{m.group(2)}"


def defgan_preprocess(images: jax.Array) -> jax.Array:
    """[-1, 1] RGB NHWC -> the Def-GAN original's VGG input: 0-255, minus the BGR mean in RGB order, then BGR."""
    x = 255.0 * (images + 1.0) / 2.0
    x = x - jnp.asarray(CAFFE_BGR_MEAN, x.dtype)
    return x[..., ::-1]


def load_keras_vgg19(path: str | os.PathLike) -> dict[str, Any]:
    """``ptx.nn.vgg.VGG`` params (``conv1_1`` ... ``conv5_4``) from Keras' VGG19 weight file."""
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(f"reading Keras' {WEIGHT_FILE} needs h5py (pip install h5py)") from e
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Keras VGG19 weights not found at {path} (expected {WEIGHT_FILE})")
    params: dict[str, Any] = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for name in root.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else str(name)
            m = _LAYER.match(name)
            if m is None:
                continue
            group = root[name]
            arrays = [
                np.asarray(group[w.decode() if isinstance(w, bytes) else w])
                for w in group.attrs["weight_names"]
            ]
            kernel = next(a for a in arrays if a.ndim == 4)
            bias = next(a for a in arrays if a.ndim == 1)
            params[f"conv{m.group(1)}_{m.group(2)}"] = {
                "kernel": jnp.asarray(kernel, jnp.float32),
                "bias": jnp.asarray(bias, jnp.float32),
            }
    expected = [n.replace("relu", "conv") for n in layer_names("vgg19")]
    missing = [n for n in expected if n not in params]
    if missing:
        raise KeyError(f"{path}: Keras VGG19 file lacks layers {missing}")
    return params
