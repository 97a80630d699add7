"""Shared plumbing for the ops: implementation choice and Pallas kernels with jnp-derived gradients."""

from __future__ import annotations

from collections.abc import Callable

import jax

from ptx.backend import target_platform

IMPLS = ("auto", "xla", "pallas")


def resolve_impl(impl: str) -> str:
    """Map ``impl`` to "xla" or "pallas".

    ``auto`` picks the jnp path on every backend for now: on CPU Pallas only runs interpreted, and the
    kernels (whole-image blocks with in-kernel gathers) have so far been validated only in interpret mode,
    not lowered with Triton/Mosaic on a GPU or TPU. Pass ``impl="pallas"`` to use them explicitly.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        return "xla"
    return impl


def interpret_mode() -> bool:
    """Pallas kernels only compile natively on GPU/TPU; everywhere else (including a CPU default device on a
    GPU host, :func:`ptx.backend.target_platform`) they run in interpret mode."""
    return target_platform() not in ("gpu", "tpu")


def with_reference_vjp(forward: Callable, reference: Callable) -> Callable:
    """``forward`` (a Pallas call, not differentiable) with the gradient of the jnp ``reference``.

    Both take the same positional array arguments and compute the same function; the backward pass
    re-linearises the reference, so Pallas forwards stay usable inside ``jax.grad``.
    """

    @jax.custom_vjp
    def op(*args):
        return forward(*args)

    def fwd(*args):
        return forward(*args), args

    def bwd(args, g):
        _, vjp = jax.vjp(reference, *args)
        return vjp(g)

    op.defvjp(fwd, bwd)
    return op


def row_block(h: int, w: int, target_pixels: int = 4096) -> int:
    """Largest divisor of ``h`` whose row band holds at most ``target_pixels`` pixels (at least one row)."""
    best = 1
    for rows in range(1, h + 1):
        if h % rows == 0 and rows * w <= target_pixels:
            best = rows
    return best
