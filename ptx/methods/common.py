"""Pieces every method recipe uses the same way (methods never import each other; they share this)."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ptx.nn import vgg as vgg_lib

VGG19_FILE = vgg_lib.WEIGHT_FILES["vgg19"]


def to_unit(image: jax.Array) -> jax.Array:
    """uint8 [0, 255] -> float32 [-1, 1] (torchvision ToTensor + Normalize(0.5, 0.5), as every original)."""
    return jnp.asarray(image).astype(jnp.float32) / 127.5 - 1.0


def resolve_vgg(path: str, fallback_random: bool, *, needed_by: str) -> dict[str, Any]:
    """VGG19 params from the torchvision file at ``path``; else, when allowed, seeded random features with a
    warning (demos and tests), else an error naming the file. ``needed_by`` says which losses need it."""
    path = os.path.expanduser(path) if path else ""
    if path and os.path.isfile(path):
        return vgg_lib.load_vgg(path, "vgg19")
    if not fallback_random:
        where = f"at {path!r}" if path else "(config.vgg_path is empty)"
        raise FileNotFoundError(
            f"{needed_by} need the torchvision VGG19 weights {VGG19_FILE}, not found {where}. Users of the "
            f"original code already have it: {vgg_lib.missing_weights_message('vgg19')}. Pass its path with "
            f"--config.vgg_path=/path/{VGG19_FILE}."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = vgg_lib.load_vgg(None, "vgg19", seed=0)
    warnings.warn(
        f"{VGG19_FILE} not found{' at ' + path if path else ''}: {needed_by} use seeded random VGG19 features "
        "(fine for demos and tests, not for paper numbers)",
        stacklevel=2,
    )
    return params


def vgg_subset(params: Mapping[str, Any], layers: Iterable[str], arch: str = "vgg19") -> dict[str, Any]:
    """The convolutions a VGG feature extractor needs to reach ``layers`` (``relu3_2`` needs conv1_1..conv3_2),
    as numpy: a frozen network enters the step with no weight it never reads."""
    names = vgg_lib.layer_names(arch)
    deepest = max(names.index(n) for n in layers)
    convs = [n.replace("relu", "conv") for n in names[: deepest + 1]]
    return {c: jax.tree.map(np.asarray, params[c]) for c in convs}


class NoPairHooks:
    """Defaults for recipes without per-pair host work or pair filters (``Method.host_transform`` /
    ``Method.pair_filter``)."""

    def host_transform(self, split: str) -> None:
        del split
        return None

    def pair_filter(self, split: str) -> None:
        del split
        return None


def model_fields(config_cls: type, model: Mapping[str, Any], method: str) -> dict[str, Any]:
    """``config.model`` as kwargs of the method's model ``Config`` dataclass; unknown keys raise, naming the
    valid ones (a typo must not silently fall back to a default)."""
    model = dict(model)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(model) - fields)
    if unknown:
        raise ValueError(f"config.model has unknown keys {unknown}; {method} Config fields: {sorted(fields)}")
    return model


def baselines(batch: Mapping[str, Any], mean_target: np.ndarray) -> dict[str, np.ndarray]:
    """Trivial predictions every demo must beat, in [-1, 1]: copy the source image, and ``mean_target`` (uint8
    (H, W, 3), the mean TRAINING target image: a mean over the evaluated batch itself would contain the answer)."""
    source = np.asarray(batch["source_image"], np.float32) / 127.5 - 1.0
    mean = np.asarray(mean_target, np.float32) / 127.5 - 1.0
    return {"copy_source": source, "mean_image": np.broadcast_to(mean, source.shape)}
