"""Binary cross-entropy GAN losses on discriminator PROBABILITIES with an additive epsilon, as Keras-era GANs
compute them (Def-GAN's ``gan/gan.py``: ``-mean(log(D(x) + 1e-7))``).

Unlike ``ptx.losses.gan``'s ``nsgan`` (BCE on logits, exact), these take the sigmoid output and add ``eps``
inside the log, so a saturated discriminator gives a bounded loss (``-log(1e-7)`` = 16.1) and zero gradient.
The discriminator loss is the SUM of the real and fake terms (no 1/2), each averaged over its own patches.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

EPS = 1e-7


def generator_loss(d_fake: jax.Array, eps: float = EPS) -> jax.Array:
    """-mean(log(D(fake) + eps)) over every patch output."""
    return -jnp.mean(jnp.log(d_fake.astype(jnp.float32) + eps))


def discriminator_terms(
    d_real: jax.Array, d_fake: jax.Array, eps: float = EPS
) -> tuple[jax.Array, jax.Array]:
    """(real term -mean(log(D(real) + eps)), fake term -mean(log(1 - D(fake) + eps))); the loss is their sum."""
    real = -jnp.mean(jnp.log(d_real.astype(jnp.float32) + eps))
    fake = -jnp.mean(jnp.log(1.0 - d_fake.astype(jnp.float32) + eps))
    return real, fake
