"""GFLA local attention: k x k blocks around flow-displaced positions and their softmax-weighted mean.

Replaces GFLA's ``block_extractor`` and ``local_attn_reshape`` CUDA extensions. In NHWC the original's
``[B, C, k*h, k*w]`` block image becomes ``(B, h, w, k, k, C)`` (row-major taps: ``oy`` outer, ``ox`` inner,
offsets ``-k//2 .. k-1-k//2``), and the attention maps ``[B, k*k, h, w]`` become ``(B, h, w, k*k)``.
``local_attention`` fuses extraction and combination so the blocks never exist as one tensor.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from ptx.ops._dispatch import interpret_mode, resolve_impl, row_block, with_reference_vjp
from ptx.ops.resample import (
    bilinear_flat,
    bilinear_grads,
    bilinear_value,
    channel_dot,
    exact_step,
    pixel_grid,
)

__all__ = ["blocks_to_image", "extract_blocks", "local_attention", "local_attn_reshape", "tap_offsets"]


def tap_offsets(k: int) -> list[int]:
    """Block offsets of GFLA's extractor: ``-k//2 .. k-1-k//2`` (symmetric for odd k, ``-2..1`` for k=4)."""
    return [o - k // 2 for o in range(k)]


def _check(source, flow, k, name):
    if source.ndim != 4 or flow.ndim != 4 or flow.shape[-1] != 2 or flow.shape[0] != source.shape[0]:
        raise ValueError(
            f"{name}: expected source (B,H,W,C) and flow (B,h,w,2) with the same B, "
            f"got {source.shape} and {flow.shape}"
        )
    if int(k) != k or k < 1:
        raise ValueError(f"{name}: kernel size k must be a positive int, got {k!r}")


# ----------------------------------------------------------------------------------------------------------
# Per-image math shared by the jnp paths and the Pallas kernels.


def _tap_positions(flow, base, off):
    """GFLA's order of operations: ``(flow + offset) + base``, so float32 positions match bit for bit."""
    return (flow + off) + base


def _blocks_flat(flat, hs, ws, flow, k, row0=0):
    """``(h, w, k, k, C)`` blocks of a flattened image around the flow-displaced positions of ``flow (h,w,2)``."""
    bx, by = pixel_grid(flow.shape[0], flow.shape[1], flow.dtype, row0)
    shape = (*flow.shape[:-1], k, k)
    # Offsets from iota (not a captured constant array, which Pallas kernels may not hold).
    oy = (lax.broadcasted_iota(jnp.int32, shape, 2) - k // 2).astype(flow.dtype)
    ox = (lax.broadcasted_iota(jnp.int32, shape, 3) - k // 2).astype(flow.dtype)
    qx = _tap_positions(flow[..., 0, None, None], bx[..., None, None], ox)
    qy = _tap_positions(flow[..., 1, None, None], by[..., None, None], oy)
    return bilinear_flat(flat, hs, ws, jnp.broadcast_to(qx, shape), jnp.broadcast_to(qy, shape))


def _tap_xy(j, k, flow, bx, by):
    """Sampling positions of tap ``j`` (row-major over the k x k block)."""
    oy = (j // k - k // 2).astype(flow.dtype)
    ox = (j % k - k // 2).astype(flow.dtype)
    return _tap_positions(flow[..., 0], bx, ox), _tap_positions(flow[..., 1], by, oy)


def _attend_flat(flat, hs, ws, flow, weights, k, row0=0):
    """Mean over the k*k taps of ``weights[..., j] * block_j``, one tap per loop step: ``(h, w, C)``.

    A loop (not k*k unrolled copies) keeps compile time flat in k and memory at one tap.
    """
    bx, by = pixel_grid(flow.shape[0], flow.shape[1], flow.dtype, row0)

    def tap(j, acc):
        px, py = _tap_xy(j, k, flow, bx, by)
        vals = bilinear_value(flat, hs, ws, px, py)
        wj = lax.dynamic_index_in_dim(weights, j, axis=-1, keepdims=True)
        return acc + wj.astype(vals.dtype) * vals

    acc = jnp.zeros((*flow.shape[:-1], flat.shape[-1]), flat.dtype)
    return lax.fori_loop(0, k * k, tap, acc) / (k * k)


def _attend_grads_flat(flat, hs, ws, flow, weights, g, k):
    """Hand-written reverse pass of :func:`_attend_flat`: one loop over taps that recomputes each tap's
    gathers, accumulates the source cotangent exactly-split in place, and never stores per-tap residuals."""
    bx, by = pixel_grid(flow.shape[0], flow.shape[1], flow.dtype)
    gk = g / (k * k)
    # Every image update is gk * w_j * (corner weight <= 1): one grid step bounds them all.
    step = exact_step(jnp.max(jnp.abs(gk)) * jnp.max(jnp.abs(weights)))

    def tap(j, carry):
        hi, lo, dfx, dfy, dw = carry
        px, py = _tap_xy(j, k, flow, bx, by)
        wj = lax.dynamic_index_in_dim(weights, j, axis=-1, keepdims=True)
        d_px, d_py, (hi, lo), value = bilinear_grads(flat, hs, ws, px, py, gk * wj, (hi, lo), step)
        dwj = channel_dot(gk, value)
        dw = lax.dynamic_update_index_in_dim(dw, dwj[..., None].astype(dw.dtype), j, axis=-1)
        return hi, lo, dfx + d_px, dfy + d_py, dw

    zeros = jnp.zeros_like(flat)
    init = (zeros, zeros, jnp.zeros_like(flow[..., 0]), jnp.zeros_like(flow[..., 1]), jnp.zeros_like(weights))
    hi, lo, dfx, dfy, dw = lax.fori_loop(0, k * k, tap, init)
    return hi + lo, jnp.stack([dfx, dfy], axis=-1), dw


# ----------------------------------------------------------------------------------------------------------
# jnp implementations.


@functools.partial(jax.jit, static_argnums=2)
def _extract_xla(source, flow, k):
    _, hs, ws, c = source.shape
    flat = source.reshape(source.shape[0], hs * ws, c)
    return jax.vmap(lambda f, fl: _blocks_flat(f, hs, ws, fl, k))(flat, flow)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _attention_core(source, flow, weights, k):
    _, hs, ws, c = source.shape
    flat = source.reshape(source.shape[0], hs * ws, c)
    return jax.vmap(lambda f, fl, a: _attend_flat(f, hs, ws, fl, a, k))(flat, flow, weights)


def _attention_core_fwd(source, flow, weights, k):
    return _attention_core(source, flow, weights, k), (source, flow, weights)


def _attention_core_bwd(k, res, g):
    source, flow, weights = res
    b, hs, ws, c = source.shape
    flat = source.reshape(b, hs * ws, c)
    grads = jax.vmap(lambda f, fl, a, gg: _attend_grads_flat(f, hs, ws, fl, a, gg, k))(flat, flow, weights, g)
    d_flat, d_flow, d_w = grads
    return d_flat.reshape(source.shape), d_flow, d_w


_attention_core.defvjp(_attention_core_fwd, _attention_core_bwd)


@functools.partial(jax.jit, static_argnums=3)
def _attention_xla(source, flow, weights, k):
    return _attention_core(source, flow, weights, k)


# ----------------------------------------------------------------------------------------------------------
# Pallas kernels: grid (batch, row band of the flow grid); the source image of the batch element is one block.


def _extract_pallas(source, flow, k):
    b, hs, ws, c = source.shape
    h, w = flow.shape[1], flow.shape[2]
    rows = row_block(h, w, max(1, 4096 // (k * k)))

    def kernel(src_ref, flow_ref, out_ref):
        blocks = _blocks_flat(src_ref[0], hs, ws, flow_ref[0], k, pl.program_id(1) * rows)
        out_ref[0] = blocks.astype(out_ref.dtype)

    return pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((b, h, w, k, k, c), source.dtype),
        grid=(b, h // rows),
        in_specs=[
            pl.BlockSpec((1, hs * ws, c), lambda i, j: (i, 0, 0)),
            pl.BlockSpec((1, rows, w, 2), lambda i, j: (i, j, 0, 0)),
        ],
        out_specs=pl.BlockSpec((1, rows, w, k, k, c), lambda i, j: (i, j, 0, 0, 0, 0)),
        interpret=interpret_mode(),
    )(source.reshape(b, hs * ws, c), flow)


def _attention_pallas(source, flow, weights, k):
    b, hs, ws, c = source.shape
    h, w = flow.shape[1], flow.shape[2]
    rows = row_block(h, w)

    def kernel(src_ref, flow_ref, w_ref, out_ref):
        out = _attend_flat(src_ref[0], hs, ws, flow_ref[0], w_ref[0], k, pl.program_id(1) * rows)
        out_ref[0] = out.astype(out_ref.dtype)

    return pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((b, h, w, c), source.dtype),
        grid=(b, h // rows),
        in_specs=[
            pl.BlockSpec((1, hs * ws, c), lambda i, j: (i, 0, 0)),
            pl.BlockSpec((1, rows, w, 2), lambda i, j: (i, j, 0, 0)),
            pl.BlockSpec((1, rows, w, k * k), lambda i, j: (i, j, 0, 0)),
        ],
        out_specs=pl.BlockSpec((1, rows, w, c), lambda i, j: (i, j, 0, 0)),
        interpret=interpret_mode(),
    )(source.reshape(b, hs * ws, c), flow, weights)


@functools.cache
def _extract_pallas_diff(k: int):
    return jax.jit(
        with_reference_vjp(functools.partial(_extract_pallas, k=k), functools.partial(_extract_xla, k=k))
    )


@functools.cache
def _attention_pallas_diff(k: int):
    return jax.jit(
        with_reference_vjp(functools.partial(_attention_pallas, k=k), functools.partial(_attention_xla, k=k))
    )


# ----------------------------------------------------------------------------------------------------------
# Public ops.


def extract_blocks(source: jax.Array, flow: jax.Array, k: int, *, impl: str = "auto") -> jax.Array:
    """GFLA ``block_extractor``: k x k border-replicate bilinear blocks around ``(x, y) + flow`` -> (B,h,w,k,k,C).

    ``source (B,Hs,Ws,C)``, ``flow (B,h,w,2)`` in source pixels; the flow grid may be smaller than the source.
    Use :func:`blocks_to_image` for the original's ``[k*h, k*w]`` spatial layout.
    """
    _check(source, flow, k, "extract_blocks")
    flow = flow.astype(source.dtype)
    if resolve_impl(impl) == "pallas":
        return _extract_pallas_diff(int(k))(source, flow)
    return _extract_xla(source, flow, int(k))


def local_attention(
    source: jax.Array, flow: jax.Array, weights: jax.Array, k: int, *, impl: str = "auto"
) -> jax.Array:
    """GFLA ExtractorAttn's combination: ``mean_j weights[..., j] * extract_blocks(source, flow, k)[..., j, :]``.

    ``weights (B,h,w,k*k)`` (softmax outputs, row-major taps). The blocks are sampled one tap at a time,
    so memory stays O(B*h*w*C) in the forward pass. Returns ``(B,h,w,C)``.
    """
    _check(source, flow, k, "local_attention")
    k = int(k)
    if weights.shape != (*flow.shape[:3], k * k):
        raise ValueError(f"local_attention: weights must be {(*flow.shape[:3], k * k)}, got {weights.shape}")
    flow = flow.astype(source.dtype)
    weights = weights.astype(source.dtype)
    if resolve_impl(impl) == "pallas":
        return _attention_pallas_diff(k)(source, flow, weights)
    return _attention_xla(source, flow, weights, k)


def local_attn_reshape(weights: jax.Array, k: int) -> jax.Array:
    """GFLA ``local_attn_reshape`` in NHWC: ``(B,h,w,k*k)`` -> ``(B,k*h,k*w,1)`` (depth-to-space, row-major taps)."""
    b, h, w, kk = weights.shape
    if kk != k * k:
        raise ValueError(f"local_attn_reshape: last axis must be k*k={k * k}, got {kk}")
    return weights.reshape(b, h, w, k, k).transpose(0, 1, 3, 2, 4).reshape(b, h * k, w * k, 1)


def blocks_to_image(blocks: jax.Array) -> jax.Array:
    """``(B,h,w,k,k,C)`` blocks -> the original block_extractor layout ``(B,k*h,k*w,C)``."""
    b, h, w, k, k2, c = blocks.shape
    return blocks.transpose(0, 1, 3, 2, 4, 5).reshape(b, h * k, w * k2, c)
