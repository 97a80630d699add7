"""InceptionV3 as pytorch-fid builds it for FID (and the Inception Score of the originals), NHWC.

The FID variant (``FIDInceptionA/C/E_1/E_2``) differs from torchvision's network: its average pools exclude
the padding from the count, the last block max-pools, and BatchNorm uses eps 1e-3. It reproduces the TF graph
``inception-2015-12-05`` whose weights users hold as ``pt_inception-2015-12-05-6726825d.pth``; parameter
names follow that file (torchvision ``Inception3`` names), so ``convert_torch`` is a mechanical rename.

``preprocess`` is pytorch-fid's input path (uint8 -> [0, 1] -> bilinear resize to 299 without antialiasing,
half-pixel centres -> 2x - 1); ``mode="tf_graph"`` is the TF graph's own ResizeBilinear (no half-pixel
centres) and (x - 128) / 128, which the originals' Inception Score scripts fed at native size.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ptx.nn.layers import BatchNorm, Conv2d, Dense, avg_pool, max_pool

WEIGHT_FILE = "pt_inception-2015-12-05-6726825d.pth"
TORCHVISION_WEIGHT_FILE = "inception_v3_google-0cc3c7bd.pth"  # (older torchvision: ...-1a9a5a14.pth)
WEIGHT_SOURCE = (
    "the FID Inception weights pytorch-fid downloads from "
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    + WEIGHT_FILE
    + " (cached by torch under ~/.cache/torch/hub/checkpoints/)"
)
NUM_CLASSES = 1008
POOL_DIM = 2048


class BasicConv(nn.Module):
    """Conv (no bias) + BatchNorm(eps 1e-3, running statistics) + ReLU: torchvision ``BasicConv2d``."""

    features: int
    kernel_size: int | tuple[int, int]
    stride: int = 1
    padding: int | tuple[int, int] = 0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = Conv2d(self.features, self.kernel_size, self.stride, self.padding, use_bias=False, name="conv")(x)
        return jax.nn.relu(BatchNorm(eps=1e-3, name="bn")(x, train=False))


def _avg3(x: jax.Array, count_include_pad: bool = False) -> jax.Array:
    return avg_pool(x, 3, 1, 1, count_include_pad=count_include_pad)


class InceptionA(nn.Module):
    pool_features: int
    count_include_pad: bool = False  # True: torchvision's block, False: pytorch-fid's FIDInceptionA

    @nn.compact
    def __call__(self, x):
        b1 = BasicConv(64, 1, name="branch1x1")(x)
        b5 = BasicConv(64, 5, padding=2, name="branch5x5_2")(BasicConv(48, 1, name="branch5x5_1")(x))
        b3 = BasicConv(64, 1, name="branch3x3dbl_1")(x)
        b3 = BasicConv(96, 3, padding=1, name="branch3x3dbl_2")(b3)
        b3 = BasicConv(96, 3, padding=1, name="branch3x3dbl_3")(b3)
        bp = BasicConv(self.pool_features, 1, name="branch_pool")(_avg3(x, self.count_include_pad))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv(384, 3, stride=2, name="branch3x3")(x)
        bd = BasicConv(64, 1, name="branch3x3dbl_1")(x)
        bd = BasicConv(96, 3, padding=1, name="branch3x3dbl_2")(bd)
        bd = BasicConv(96, 3, stride=2, name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, max_pool(x, 3, 2)], axis=-1)


class InceptionC(nn.Module):
    channels_7x7: int
    count_include_pad: bool = False

    @nn.compact
    def __call__(self, x):
        c = self.channels_7x7
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) of the factorised 7x7
        b1 = BasicConv(192, 1, name="branch1x1")(x)
        b7 = BasicConv(c, 1, name="branch7x7_1")(x)
        b7 = BasicConv(c, row[0], padding=row[1], name="branch7x7_2")(b7)
        b7 = BasicConv(192, col[0], padding=col[1], name="branch7x7_3")(b7)
        bd = BasicConv(c, 1, name="branch7x7dbl_1")(x)
        for i, (k, p) in enumerate([col, row, col, row], start=2):
            bd = BasicConv(192 if i == 5 else c, k, padding=p, name=f"branch7x7dbl_{i}")(bd)
        bp = BasicConv(192, 1, name="branch_pool")(_avg3(x, self.count_include_pad))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv(192, 1, name="branch3x3_1")(x)
        b3 = BasicConv(320, 3, stride=2, name="branch3x3_2")(b3)
        b7 = BasicConv(192, 1, name="branch7x7x3_1")(x)
        b7 = BasicConv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv(192, 3, stride=2, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, max_pool(x, 3, 2)], axis=-1)


class InceptionE(nn.Module):
    """``pool="avg"`` is FIDInceptionE_1 (count_include_pad False), ``"max"`` FIDInceptionE_2;
    ``"avg_incl"`` is torchvision's InceptionE (padding counted)."""

    pool: str = "avg"

    @nn.compact
    def __call__(self, x):
        def split(h, prefix):
            a = BasicConv(384, (1, 3), padding=(0, 1), name=f"{prefix}a")(h)
            b = BasicConv(384, (3, 1), padding=(1, 0), name=f"{prefix}b")(h)
            return jnp.concatenate([a, b], axis=-1)

        b1 = BasicConv(320, 1, name="branch1x1")(x)
        b3 = split(BasicConv(384, 1, name="branch3x3_1")(x), "branch3x3_2")
        bd = BasicConv(448, 1, name="branch3x3dbl_1")(x)
        bd = split(BasicConv(384, 3, padding=1, name="branch3x3dbl_2")(bd), "branch3x3dbl_3")
        pooled = max_pool(x, 3, 1, 1) if self.pool == "max" else _avg3(x, self.pool == "avg_incl")
        bp = BasicConv(192, 1, name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
    """pytorch-fid's FID InceptionV3 on preprocessed NHWC input (B, 299, 299, 3) in [-1, 1].

    Returns ``{"pool3": (B, 2048)}``, plus ``"logits"`` (B, 1008) = pool3 @ fc weight **without** the fc
    bias (the TF graph's ``softmax/logits/MatMul`` that the Inception Score scripts read) when
    ``with_logits``, plus ``block0``..``block2`` (pytorch-fid's block outputs) when ``with_blocks``.
    """

    with_logits: bool = False
    with_blocks: bool = False
    variant: str = "fid"  # "torchvision": the ImageNet network (GFLA's FID script) with its own blocks

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        out = {}
        x = BasicConv(32, 3, stride=2, name="Conv2d_1a_3x3")(x)
        x = BasicConv(32, 3, name="Conv2d_2a_3x3")(x)
        x = BasicConv(64, 3, padding=1, name="Conv2d_2b_3x3")(x)
        x = max_pool(x, 3, 2)
        out["block0"] = x
        x = BasicConv(80, 1, name="Conv2d_3b_1x1")(x)
        x = BasicConv(192, 3, name="Conv2d_4a_3x3")(x)
        x = max_pool(x, 3, 2)
        out["block1"] = x
        if self.variant not in ("fid", "torchvision"):
            raise ValueError(f"InceptionV3 variant must be 'fid' or 'torchvision', got {self.variant!r}")
        tv = self.variant == "torchvision"
        x = InceptionA(32, tv, name="Mixed_5b")(x)
        x = InceptionA(64, tv, name="Mixed_5c")(x)
        x = InceptionA(64, tv, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        x = InceptionC(128, tv, name="Mixed_6b")(x)
        x = InceptionC(160, tv, name="Mixed_6c")(x)
        x = InceptionC(160, tv, name="Mixed_6d")(x)
        x = InceptionC(192, tv, name="Mixed_6e")(x)
        out["block2"] = x
        x = InceptionD(name="Mixed_7a")(x)
        x = InceptionE("avg_incl" if tv else "avg", name="Mixed_7b")(x)
        x = InceptionE("avg_incl" if tv else "max", name="Mixed_7c")(x)
        pool = x.mean(axis=(1, 2))
        result = {"pool3": pool}
        if self.with_logits:
            n_classes = 1000 if tv else NUM_CLASSES
            result["logits"] = Dense(n_classes, use_bias=False, name="fc")(pool)
        if self.with_blocks:
            result.update(out)
        return result


def _resize_matrix(n_in: int, n_out: int, half_pixel: bool) -> np.ndarray:
    """(n_out, n_in) bilinear weights; torch align_corners=False (half_pixel) or TF1 legacy resize."""
    scale = n_in / n_out
    dst = np.arange(n_out, dtype=np.float64)
    src = (dst + 0.5) * scale - 0.5 if half_pixel else dst * scale
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0
    m = np.zeros((n_out, n_in), np.float64)
    np.add.at(m, (np.arange(n_out), i0), 1.0 - lam)
    np.add.at(m, (np.arange(n_out), i1), lam)
    return m.astype(np.float32)


def resize_bilinear(x: jax.Array, size: tuple[int, int], *, half_pixel: bool = True) -> jax.Array:
    """Bilinear resize of NHWC ``x`` without antialiasing (as torch ``F.interpolate``; jax.image antialiases)."""
    h, w = x.shape[1], x.shape[2]
    if (h, w) == tuple(size) and half_pixel:
        return x
    my = jnp.asarray(_resize_matrix(h, size[0], half_pixel))
    mx = jnp.asarray(_resize_matrix(w, size[1], half_pixel))
    hp = jax.lax.Precision.HIGHEST
    x = jnp.einsum("oh,bhwc->bowc", my, x, precision=hp)
    return jnp.einsum("pw,bowc->bopc", mx, x, precision=hp)


def preprocess(images: jax.Array, mode: str = "pytorch_fid") -> jax.Array:
    """uint8 (or 0..255 float) NHWC images -> InceptionV3 input (B, 299, 299, 3).

    ``pytorch_fid``: /255, torch bilinear (align_corners False) to 299, 2x - 1.
    ``tf_graph``: TF1 ResizeBilinear (align_corners False, no half-pixel centres), (x - 128) / 128.
    ``torchvision``: /255, torch bilinear to 299, then the per-channel affine that maps ImageNet-normalised
    input to the [-1, 1] range the Google weights expect (torchvision's ``transform_input``; early pytorch-fid
    and GFLA's script use it with ``variant="torchvision"``).
    """
    x = jnp.asarray(images).astype(jnp.float32)
    if mode == "pytorch_fid":
        return 2.0 * resize_bilinear(x / 255.0, (299, 299)) - 1.0
    if mode == "torchvision":
        x = resize_bilinear(x / 255.0, (299, 299))
        mean, std = jnp.asarray((0.485, 0.456, 0.406)), jnp.asarray((0.229, 0.224, 0.225))
        return x * (std / 0.5) + (mean - 0.5) / 0.5
    if mode == "tf_graph":
        return (resize_bilinear(x, (299, 299), half_pixel=False) - 128.0) / 128.0
    raise ValueError(f"preprocess mode must be pytorch_fid|tf_graph|torchvision, got {mode!r}")


_LEAF = {
    ("conv", "weight"): ("params", "kernel"),
    ("bn", "weight"): ("params", "scale"),
    ("bn", "bias"): ("params", "bias"),
    ("bn", "running_mean"): ("batch_stats", "mean"),
    ("bn", "running_var"): ("batch_stats", "var"),
}


def convert_torch(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``pt_inception-2015-12-05`` / torchvision ``Inception3`` state dict -> ``{"params", "batch_stats"}``.

    ``num_batches_tracked`` and the auxiliary classifier are ignored; ``fc.weight`` becomes ``fc.kernel`` and
    the fc bias is dropped (neither FID nor the originals' Inception Score uses it).
    """
    params: dict[str, Any] = {}
    stats: dict[str, Any] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if parts[-1] == "num_batches_tracked" or parts[0] == "AuxLogits":
            continue
        arr = np.asarray(value, np.float32)
        if parts[0] == "fc":
            if parts[1] == "weight":
                params["fc"] = {"kernel": jnp.asarray(arr.T)}
            continue
        leaf = _LEAF.get(tuple(parts[-2:]))
        if leaf is None:
            raise KeyError(f"unexpected key {key!r} in an Inception state dict")
        collection, name = leaf
        if name == "kernel":
            if arr.ndim != 4:
                raise ValueError(f"{key} has shape {arr.shape}; expected (out, in, kh, kw)")
            arr = arr.transpose(2, 3, 1, 0)
        node = params if collection == "params" else stats
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[name] = jnp.asarray(arr)
    if "Mixed_7c" not in params:
        raise KeyError("state dict has no Mixed_7c.* keys: not an InceptionV3 (pytorch-fid) state dict")
    return {"params": params, "batch_stats": stats}


def load_inception(path: str | os.PathLike) -> dict[str, Any]:
    """Variables of ``InceptionV3`` from the FID weights file; a one-line error when it is missing."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Inception weights not found at {path}; need {WEIGHT_FILE}: {WEIGHT_SOURCE}")
    from ptx.io.torch_pickle import load_state_dict  # lazy: torch-free reader when torch is absent

    return convert_torch(load_state_dict(path))
