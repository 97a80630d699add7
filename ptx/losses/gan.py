"""Adversarial losses as pure functions of discriminator logits (any shape; patch outputs are averaged).

Modes follow the originals' ``AdversarialLoss``/``GANLoss``:

* ``lsgan``: least squares on raw logits (MSE against 1 for real, 0 for fake) — GFLA's default.
* ``hinge``: D ``relu(1 - real) + relu(1 + fake)``, G ``-fake``.
* ``nsgan``: non-saturating BCE on logits (sigmoid inside, numerically stable).

The discriminator loss is half the sum of the real and fake terms, as GFLA's ``backward_D_basic`` does.
Logits of the fake images must be computed from detached (``stop_gradient``) images by the caller when it
updates D; these functions never detach anything.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MODES = ("lsgan", "hinge", "nsgan")


def _check(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown GAN mode {mode!r}; expected one of {', '.join(MODES)}")


def _term(logits: jax.Array, real: bool, mode: str, for_disc: bool) -> jax.Array:
    """Mean loss of ``logits`` labelled real / fake."""
    x = logits.astype(jnp.float32)
    if mode == "lsgan":
        return jnp.mean(jnp.square(x - (1.0 if real else 0.0)))
    if mode == "nsgan":
        # BCE(sigmoid(x), y) = softplus(-x) for y = 1, softplus(x) for y = 0.
        return jnp.mean(jax.nn.softplus(-x if real else x))
    if for_disc:  # hinge
        return jnp.mean(jax.nn.relu(1.0 - x if real else 1.0 + x))
    return -jnp.mean(x)


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array, mode: str = "lsgan") -> jax.Array:
    """D loss: 0.5 * (loss(real labelled real) + loss(fake labelled fake))."""
    _check(mode)
    return 0.5 * (_term(real_logits, True, mode, True) + _term(fake_logits, False, mode, True))


def generator_loss(fake_logits: jax.Array, mode: str = "lsgan") -> jax.Array:
    """G loss: the fake logits labelled real (hinge: minus their mean)."""
    _check(mode)
    return _term(fake_logits, True, mode, False)
