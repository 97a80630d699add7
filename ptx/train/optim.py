"""Optax transforms from ``config.optim.<player>`` (see ``configs.common.adam``)."""

from __future__ import annotations

from collections.abc import Iterable

import optax


def schedule(cfg) -> optax.Schedule | float:
    """Learning rate: ``constant``, ``linear`` (hold until ``decay_start``, then to 0) or ``cosine``.

    ``interval`` > 1 (optional) changes the rate only every ``interval`` steps, at its value at the start of
    each interval: the pix2pix family steps its LambdaLR once per epoch, so ``interval`` = steps per epoch.
    """
    kind = cfg.get("schedule", "constant")
    if kind == "constant":
        return cfg.lr
    if kind == "linear":
        steps = max(int(cfg.decay_steps), 1)
        decay = optax.linear_schedule(cfg.lr, 0.0, steps)
        rate = optax.join_schedules([optax.constant_schedule(cfg.lr), decay], [int(cfg.decay_start)])
    elif kind == "cosine":
        rate = optax.cosine_decay_schedule(cfg.lr, max(int(cfg.decay_steps), 1))
    else:
        raise ValueError(f"unknown learning-rate schedule {kind!r}; expected constant, linear or cosine")
    interval = int(cfg.get("interval", 0) or 0)
    if interval > 1:
        return lambda step: rate(step // interval * interval)
    return rate


def make_optimizer(cfg) -> optax.GradientTransformation:
    """One player's optimizer; only adam (with optional global-norm clipping) is used by the originals."""
    if cfg.name != "adam":
        raise ValueError(f"unknown optimizer {cfg.name!r}; expected 'adam'")
    tx = optax.adam(schedule(cfg), b1=cfg.b1, b2=cfg.b2)
    if cfg.get("grad_clip", 0.0):
        tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), tx)
    return tx


def make_optimizers(optim_cfg, players: Iterable[str]) -> dict[str, optax.GradientTransformation]:
    """Optimizers of the players a stage updates; a player without ``config.optim.<player>`` is an error."""
    missing = [p for p in players if p not in optim_cfg]
    if missing:
        raise ValueError(f"config.optim has no entry for players {missing}; it has {sorted(optim_cfg)}")
    return {p: make_optimizer(optim_cfg[p]) for p in players}
