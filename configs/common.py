"""Shared pieces of every ptx config: the ``arg`` parser and the blocks all methods use the same way.

A config file is ``configs/<method>_<data>.py`` with ``get_config(arg)``; ``arg`` is the text after the colon in
``--config configs/gfla_fashion.py:demo,batch=4``. The first bare word that names a variant picks it
(``paper`` full size, ``demo`` minutes on CPU with the puppets data, ``tiny`` for tests); ``key=value`` items set
named switches, whose types come from the defaults the config file passes; a bare ``key`` sets a bool switch.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from typing import Any

import ml_collections

VARIANTS = ("paper", "demo", "tiny")
ConfigDict = ml_collections.ConfigDict


def _convert(key: str, text: str, default: Any) -> Any:
    """``text`` as the type of ``default`` (python literal syntax for tuples/lists)."""
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on", ""):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"config arg {key}={text!r}: expected a bool (true/false)")
    if default is None or isinstance(default, str):
        return text
    try:
        if isinstance(default, int | float):
            return type(default)(text)
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"config arg {key}={text!r}: expected a {type(default).__name__}") from e
    return type(default)(value) if isinstance(default, tuple | list) else value


def _split(arg: str) -> list[str]:
    """Split on commas outside brackets, so ``size=(8, 4)`` stays one item."""
    items, depth, cur = [], 0, []
    for ch in arg:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    return [*items, "".join(cur)]


def parse_arg(arg: str | None, *, variant: str = "paper", **defaults: Any) -> ConfigDict:
    """Parse ``"demo,batch=4,flag"`` into a locked ConfigDict ``{variant, **defaults}``.

    Unknown switches raise and list the known ones, so a typo in the ``--config`` argument fails loudly.
    """
    out = {"variant": variant, **defaults}
    for item in _split(arg or ""):
        item = item.strip()
        if not item:
            continue
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq and key in VARIANTS:
            out["variant"] = key
            continue
        if key == "variant":
            if text not in VARIANTS:
                raise ValueError(f"config arg variant={text!r}: expected one of {VARIANTS}")
            out["variant"] = text
            continue
        if key not in defaults:
            known = ", ".join([*VARIANTS, *sorted(defaults)]) or "(none)"
            raise ValueError(f"unknown config arg {key!r} in {arg!r}; known: {known}")
        out[key] = _convert(key, text, defaults[key]) if eq else True
    if out["variant"] not in VARIANTS:
        raise ValueError(f"variant {out['variant']!r}: expected one of {VARIANTS}")
    return ConfigDict(out).lock()


def by_variant(variant: str, **choices: Any) -> Any:
    """``choices[variant]`` with a clear error, e.g. ``by_variant(v, paper=256, demo=64, tiny=32)``."""
    if variant not in choices:
        raise ValueError(f"this config has no {variant!r} variant; it has {sorted(choices)}")
    return choices[variant]


# ---------------------------------------------------------------------------------------------- blocks


def mesh(shape: Sequence[int] = (-1,), axes: Sequence[str] = ("data",)) -> ConfigDict:
    """Device mesh: ``-1`` in ``shape`` takes the remaining devices. The batch is split over ``data``."""
    return ConfigDict({"shape": tuple(shape), "axes": tuple(axes)})


def sharding(
    params: str = "replicate",
    rules: Iterable[tuple[str, str]] = (),
    fsdp_axis: str = "data",
    fsdp_min_size: int = 2**12,
) -> ConfigDict:
    """How the train state is laid out: ``params`` = ``replicate`` | ``fsdp`` for leaves no rule matches.

    ``rules`` are ``(regex, strategy)`` pairs tried in order on paths like ``params/gen/Conv2d_0/kernel``
    (optimizer moments share their parameter's path tail). ``fsdp`` splits a leaf's largest dimension
    divisible by the ``fsdp_axis`` size; leaves smaller than ``fsdp_min_size`` elements stay replicated.
    """
    return ConfigDict(
        {
            "params": params,
            "rules": tuple(tuple(r) for r in rules),
            "fsdp_axis": fsdp_axis,
            "fsdp_min_size": fsdp_min_size,
        }
    )


def ckpt(every_steps: int = 1000, keep: int = 3, async_save: bool = True) -> ConfigDict:
    """Orbax checkpoints under ``<workdir>/checkpoints``; ``every_steps=0`` saves only at stage ends."""
    return ConfigDict({"every_steps": every_steps, "keep": keep, "async_save": async_save})


def log(
    every_steps: int = 100,
    image_every_steps: int = 1000,
    num_images: int = 4,
    transfer_guard: str = "",
    tensorboard: bool = True,
) -> ConfigDict:
    """Metrics every ``every_steps``; image grids every ``image_every_steps`` (0 = never).

    ``transfer_guard`` (e.g. ``disallow``) guards device-to-host copies on the steps that log nothing: a
    debugging switch that proves the loop never syncs with the device between logging steps.
    ``tensorboard=False`` keeps stdout and PNGs only (tensorboardX imports torch when torch is installed).
    """
    return ConfigDict(
        {
            "every_steps": every_steps,
            "image_every_steps": image_every_steps,
            "num_images": num_images,
            "transfer_guard": transfer_guard,
            "tensorboard": tensorboard,
        }
    )


def summary(
    enabled: bool = True, pairs: int = 400, rows: int = 8, mean_pairs: int = 512, lpips_trunk: str = ""
) -> ConfigDict:
    """The end-of-run summary (``ptx.train.summary``): ``pairs`` held-out pairs scored beside the copy-source
    and mean-image baselines (the mean over ``mean_pairs`` training targets), a grid of ``rows`` pairs,
    ``report.html`` and the sampling command. ``lpips_trunk``: torchvision's AlexNet file (default: the torch
    hub cache); LPIPS is skipped when it is absent. ``enabled=False`` (``--config.summary.enabled=false``)
    turns it off."""
    return ConfigDict(
        {
            "enabled": enabled,
            "pairs": pairs,
            "rows": rows,
            "mean_pairs": mean_pairs,
            "lpips_trunk": lpips_trunk,
        }
    )


def summary_for(variant: str) -> ConfigDict:
    """``summary()`` sized for a variant: a handful of pairs for ``tiny`` (tests stay fast)."""
    return summary(pairs=4, rows=2, mean_pairs=16) if variant == "tiny" else summary()


def adam(
    lr: float,
    b1: float = 0.5,
    b2: float = 0.999,
    *,
    schedule: str = "constant",
    decay_start: int = 0,
    decay_steps: int = 0,
    grad_clip: float = 0.0,
) -> ConfigDict:
    """One player's optimizer. ``schedule``: ``constant`` or ``linear`` (constant until ``decay_start``, then
    linearly to 0 over ``decay_steps``, the pix2pix-family rule) or ``cosine`` (over ``decay_steps``)."""
    return ConfigDict(
        {
            "name": "adam",
            "lr": lr,
            "b1": b1,
            "b2": b2,
            "schedule": schedule,
            "decay_start": decay_start,
            "decay_steps": decay_steps,
            "grad_clip": grad_clip,
        }
    )


def stage(
    name: str,
    num_steps: int,
    players: Sequence[str],
    freeze: Sequence[str] = (),
    *,
    batch_size: int = 0,
    optim: ConfigDict | None = None,
) -> ConfigDict:
    """One training stage: ``players`` are updated in this order; ``freeze`` ones are kept fixed.

    ``batch_size`` (0: ``config.data.batch_size``) and ``optim`` (``{player: adam(...)}``; players it lacks use
    ``config.optim``) let stages differ, as SCA-GAN's two networks do (batch 5 at lr 2e-4, then 3 at 1e-4).
    """
    return ConfigDict(
        {
            "name": name,
            "num_steps": num_steps,
            "players": tuple(players),
            "freeze": tuple(freeze),
            "batch_size": int(batch_size),
            "optim": optim if optim is not None else ConfigDict(),
        }
    ).lock()


def base(method: str, *, seed: int = 0) -> ConfigDict:
    """The sections every method config fills: a skeleton with the shared blocks at their defaults."""
    c = ConfigDict()
    c.method = method
    c.seed = seed
    c.data = ConfigDict()
    c.model = ConfigDict()
    c.loss = ConfigDict()
    c.optim = ConfigDict()
    c.stages = []
    c.evals = ConfigDict()
    c.mesh = mesh()
    c.sharding = sharding()
    c.ckpt = ckpt()
    c.log = log()
    c.summary = summary()
    c.init_from = ""  # an Orbax dir of {player: params} written by `python -m ptx.convert`
    c.eval_split = "test"
    c.eval_batches = 0  # batches of eval_split per evaluation; 0 = the whole split
    return c
