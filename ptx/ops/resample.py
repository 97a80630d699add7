"""Flow-driven resampling: border-replicate bilinear sampling and GFLA's Gaussian ``resample2d``.

Both replace CUDA extensions of the originals. Flows are NHWC ``(B, h, w, 2)`` with ``[..., 0]`` = x (width)
and ``[..., 1]`` = y (height) offsets in pixels of the image being sampled; output pixel ``(y, x)`` reads the
image at ``(x + flow_x, y + flow_y)``. The output has the flow's spatial size, which may differ from the image's
(only the image size is used for clamping).

Some of the bilinear math takes an XLA:CPU form (measured faster there) only when
:func:`ptx.backend.cpu_rewrites` says the trace is for the CPU: the hand-written bilinear backward, four row
gathers instead of one, channel sums as dots. Other backends get the plain jnp forms and autodiff. The
hand-written backward passes of the Gaussian resample and of local attention run on every backend: they exist
for memory (no per-tap residuals) and order-independent image sums, not for CPU speed.

Border rule (GFLA block_extractor, and resample2d's taps): integer corner indices are clamped to the image
while the interpolation weights come from the *unclamped* fractional part. This equals
``grid_sample(padding_mode="border", align_corners=True)`` in pixel units; the position gradient vanishes
outside the image.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from ptx.backend import cpu_rewrites
from ptx.ops._dispatch import interpret_mode, resolve_impl, row_block, with_reference_vjp

__all__ = ["bilinear_sample", "gaussian_resample", "resample"]


# ----------------------------------------------------------------------------------------------------------
# Shared per-image math (used unbatched inside Pallas kernels and vmapped over the batch by the jnp paths).


def exact_step(bound: jax.Array) -> jax.Array:
    """Power-of-two grid step for :func:`split_exact`: ``bound < 2**11 * step`` (1 if bound is 0 or not finite)."""
    _, exponent = jnp.frexp(bound)  # bound < 2**exponent
    step = jnp.ldexp(jnp.ones((), bound.dtype), exponent - 11)
    return jnp.where(jnp.isfinite(bound) & (bound > 0), step, jnp.ones((), bound.dtype))


def split_exact(updates: jax.Array, step: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Exact split ``updates = hi + lo`` with ``hi`` on the ``step`` grid (so up to ~8192 ``hi`` terms of
    magnitude <= 2^11 steps add without rounding) and a small remainder ``lo``."""
    hi = jnp.round(updates / step) * step
    return hi, updates - hi


def scatter_rows(buf: jax.Array, idx: jax.Array, updates: jax.Array) -> jax.Array:
    """``buf.at[idx].add(updates)`` over rows of a flattened image (indices known to be in range)."""
    return buf.at[idx].add(updates, mode="promise_in_bounds")


def accurate_scatter_add(n_rows: int, idx: jax.Array, updates: jax.Array) -> jax.Array:
    """``zeros((n_rows, C)).at[idx].add(updates)`` with near-exact float sums.

    Far-away flows send thousands of contributions to one border pixel; a plain float32 scatter then drifts by
    many ulps (the goldens' tolerance is 1e-5 on gradients of magnitude ~30). The updates are split exactly
    into a coarse part on a common power-of-two grid, whose sums are exact, and a small remainder.
    """
    bound = jnp.max(jnp.abs(updates)) if updates.size else jnp.zeros((), updates.dtype)
    hi, lo = split_exact(updates, exact_step(bound))
    zeros = jnp.zeros((n_rows, updates.shape[-1]), updates.dtype)
    return scatter_rows(zeros, idx, hi) + scatter_rows(zeros, idx, lo)


def take_rows(flat: jax.Array, idx: jax.Array) -> jax.Array:
    """``flat[idx]`` for a flattened image ``(Hs*Ws, C)`` and in-range integer indices: ``(*idx.shape, C)``."""
    return flat.at[idx].get(mode="promise_in_bounds")


def channel_dot(a: jax.Array, b: jax.Array) -> jax.Array:
    """``sum(a * b, -1)``; on XLA:CPU as a dot, since it runs the reduce-of-multiply form ~20x slower."""
    if cpu_rewrites():
        return jnp.einsum("...c,...c->...", a, b, precision=lax.Precision.HIGHEST)
    return jnp.sum(a * b, axis=-1)


def corner_rows(flat: jax.Array, idx) -> tuple[jax.Array, ...]:
    """``take_rows`` of each corner index in ``idx``: on XLA:CPU as separate gathers (it runs one gather with a
    stacked (..., 4) index ~80x slower), elsewhere as that one gather."""
    if cpu_rewrites():
        return tuple(take_rows(flat, i) for i in idx)
    rows = take_rows(flat, jnp.stack(idx, axis=-1))
    return tuple(rows[..., k, :] for k in range(len(idx)))


def bilinear_corners(hs: int, ws: int, px: jax.Array, py: jax.Array):
    """Clamped flat indices of the 4 corners (00, 01, 10, 11 = top-left, top-right, bottom-left, bottom-right)
    and the unclamped fractional parts ``ax, ay``."""
    x0 = jnp.floor(px)
    y0 = jnp.floor(py)
    ax = px - x0
    ay = py - y0
    # Clip in float first so far-away positions cannot overflow the integer cast.
    xa = jnp.clip(x0, 0, ws - 1).astype(jnp.int32)
    xb = jnp.clip(x0 + 1, 0, ws - 1).astype(jnp.int32)
    ya = jnp.clip(y0, 0, hs - 1).astype(jnp.int32) * ws
    yb = jnp.clip(y0 + 1, 0, hs - 1).astype(jnp.int32) * ws
    return (ya + xa, ya + xb, yb + xa, yb + xb), ax, ay


def _corner_weights(ax, ay):
    bx = 1 - ax
    by = 1 - ay
    return by * bx, by * ax, ay * bx, ay * ax


def bilinear_value(flat: jax.Array, hs: int, ws: int, px: jax.Array, py: jax.Array) -> jax.Array:
    """Forward value of :func:`bilinear_flat` (plain autodiff, used inside hand-written backward passes)."""
    idx, ax, ay = bilinear_corners(hs, ws, px, py)
    out = None
    for v, w in zip(corner_rows(flat, idx), _corner_weights(ax, ay)):
        term = w[..., None].astype(flat.dtype) * v
        out = term if out is None else out + term
    return out


def bilinear_grads(flat, hs, ws, px, py, g, image_acc=None, step=None):
    """Reverse-mode pieces of :func:`bilinear_flat` for cotangent ``g (..., C)``.

    Returns ``(d_px, d_py, image_acc, value)``; ``value`` is the forward sample, from the same gathers.
    The image cotangent is scatter-added into ``image_acc = (hi, lo)`` (fresh zeros unless given; callers
    accumulate several samplings, then add ``hi + lo``). With ``step=None`` it is a plain float32 scatter-add
    into ``hi`` (rounding grows with the number of contributions per pixel, as in torch's kernels); with a
    ``step`` from :func:`exact_step` every update is split exactly and the sums are order-independent, at
    about twice the cost of the scatter. The position derivative uses the clamped corner values, hence
    vanishes outside the image (GFLA's CUDA backward).
    """
    idx, ax, ay = bilinear_corners(hs, ws, px, py)
    v00, v01, v10, v11 = corner_rows(flat, idx)
    bx, by = 1 - ax, 1 - ay
    g = g.astype(flat.dtype)
    if cpu_rewrites():
        # g . (by (v01 - v00) + ay (v11 - v10)) from the four plain dots g . v: a dot with that elementwise
        # prologue fused into it ran ~10x slower on XLA:CPU than the four dots plus scalar arithmetic.
        d00, d01, d10, d11 = (channel_dot(g, v) for v in (v00, v01, v10, v11))
        d_px = by * (d01 - d00) + ay * (d11 - d10)
        d_py = bx * (d10 - d00) + ax * (d11 - d01)
    else:
        d_px = channel_dot(g, by[..., None] * (v01 - v00) + ay[..., None] * (v11 - v10))
        d_py = channel_dot(g, bx[..., None] * (v10 - v00) + ax[..., None] * (v11 - v01))
    if image_acc is None:
        zeros = jnp.zeros(flat.shape, flat.dtype)
        image_acc = (zeros, zeros)
    hi_acc, lo_acc = image_acc
    value = None
    for i, w, v in zip(idx, _corner_weights(ax, ay), (v00, v01, v10, v11)):
        wc = w[..., None].astype(g.dtype)
        value = wc * v if value is None else value + wc * v
        if step is None:
            hi_acc = scatter_rows(hi_acc, i, wc * g)
            continue
        hi, lo = split_exact(wc * g, step)  # corner weights lie in [0, 1]: max|g| bounds every update
        hi_acc = scatter_rows(hi_acc, i, hi)
        lo_acc = scatter_rows(lo_acc, i, lo)
    return d_px.astype(px.dtype), d_py.astype(py.dtype), (hi_acc, lo_acc), value


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def _bilinear(flat, hs, ws, px, py):
    return bilinear_value(flat, hs, ws, px, py)


def _bilinear_fwd(flat, hs, ws, px, py):
    return bilinear_value(flat, hs, ws, px, py), (flat, px, py)


def _bilinear_bwd(hs, ws, res, g):
    flat, px, py = res
    d_px, d_py, (hi, lo), _ = bilinear_grads(flat, hs, ws, px, py, g)
    return hi + lo, d_px, d_py


_bilinear.defvjp(_bilinear_fwd, _bilinear_bwd)


def bilinear_flat(flat: jax.Array, hs: int, ws: int, px: jax.Array, py: jax.Array) -> jax.Array:
    """Border-replicate bilinear sample of a flattened ``(hs*ws, C)`` image at positions ``px, py`` (any shape).

    Differentiable in all three arrays. On XLA:CPU the reverse pass is hand-written (:func:`bilinear_grads`:
    recomputes the 4 gathers, reduces channels with dots; reverse mode only), measured faster there; other
    backends differentiate :func:`bilinear_value` itself, which gives the same derivatives.
    """
    if cpu_rewrites():
        return _bilinear(flat, hs, ws, px, py)
    return bilinear_value(flat, hs, ws, px, py)


def gaussian_taps(pos: jax.Array, size: int, kernel_size: int, dilation: int, sigma: float):
    """resample2d taps along one axis: clamped indices, Gaussian weights and the weights' derivative w.r.t.
    ``pos``, each ``(*pos.shape, 2*(K//2))``."""
    base = jnp.floor(pos)
    frac = pos - base
    idx, wts, dws = [], [], []
    for f in range(kernel_size // 2):
        # (tap offset, distance, d distance / d frac)
        for offset, dist, sign in (
            (-f * dilation, f * dilation + frac, 1.0),
            ((f + 1) * dilation, (f + 1) * dilation - frac, -1.0),
        ):
            w = jnp.exp(-(dist * dist) / (2.0 * sigma * sigma))
            idx.append(jnp.clip(base + offset, 0, size - 1).astype(jnp.int32))
            wts.append(w)
            dws.append(w * (-dist / (sigma * sigma)) * sign)
    if not idx:  # kernel_size < 2: no taps; the original then divides 0 by its 1e-8 floor
        shape = (*pos.shape, 0)
        return jnp.zeros(shape, jnp.int32), jnp.zeros(shape, pos.dtype), jnp.zeros(shape, pos.dtype)
    return jnp.stack(idx, -1), jnp.stack(wts, -1), jnp.stack(dws, -1)


def _tap(arr, t):
    return lax.dynamic_index_in_dim(arr, t, -1, False)


def _gaussian_parts(flat, hs, ws, px, py, kernel_size, dilation, sigma):
    ix, wx, dwx = gaussian_taps(px, ws, kernel_size, dilation, sigma)
    iy, wy, dwy = gaussian_taps(py, hs, kernel_size, dilation, sigma)
    den = jnp.sum(wy, axis=-1) * jnp.sum(wx, axis=-1)
    den = jnp.where(den == 0, jnp.asarray(1e-8, den.dtype), den)
    return (ix, wx, dwx), (iy, wy, dwy), den


def gaussian_value(flat, hs, ws, px, py, kernel_size, dilation, sigma):
    """Forward value of :func:`gaussian_flat`; the taps are visited one per loop step (memory: one map)."""
    (ix, wx, _), (iy, wy, _), den = _gaussian_parts(flat, hs, ws, px, py, kernel_size, dilation, sigma)
    tx = ix.shape[-1]

    def tap(t, acc):
        a, b = t // tx, t % tx
        w = _tap(wy, a) * _tap(wx, b)
        return acc + w[..., None].astype(flat.dtype) * take_rows(flat, _tap(iy, a) * ws + _tap(ix, b))

    num = jnp.zeros((*px.shape, flat.shape[-1]), flat.dtype)
    if tx:  # kernel_size < 2 has no taps
        num = lax.fori_loop(0, tx * tx, tap, num)
    return num / den[..., None].astype(num.dtype)


def _gaussian_grads(flat, hs, ws, px, py, g, kernel_size, dilation, sigma):
    """Hand-written reverse pass (quotient rule over the separable weights, exact-split image sums)."""
    (ix, wx, dwx), (iy, wy, dwy), den = _gaussian_parts(flat, hs, ws, px, py, kernel_size, dilation, sigma)
    tx = ix.shape[-1]
    g = g.astype(flat.dtype)
    out = gaussian_value(flat, hs, ws, px, py, kernel_size, dilation, sigma)
    g_num = g / den[..., None].astype(g.dtype)  # d out / d num
    d_den = -channel_dot(g, out) / den  # d out / d den
    step = exact_step(jnp.max(jnp.abs(g_num)) if g.size else jnp.zeros((), g.dtype))  # tap weights <= 1

    def tap(t, carry):
        hi, lo, s = carry
        a, b = t // tx, t % tx
        idx = _tap(iy, a) * ws + _tap(ix, b)
        s = lax.dynamic_update_index_in_dim(s, channel_dot(g_num, take_rows(flat, idx))[..., None], t, -1)
        h_part, l_part = split_exact((_tap(wy, a) * _tap(wx, b))[..., None].astype(g.dtype) * g_num, step)
        return scatter_rows(hi, idx, h_part), scatter_rows(lo, idx, l_part), s

    zeros = jnp.zeros_like(flat)
    s = jnp.zeros((*px.shape, tx * tx), px.dtype)
    hi, lo = zeros, zeros
    if tx:
        hi, lo, s = lax.fori_loop(0, tx * tx, tap, (hi, lo, s))
    s = s.reshape(*px.shape, tx, tx)  # d out / d (wy_a * wx_b)
    d_wy = jnp.einsum("...ab,...b->...a", s, wx, precision=lax.Precision.HIGHEST) + d_den[
        ..., None
    ] * jnp.sum(wx, -1, keepdims=True)
    d_wx = jnp.einsum("...ab,...a->...b", s, wy, precision=lax.Precision.HIGHEST) + d_den[
        ..., None
    ] * jnp.sum(wy, -1, keepdims=True)
    return hi + lo, jnp.sum(d_wx * dwx, -1), jnp.sum(d_wy * dwy, -1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 5, 6, 7))
def _gaussian(flat, hs, ws, px, py, kernel_size, dilation, sigma):
    return gaussian_value(flat, hs, ws, px, py, kernel_size, dilation, sigma)


def _gaussian_fwd(flat, hs, ws, px, py, kernel_size, dilation, sigma):
    return gaussian_value(flat, hs, ws, px, py, kernel_size, dilation, sigma), (flat, px, py)


def _gaussian_bwd(hs, ws, kernel_size, dilation, sigma, res, g):
    flat, px, py = res
    return _gaussian_grads(flat, hs, ws, px, py, g, kernel_size, dilation, sigma)


_gaussian.defvjp(_gaussian_fwd, _gaussian_bwd)


def gaussian_flat(
    flat: jax.Array,
    hs: int,
    ws: int,
    px: jax.Array,
    py: jax.Array,
    kernel_size: int,
    dilation: int,
    sigma: float,
) -> jax.Array:
    """Normalised separable Gaussian sample (GFLA resample2d) of a flattened image at ``px, py``.

    Reverse-mode differentiable in all three arrays (hand-written VJP; no forward mode).
    """
    return _gaussian(flat, hs, ws, px, py, kernel_size, dilation, sigma)


def pixel_grid(h: int, w: int, dtype, row0=0) -> tuple[jax.Array, jax.Array]:
    """Pixel coordinates ``(x, y)``, each ``(h, w)``, of a row band starting at image row ``row0``."""
    ys = lax.broadcasted_iota(jnp.int32, (h, w), 0) + row0
    xs = lax.broadcasted_iota(jnp.int32, (h, w), 1)
    return xs.astype(dtype), ys.astype(dtype)


def flow_positions(flow: jax.Array, row0=0) -> tuple[jax.Array, jax.Array]:
    """Absolute sampling positions ``(x + fx, y + fy)`` of a flow block ``(..., h, w, 2)`` starting at ``row0``."""
    xs, ys = pixel_grid(flow.shape[-3], flow.shape[-2], flow.dtype, row0)
    return flow[..., 0] + xs, flow[..., 1] + ys


def _check(image: jax.Array, flow: jax.Array, name: str) -> None:
    if image.ndim != 4 or flow.ndim != 4 or flow.shape[-1] != 2 or flow.shape[0] != image.shape[0]:
        raise ValueError(
            f"{name}: expected image (B,H,W,C) and flow (B,h,w,2) with the same B, got {image.shape} and {flow.shape}"
        )


# ----------------------------------------------------------------------------------------------------------
# jnp implementations.


def bilinear_sample(image: jax.Array, px: jax.Array, py: jax.Array) -> jax.Array:
    """Sample ``image (B,H,W,C)`` at absolute pixel positions ``px, py (B, ...)`` -> ``(B, ..., C)``."""
    _, hs, ws, c = image.shape
    flat = image.reshape(image.shape[0], hs * ws, c)
    return jax.vmap(lambda f, x, y: bilinear_flat(f, hs, ws, x, y))(flat, px, py)


@jax.jit
def _resample_xla(image: jax.Array, flow: jax.Array) -> jax.Array:
    px, py = flow_positions(flow)
    return bilinear_sample(image, px, py)


@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _gaussian_xla(image, flow, kernel_size, dilation, sigma):
    _, hs, ws, c = image.shape
    flat = image.reshape(image.shape[0], hs * ws, c)
    px, py = flow_positions(flow)
    return jax.vmap(lambda f, x, y: gaussian_flat(f, hs, ws, x, y, kernel_size, dilation, sigma))(
        flat, px, py
    )


# ----------------------------------------------------------------------------------------------------------
# Pallas kernels: grid (batch, row band); each program holds its image whole and gathers from it.


def _pallas_sampler(image: jax.Array, flow: jax.Array, sample) -> jax.Array:
    b, hs, ws, c = image.shape
    h, w = flow.shape[1], flow.shape[2]
    rows = row_block(h, w)
    flat = image.reshape(b, hs * ws, c)

    def kernel(src_ref, flow_ref, out_ref):
        px, py = flow_positions(flow_ref[0], pl.program_id(1) * rows)
        out_ref[0] = sample(src_ref[0], hs, ws, px, py).astype(out_ref.dtype)

    return pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((b, h, w, c), image.dtype),
        grid=(b, h // rows),
        in_specs=[
            pl.BlockSpec((1, hs * ws, c), lambda i, j: (i, 0, 0)),
            pl.BlockSpec((1, rows, w, 2), lambda i, j: (i, j, 0, 0)),
        ],
        out_specs=pl.BlockSpec((1, rows, w, c), lambda i, j: (i, j, 0, 0)),
        interpret=interpret_mode(),
    )(flat, flow)


def _resample_pallas(image, flow):
    return _pallas_sampler(image, flow, bilinear_flat)


_resample_pallas_diff = jax.jit(with_reference_vjp(_resample_pallas, _resample_xla))


@functools.cache
def _gaussian_pallas_diff(kernel_size: int, dilation: int, sigma: float):
    sample = functools.partial(gaussian_flat, kernel_size=kernel_size, dilation=dilation, sigma=sigma)
    return jax.jit(
        with_reference_vjp(
            lambda im, fl: _pallas_sampler(im, fl, sample),
            lambda im, fl: _gaussian_xla(im, fl, kernel_size, dilation, sigma),
        )
    )


# ----------------------------------------------------------------------------------------------------------
# Public ops.


def resample(image: jax.Array, flow: jax.Array, *, impl: str = "auto") -> jax.Array:
    """Warp ``image (B,Hs,Ws,C)`` by ``flow (B,h,w,2)`` with border-replicate bilinear sampling -> ``(B,h,w,C)``.

    Same as GFLA's block_extractor with k=1 (and grid_sample border/align_corners=True in pixel units);
    differentiable in both arguments.
    """
    _check(image, flow, "resample")
    flow = flow.astype(image.dtype)
    if resolve_impl(impl) == "pallas":
        return _resample_pallas_diff(image, flow)
    return _resample_xla(image, flow)


def gaussian_resample(
    image: jax.Array,
    flow: jax.Array,
    kernel_size: int = 4,
    dilation: int = 1,
    sigma: float = 2.0,
    *,
    impl: str = "auto",
) -> jax.Array:
    """GFLA ``Resample2d(kernel_size, dilation, sigma)``: normalised Gaussian-weighted (K//2*2)^2-tap sampling.

    Taps sit at ``floor(p) - f*d`` and ``floor(p) + (f+1)*d`` for ``f < K//2`` along each axis (clamped to the
    image, duplicates kept), weighted by ``exp(-dist^2 / (2 sigma^2))`` of their unclamped distance. The image
    gradient is the exact one (not the CUDA kernel's trunc-based slip, which GFLA never uses).
    """
    _check(image, flow, "gaussian_resample")
    flow = flow.astype(image.dtype)
    kernel_size, dilation, sigma = int(kernel_size), int(dilation), float(sigma)
    if resolve_impl(impl) == "pallas":
        return _gaussian_pallas_diff(kernel_size, dilation, sigma)(image, flow)
    return _gaussian_xla(image, flow, kernel_size, dilation, sigma)
