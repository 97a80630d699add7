"""Def-GAN's nearest-neighbour reconstruction loss (Siarohin et al., CVPR 2018, eq. 5; ``nn_loss`` of the
original ``conditional_gan.py``), and the plain L1 it reduces to at area 1.

For every location of the generated map, the distance to the real map is the smallest channel-summed L1
distance to any real vector in a ``k x k`` window around the same location:

    d[b, y, x] = min_{|dy|, |dx| <= k // 2} sum_c |real[b, y + dy, x + dx, c] - fake[b, y, x, c]|

The real map is padded with -10000 (not 0, not edge), so a window reaching over the border never wins; the loss
is the mean of ``d`` over (B, H, W). Channels are summed here but averaged in the plain L1 (area 1), as in the
original. Works on images or feature maps (the original uses VGG19 ``block1_conv2`` for its "full" model).

Memory stays at one shifted copy of the real map: the k*k offsets are a ``lax.scan`` carrying the running
minimum and a bit set of the offsets that attain it; the gradient (a custom VJP) scans the offsets again and
splits evenly between tied neighbours, as TensorFlow's ``reduce_min`` gradient does.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

PAD_VALUE = -10000.0
MAX_AREA = 5  # the tie bit set of the gradient is one int32 (the original uses 3 and 5)


def _offsets(area: int) -> jax.Array:
    """(k*k, 2) window offsets (row, col) into the padded map, row-major as the original stacks them."""
    r = jnp.arange(area, dtype=jnp.int32)
    return jnp.stack(jnp.meshgrid(r, r, indexing="ij"), axis=-1).reshape(-1, 2)


def _pad(real: jax.Array, area: int) -> jax.Array:
    p = area // 2
    return jnp.pad(real, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=PAD_VALUE)


def _shifted(padded: jax.Array, offset: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return lax.dynamic_slice(padded, (0, offset[0], offset[1], 0), shape)


def _distance(padded, fake, offset) -> jax.Array:
    return jnp.sum(jnp.abs(_shifted(padded, offset, fake.shape) - fake), axis=-1)


def _min_and_winners(padded, fake, area):
    """Running minimum over the offsets and a bit set of the offsets attaining it, one shifted copy at a time."""

    def step(carry, xs):
        best, winners = carry
        offset, bit = xs
        d = _distance(padded, fake, offset)
        winners = jnp.where(d < best, bit, jnp.where(d == best, winners | bit, winners))
        return (jnp.minimum(best, d), winners), None

    shape = fake.shape[:3]
    bits = jnp.left_shift(1, jnp.arange(area * area, dtype=jnp.int32))
    init = (jnp.full(shape, jnp.inf, fake.dtype), jnp.zeros(shape, jnp.int32))
    return lax.scan(step, init, (_offsets(area), bits))[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _nn_map(real, fake, area):
    return _min_and_winners(_pad(real, area), fake, area)[0]


def _nn_map_fwd(real, fake, area):
    padded = _pad(real, area)
    best, winners = _min_and_winners(padded, fake, area)
    return best, (padded, fake, winners)


def _nn_map_bwd(area, res, g):
    padded, fake, winners = res
    # The winners were recorded by the forward pass: no distance is recomputed and compared for equality.
    weight = g / lax.population_count(winners).astype(g.dtype)  # share of each tied neighbour

    def step(carry, xs):
        g_padded, g_fake = carry
        offset, index = xs
        shifted = _shifted(padded, offset, fake.shape)
        won = jnp.right_shift(winners, index) & 1
        s = jnp.sign(shifted - fake) * jnp.where(won == 1, weight, 0.0)[..., None]
        start = (0, offset[0], offset[1], 0)
        window = lax.dynamic_slice(g_padded, start, fake.shape)
        return (lax.dynamic_update_slice(g_padded, window + s, start), g_fake - s), None

    init = (jnp.zeros_like(padded), jnp.zeros_like(fake))
    xs = (_offsets(area), jnp.arange(area * area, dtype=jnp.int32))
    (g_padded, g_fake), _ = lax.scan(step, init, xs)
    p = area // 2
    h, w = fake.shape[1:3]
    return g_padded[:, p : p + h, p : p + w], g_fake


_nn_map.defvjp(_nn_map_fwd, _nn_map_bwd)


def nearest_neighbour_map(real: jax.Array, fake: jax.Array, area: int) -> jax.Array:
    """(B, H, W) nearest-neighbour distances of NHWC ``fake`` to ``real`` in ``area x area`` windows (odd)."""
    if real.shape != fake.shape or real.ndim != 4:
        raise ValueError(
            f"nearest-neighbour loss: expected two NHWC maps of one shape, got {real.shape}, {fake.shape}"
        )
    if area < 1 or area % 2 == 0 or area > MAX_AREA:
        raise ValueError(f"nearest-neighbour area must be odd, 1 <= area <= {MAX_AREA}, got {area}")
    dtype = jnp.promote_types(real.dtype, jnp.float32)
    return _nn_map(real.astype(dtype), fake.astype(dtype), int(area))


def reconstruction_loss(real: jax.Array, fake: jax.Array, area: int = 1) -> jax.Array:
    """The original's ``st_loss``: mean |real - fake| (channels averaged) for area 1, else the mean of
    :func:`nearest_neighbour_map` (channels summed)."""
    if area == 1:
        return jnp.mean(jnp.abs(real.astype(jnp.float32) - fake.astype(jnp.float32)))
    return jnp.mean(nearest_neighbour_map(real, fake, area))
