"""Metrics from config: ``evaluate(predict_fn, batches, evals_cfg) -> {name: value}``.

``evals_cfg`` maps names to entries ``{type: ssim|mask_ssim|fid|lpips|is|pssim|l1, **options}`` (the
trainer's ``config.evals``, or a preset from ``ptx.evaluate.protocols``). Each entry becomes a ``Metric``
accumulator fed with uint8 generated / target images (and target keypoints) batch by batch, so dataset-level
metrics (FID, IS) see every image. Generated images in [-1, 1] are made uint8 as the originals save them:
``trunc((x + 1) / 2 * 255)`` (``quantize="round"`` or ``"none"`` to change it).

Metrics that need a weights file (fid, is: ``inception``; lpips: ``trunk``, ``lin``) are skipped with a
warning when it is not configured; nothing is ever downloaded.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ptx.evaluate import fid as fid_lib
from ptx.evaluate import inception_score, masks
from ptx.nn import inception
from ptx.ops import ssim

log = logging.getLogger(__name__)
TYPES = ("ssim", "mask_ssim", "fid", "lpips", "is", "pssim", "l1")


class MissingWeights(Exception):
    """A metric's weight file is not configured or absent (message names the file and its source)."""


def pad_white(images: np.ndarray, pad: int) -> np.ndarray:
    """PATN's ``addBounding`` for fashion: ``pad`` white (255) columns left and right."""
    if not pad:
        return images
    return np.pad(images, ((0, 0), (0, 0), (pad, pad), (0, 0)), constant_values=255)


def to_uint8(images: np.ndarray, quantize: str = "truncate") -> np.ndarray:
    """[-1, 1] float images -> uint8 as the originals' test scripts write them."""
    x = (np.asarray(images, np.float32) + 1.0) / 2.0 * 255.0
    if quantize == "truncate":  # numpy astype: truncation toward zero (and wrap-around avoided by clipping)
        return np.clip(x, 0, 255).astype(np.uint8)
    if quantize == "round":
        return np.clip(np.round(x), 0, 255).astype(np.uint8)
    if quantize == "none":
        return x
    raise ValueError(f"quantize must be truncate|round|none, got {quantize!r}")


class Metric:
    """Accumulates over batches; ``result()`` gives ``{suffix: value}`` ('' = the metric's own name)."""

    def update(self, generated: np.ndarray, target: np.ndarray, keypoints: np.ndarray | None) -> None:
        raise NotImplementedError

    def result(self) -> dict[str, float]:
        raise NotImplementedError


class _PerImageMean(Metric):
    def __init__(self):
        self.values: list[np.ndarray] = []

    def result(self) -> dict[str, float]:
        if not self.values:
            raise ValueError("no images were evaluated")
        return {"": float(np.concatenate(self.values).mean())}


class SSIM(_PerImageMean):
    """skimage ``structural_similarity`` per image; ``data_range="generated"`` = generated max - min."""

    def __init__(self, *, data_range: float | str = "generated", scale: float = 1.0, pad_white: int = 0,
                 mask: bool = False, **ssim_kwargs):  # fmt: skip
        super().__init__()
        self.data_range, self.scale, self.pad, self.mask = data_range, scale, pad_white, mask
        self.kwargs = ssim_kwargs

    def update(self, generated, target, keypoints):
        g, t = generated, target
        if self.mask:
            if keypoints is None:
                raise ValueError(
                    "mask_ssim needs target keypoints (batch 'target_keypoints' or --annotations)"
                )
            m = masks.person_masks(keypoints, g.shape[1:3])[..., None].astype(g.dtype)
            g, t = g * m, t * m
        g, t = pad_white(g, self.pad), pad_white(t, self.pad)
        g = g.astype(np.float32) * self.scale
        t = t.astype(np.float32) * self.scale
        if self.data_range == "generated":
            flat = g.reshape(len(g), -1)
            dr = flat.max(axis=1) - flat.min(axis=1)
        else:
            dr = np.full((len(g),), float(self.data_range), np.float32)
        v = ssim.structural_similarity(
            jnp.asarray(t), jnp.asarray(g), data_range=jnp.asarray(dr), **self.kwargs
        )
        self.values.append(np.asarray(v, np.float64))


class L1(_PerImageMean):
    """Mean |t - g| on the [-1, 1] scale (PATN / Def-GAN ``l1_score``) or the [0, 1] scale (GFLA)."""

    def __init__(self, scale: str = "minus1_1"):
        super().__init__()
        self.factor = {"minus1_1": 2.0 / 255.0, "unit": 1.0 / 255.0}[scale]

    def update(self, generated, target, keypoints):
        d = np.abs(target.astype(np.float64) - generated.astype(np.float64)) * self.factor
        self.values.append(d.reshape(len(d), -1).mean(axis=1))


class PSSIM(_PerImageMean):
    """pSSIM metric (``getPartSSIM.py``): per image (foreground + background) / 2, masks from the target pose."""

    def __init__(self, win_size: int = 7, sigma: float = 0.8):
        super().__init__()
        self.win_size, self.sigma = win_size, sigma

    def update(self, generated, target, keypoints):
        if keypoints is None:
            raise ValueError("pssim needs target keypoints (batch 'target_keypoints' or --annotations)")
        t = jnp.asarray(target, jnp.float32) / 127.5 - 1.0  # ToTensor + Normalize(0.5, 0.5)
        g = jnp.asarray(generated, jnp.float32) / 127.5 - 1.0
        from ptx.losses import pssim as lib  # the loss module holds the part masks and FPart_BSSIM

        # Masks eagerly: op-by-op they take ~0.2 s, while XLA compiles the fused mask graph for ~8 s on CPU.
        part_mask = lib.part_masks(jnp.asarray(keypoints, jnp.float32), t.shape[1:3])
        v = _pssim_per_image(t, g, part_mask, self.win_size, self.sigma)
        self.values.append(np.asarray(v, np.float64))


@functools.partial(jax.jit, static_argnums=(3, 4))
def _pssim_per_image(t, g, part_mask, win_size, sigma):
    from ptx.losses import pssim as lib

    fg, bg = lib.part_ssim_per_image(t, g, part_mask, win_size, sigma)
    return 0.5 * (fg + bg)


def _require(path: str | None, what: str, message: str) -> str:
    if not path:
        raise MissingWeights(f"{what}: no weights file configured; need {message}")
    if not os.path.isfile(os.fspath(path)):
        raise MissingWeights(f"{what}: weights file not found at {path}; need {message}")
    return os.fspath(path)


@functools.cache
def _inception_variables(path: str) -> dict:
    return inception.load_inception(path)


class _InceptionMetric(Metric):
    def __init__(self, inception_path: str | None, batch_size: int, preprocess: str, with_logits: bool,
                 what: str, variant: str = "fid"):  # fmt: skip
        if variant == "torchvision":
            need = f"{inception.TORCHVISION_WEIGHT_FILE}: torchvision's ImageNet InceptionV3 (download.pytorch.org)"
        else:
            need = f"{inception.WEIGHT_FILE}: {inception.WEIGHT_SOURCE}"
        path = _require(inception_path, what, need)
        self.weights_id = f"{os.path.basename(path)}|{os.path.getsize(path)}"  # part of the FID cache key
        self.features = fid_lib.InceptionFeatures(
            _inception_variables(path), batch_size=batch_size, preprocess=preprocess, with_logits=with_logits,
            variant=variant,
        )  # fmt: skip
        self.buffer: list[np.ndarray] = []

    def update(self, generated, target, keypoints):
        self.buffer.append(np.asarray(generated))


class FID(_InceptionMetric):
    """FID of generated vs real images: real = the eval targets, or ``real_dir`` (statistics cached).

    ``variant="torchvision"``: torchvision's ImageNet InceptionV3 and early pytorch-fid's input affine, as
    GFLA's ``script/metrics.py`` computed FID (unverified against it: no golden for that network).
    """

    def __init__(self, inception: str | None = None, batch_size: int = 50, drop_remainder: bool = False,
                 real_dir: str | None = None, cache_dir: str | None = None, variant: str = "fid"):  # fmt: skip
        preprocess = "torchvision" if variant == "torchvision" else "pytorch_fid"
        super().__init__(inception, batch_size, preprocess, False, "fid", variant)
        self.variant = variant
        self.drop_remainder, self.real_dir, self.cache_dir = drop_remainder, real_dir, cache_dir
        self.targets: list[np.ndarray] = []

    def update(self, generated, target, keypoints):
        super().update(generated, target, keypoints)
        if self.real_dir is None:
            self.targets.append(np.asarray(target))

    def _feats(self, images) -> np.ndarray:
        return self.features(images, drop_remainder=self.drop_remainder)["pool3"]

    def result(self):
        fake = fid_lib.statistics(self._feats(np.concatenate(self.buffer)))
        if self.real_dir is None:
            real = fid_lib.statistics(self._feats(np.concatenate(self.targets)))
        else:
            from ptx.evaluate import images as image_io

            paths = image_io.list_images(self.real_dir)
            protocol = {"metric": "fid", "variant": self.variant, "batch": self.features.batch_size,
                        "drop_remainder": self.drop_remainder, "weights": self.weights_id}  # fmt: skip
            cache = self.cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "ptx", "fid")
            real = fid_lib.cached_statistics(
                paths, lambda p: self._feats(image_io.read_images(p)), cache_dir=cache, protocol=protocol
            )
        return {"": fid_lib.frechet_distance(*real, *fake)}


class IS(_InceptionMetric):
    """Inception Score of the generated images (``mask``: of the masked ones = mask-IS); adds ``_std``."""

    def __init__(self, inception: str | None = None, batch_size: int = 10, splits: int = 10,
                 pad_white: int = 0, mask: bool = False, preprocess: str = "tf_graph"):  # fmt: skip
        super().__init__(inception, batch_size, preprocess, True, "is")
        self.splits, self.pad, self.mask = splits, pad_white, mask

    def update(self, generated, target, keypoints):
        g = generated
        if self.mask:
            if keypoints is None:
                raise ValueError("mask-IS needs target keypoints")
            g = g * masks.person_masks(keypoints, g.shape[1:3])[..., None].astype(g.dtype)
        self.buffer.append(pad_white(np.asarray(g), self.pad))

    def result(self):
        logits = self.features(np.concatenate(self.buffer))["logits"]
        mean, std = inception_score.inception_score(logits, self.splits)
        return {"": mean, "_std": std}


class LPIPSMetric(Metric):
    """Mean LPIPS(generated, target) over pairs, images mapped by x / 127.5 - 1 (GFLA's script)."""

    def __init__(self, net: str = "alex", trunk: str | None = None, lin: str | None = None,
                 batch_size: int = 64, drop_remainder: bool = False):  # fmt: skip
        from ptx.evaluate import lpips as lpips_lib

        trunk = _require(trunk, f"lpips-{net}", lpips_lib.missing_file_message(net, "trunk"))
        lin = _require(lin or lpips_lib.default_lin_path(net), f"lpips-{net}",
                       lpips_lib.missing_file_message(net, "lin"))  # fmt: skip
        self.params = lpips_lib.load_lpips(net, trunk, lin)
        self.fn = _jitted_lpips(net)
        self.batch_size, self.drop_remainder = batch_size, drop_remainder
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []

    def update(self, generated, target, keypoints):
        self.pairs.append((np.asarray(generated), np.asarray(target)))

    def result(self):
        g = np.concatenate([p[0] for p in self.pairs])
        t = np.concatenate([p[1] for p in self.pairs])
        n = len(g)
        if (
            self.drop_remainder and n >= self.batch_size
        ):  # GFLA drops the partial batch (whole set if smaller)
            n = (n // self.batch_size) * self.batch_size
        values = []
        for i in range(0, n, self.batch_size):
            a, b = g[i : i + self.batch_size], t[i : i + self.batch_size]
            m = len(a)
            if m < self.batch_size:  # pad to a power of two: few compiled shapes, little wasted work
                size = min(self.batch_size, 1 << (m - 1).bit_length())
                a = np.concatenate([a, np.repeat(a[-1:], size - m, 0)])
                b = np.concatenate([b, np.repeat(b[-1:], size - m, 0)])
            d = self.fn(
                self.params, jnp.asarray(a, jnp.float32) / 127.5 - 1, jnp.asarray(b, jnp.float32) / 127.5 - 1
            )
            values.append(np.asarray(d)[:m])
        if not values:
            raise ValueError(f"LPIPS: fewer than one batch of {self.batch_size} pairs")
        return {"": float(np.concatenate(values).mean())}


@functools.cache
def _jitted_lpips(net: str):
    from ptx.evaluate import lpips as lpips_lib

    model = lpips_lib.LPIPS(net)
    return jax.jit(lambda p, a, b: model.apply({"params": p}, a, b))


def build_metric(entry: Mapping[str, Any]) -> Metric:
    """One ``config.evals`` entry -> a Metric (unknown options raise a TypeError naming them)."""
    opts = dict(entry)
    kind = opts.pop("type", None)
    opts.pop("every_steps", None)
    if kind == "ssim":
        return SSIM(**opts)
    if kind == "mask_ssim":
        return SSIM(mask=True, **opts)
    if kind == "l1":
        return L1(**opts)
    if kind == "pssim":
        return PSSIM(**opts)
    if kind == "fid":
        return FID(**opts)
    if kind == "is":
        return IS(**opts)
    if kind == "lpips":
        return LPIPSMetric(**opts)
    raise ValueError(f"unknown eval type {kind!r}; expected one of {TYPES}")


def build_metrics(evals_cfg: Mapping[str, Any]) -> dict[str, Metric]:
    """Metrics of every entry; those whose weights are missing are skipped with a warning."""
    out = {}
    for name, entry in dict(evals_cfg).items():
        try:
            out[name] = build_metric(dict(entry))
        except MissingWeights as e:
            warnings.warn(f"skipping eval {name!r}: {e}", stacklevel=2)
    return out


def run_metrics(metrics: Mapping[str, Metric], pairs: Iterable[tuple[np.ndarray, np.ndarray, Any]]) -> dict:
    """Feeds (generated uint8, target uint8, keypoints or None) batches to every metric; flat results."""
    for generated, target, keypoints in pairs:
        for m in metrics.values():
            m.update(generated, target, keypoints)
    results = {}
    for name, m in metrics.items():
        for suffix, value in m.result().items():
            results[name + suffix] = float(value)
    return results


def evaluate(
    predict_fn: Callable[[dict[str, np.ndarray]], Mapping[str, Any]],
    batches: Iterable[dict[str, np.ndarray]],
    evals_cfg: Mapping[str, Any],
    *,
    quantize: str = "truncate",
) -> dict[str, float]:
    """Runs ``predict_fn`` on each batch and scores ``output['image']`` against ``batch['target_image']``."""
    metrics = build_metrics(evals_cfg)
    if not metrics:
        return {}

    def pairs():
        for batch in batches:
            out = predict_fn(batch)
            gen = to_uint8(np.asarray(out["image"]), quantize)
            kp = batch.get("target_keypoints")
            yield gen, np.asarray(batch["target_image"]), None if kp is None else np.asarray(kp)

    return run_metrics(metrics, pairs())
