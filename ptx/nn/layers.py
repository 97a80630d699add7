"""PyTorch-matching layers in NHWC flax.linen.

Every seed model was written in PyTorch; these layers reproduce its numerics exactly (explicit padding,
biased-variance instance norm, transposed-convolution output geometry) so converted weights give the same
outputs. Parameter layouts (what converters write):

* ``Conv2d``: ``kernel`` (kh, kw, in, out) = torch ``weight.permute(2, 3, 1, 0)``; ``bias`` (out,).
* ``ConvTranspose2d``: ``kernel`` (kh, kw, in, out) = torch ``weight.permute(2, 3, 0, 1)`` (torch stores
  transposed-conv weights as [in, out, kh, kw]; no spatial flip is stored); ``bias`` (out,).
* ``InstanceNorm`` / ``BatchNorm``: ``scale`` and ``bias`` (C,); batch norm statistics ``mean``/``var`` in the
  ``batch_stats`` collection.
* ``spectral_norm=True`` on a conv keeps torch's power-iteration vector ``u`` (out,) in the ``spectral``
  collection with ``v`` (torch's ``weight_u``/``weight_v``); the parameter ``kernel`` is ``weight_orig``.

Convolutions take XLA:CPU-specific forms (per-tap matmuls, phase-decomposed transposed convs) only when
:func:`ptx.backend.cpu_rewrites` says the trace is for the CPU; other backends get ``lax.conv_general_dilated``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from ptx.backend import cpu_rewrites

Padding = int | tuple[int, int] | tuple[tuple[int, int], tuple[int, int]]

_DN = ("NHWC", "HWIO", "NHWC")


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


def _explicit_padding(padding: Padding) -> tuple[tuple[int, int], tuple[int, int]]:
    if isinstance(padding, int):
        return ((padding, padding), (padding, padding))
    if isinstance(padding[0], int):
        py, px = padding  # type: ignore[misc]
        return ((py, py), (px, px))
    return tuple(tuple(p) for p in padding)  # type: ignore[return-value]


def torch_default_kernel_init(key, shape, dtype=jnp.float32):
    """kaiming_uniform(a=sqrt(5)) as torch.nn.Conv2d initialises: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    fan_in = shape[0] * shape[1] * shape[2]
    bound = 1.0 / jnp.sqrt(fan_in)
    return jax.random.uniform(key, shape, dtype, -bound, bound)


def pad2d(x: jax.Array, pad: int | tuple[int, int, int, int], mode: str = "reflect") -> jax.Array:
    """torch ReflectionPad2d / ReplicationPad2d / ZeroPad2d on NHWC. ``pad`` = p or (top, bottom, left, right)."""
    if isinstance(pad, int):
        pad = (pad, pad, pad, pad)
    t, b, l, r = pad
    jmode = {"reflect": "reflect", "replicate": "edge", "zero": "constant", "zeros": "constant"}[mode]
    return jnp.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), mode=jmode)


def spectral_normalize(
    kernel: jax.Array,
    u: jax.Array,
    v: jax.Array,
    *,
    update: bool,
    eps: float = 1e-12,
    n_power_iterations: int = 1,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """torch.nn.utils.spectral_norm: W / sigma with W viewed as [out, -1]; returns (kernel, u, v).

    ``kernel`` has the output channels on its last axis; torch flattens [out, in, kh, kw], so the matrix is
    built in that order to keep ``u``/``v`` identical to the original ``weight_u``/``weight_v`` buffers.
    Training forwards run power iterations (``update``); eval uses the stored vectors as torch does.
    """
    out = kernel.shape[-1]
    w = jnp.moveaxis(kernel, -1, 0)
    w = jnp.transpose(w, (0, 3, 1, 2)).reshape(out, -1) if kernel.ndim == 4 else w.reshape(out, -1)

    def normalize(a):
        return a / jnp.maximum(jnp.linalg.norm(a), eps)

    if update:
        w_sg = lax.stop_gradient(w)
        for _ in range(n_power_iterations):
            v = normalize(w_sg.T @ u)
            u = normalize(w_sg @ v)
    u, v = lax.stop_gradient(u), lax.stop_gradient(v)
    sigma = u @ (w @ v)
    return kernel / sigma, u, v


def _spectral(module: nn.Module, kernel: jax.Array, features: int, update_stats: bool) -> jax.Array:
    """Keeps torch's ``weight_u`` / ``weight_v`` in the ``spectral`` collection and normalises ``kernel``."""
    fan = kernel.size // features

    def unit(shape):
        def init():
            a = jax.random.normal(module.make_rng("params"), shape)
            return a / jnp.maximum(jnp.linalg.norm(a), 1e-12)

        return init

    u_var = module.variable("spectral", "u", unit((features,)))
    v_var = module.variable("spectral", "v", unit((fan,)))
    kernel, u, v = spectral_normalize(kernel, u_var.value, v_var.value, update=update_stats)
    if update_stats and not module.is_initializing():
        u_var.value, v_var.value = u, v
    return kernel


def _weight_grad_by_taps(
    kernel_shape: tuple[int, ...], stride: tuple[int, int], dilation: tuple[int, int]
) -> bool:
    """Whether :func:`conv2d` computes the weight gradient by :func:`_weight_grad_by_row_blocks`.

    XLA:CPU's own weight gradient (a convolution whose window is the whole image) ran 1.5-4x slower than the
    row-blocked per-tap matmuls for every undilated kernel up to 7x7 measured (1x1 to 7x7, 3 to 512 channels,
    stride 1 and 2, maps from 8x6 to 256x256; ``python -m benchmarks.conv_layers``).
    """
    kh, kw, _, _ = kernel_shape
    return dilation == (1, 1) and kh * kw <= 49


# Bytes of one row block (input rows with their halo, and the cotangent rows) the weight gradient keeps hot.
_ROW_BLOCK_BYTES = 1 << 20


def _rows_per_block(x_shape, g_shape, stride: tuple[int, int]) -> int:
    """Cotangent rows per block of :func:`_weight_grad_by_row_blocks`: about ``_ROW_BLOCK_BYTES`` of input
    and cotangent, with the blocks as equal as possible so that little padding is computed."""
    b, _, wp, cin = x_shape
    _, ho, wo, cout = g_shape
    per_row = 4 * b * (stride[0] * wp * cin + wo * cout)
    rows = max(1, min(ho, _ROW_BLOCK_BYTES // per_row))
    blocks = -(-ho // rows)
    return -(-ho // blocks)


def _weight_grad_by_row_blocks(x: jax.Array, g: jax.Array, kernel_shape, stride, padding) -> jax.Array:
    """d conv / d kernel for input ``x`` (padded by ``padding`` as the conv does) and cotangent ``g``: a scan
    over blocks of cotangent rows, each adding one ``(cin, rows*wo) @ (rows*wo, cout)`` matmul per tap whose
    input window is cut from the block's own input rows (small enough to stay in cache).

    Why: per tap over the whole image, each window is a full-size strided copy and each matmul contracts over
    every pixel; on XLA:CPU both ran far below the matmul ceiling (3x3 128->64 at 256x176: XLA 226-373 ms,
    whole-image taps 163-228 ms, row blocks 87-106 ms, PyTorch 48-50 ms).
    """
    kh, kw, cin, cout = kernel_shape
    b, ho, wo, _ = g.shape
    sy, sx = stride
    (pt, pb), (pl, pr) = padding
    rows = _rows_per_block((b, x.shape[1] + pt + pb, x.shape[2] + pl + pr, cin), g.shape, stride)
    blocks = -(-ho // rows)
    g = jnp.pad(g, ((0, 0), (0, blocks * rows - ho), (0, 0), (0, 0)))
    span = (rows - 1) * sy + kh
    # One padding for the conv's own and the last block's extra rows (zeros the padded cotangent rows meet).
    extra = max(0, (blocks * rows - 1) * sy + kh - (x.shape[1] + pt + pb))
    xp = _pad_hw(x, ((pt, pb + extra), (pl, pr)))

    def block(acc, i):
        xb = lax.dynamic_slice_in_dim(xp, i * rows * sy, span, axis=1)
        gb = lax.dynamic_slice_in_dim(g, i * rows, rows, axis=1).reshape(-1, cout)
        taps = []
        for ty in range(kh):
            for tx in range(kw):
                window = lax.slice(
                    xb,
                    (0, ty, tx, 0),
                    (b, ty + (rows - 1) * sy + 1, tx + (wo - 1) * sx + 1, cin),
                    (1, sy, sx, 1),
                )
                taps.append(jnp.matmul(window.reshape(-1, cin).T, gb, preferred_element_type=jnp.float32))
        return acc + jnp.stack(taps), None

    acc = jnp.zeros((kh * kw, cin, cout), jnp.float32)
    if blocks == 1:
        acc, _ = block(acc, 0)
    else:
        acc, _ = lax.scan(block, acc, jnp.arange(blocks))
    return acc.reshape(kernel_shape)


# Largest batch x height x width at which wide 3x3 convs run faster as per-tap matmuls than as XLA's convolution.
_TAP_FORWARD_PIXELS = 1024


def _forward_by_taps(
    x_shape: tuple[int, ...],
    kernel_shape: tuple[int, ...],
    stride: tuple[int, int],
    dilation: tuple[int, int],
) -> bool:
    """Whether :func:`conv2d` runs as one matmul per kernel tap (forward, and its transpose for the input
    gradient): 1x1 kernels (one matmul), and 3x3 kernels with 128+ channels on small maps.

    The tap form writes and re-reads a full-size partial sum per tap, so XLA's convolution wins on large maps.
    Measured on XLA:CPU (2 cores), forward + both gradients of one 3x3 conv at batch 1, XLA vs taps: 128->128 at
    128x88 78 vs 107 ms, 512->256 at 64x44 156 vs 179, 256->256 at 64x44 89 vs 88-98, 512->512 at 32x22 77 vs
    69. Whole generators f+b with the taps on every 128+-channel map vs only 1x1 taps (``benchmarks.compare``,
    CPU s): GFLA 4.6 vs 4.0, SCA-GAN 29.1 vs 20.1.
    """
    kh, kw, cin, cout = kernel_shape
    if stride != (1, 1) or dilation != (1, 1):
        return False
    if kh * kw == 1:
        return True
    pixels = x_shape[0] * x_shape[1] * x_shape[2]
    return kh * kw <= 9 and cin >= 128 and cout >= 128 and pixels <= _TAP_FORWARD_PIXELS


def _pad_hw(x, padding):
    """Zero padding of H and W by ``((top, bottom), (left, right))``; negative values crop."""
    (pt, pb), (pl, pr) = padding
    return lax.pad(x, jnp.zeros((), x.dtype), ((0, 0, 0), (pt, pb, 0), (pl, pr, 0), (0, 0, 0)))


def _conv_by_taps(x, kernel, padding):
    """Stride-1 correlation as the sum over taps of (shifted input) @ kernel[tap]."""
    kh, kw, _, _ = kernel.shape
    xp = _pad_hw(x, padding)
    ho, wo = xp.shape[1] - kh + 1, xp.shape[2] - kw + 1
    out = None
    for i in range(kh):
        for j in range(kw):
            term = jnp.einsum("bhwc,co->bhwo", xp[:, i : i + ho, j : j + wo], kernel[i, j])
            out = term if out is None else out + term
    return out


def _plain_conv(x, kernel, stride, padding, dilation):
    return lax.conv_general_dilated(
        x, kernel, window_strides=stride, padding=padding, rhs_dilation=dilation, dimension_numbers=_DN
    )


def _conv(x, kernel, stride, padding, dilation):
    if _forward_by_taps(x.shape, kernel.shape, stride, dilation):
        return _conv_by_taps(x, kernel, padding)
    return _plain_conv(x, kernel, stride, padding, dilation)


def conv2d(x: jax.Array, kernel: jax.Array, stride, padding, dilation) -> jax.Array:
    """``lax.conv_general_dilated`` (NHWC, HWIO, explicit padding, negative padding crops).

    When :func:`ptx.backend.cpu_rewrites` says the trace is for XLA:CPU, it runs as per-tap matmuls where
    :func:`_forward_by_taps` says so and with a per-tap weight gradient where :func:`_weight_grad_by_taps`
    does (both measured faster there); same values as plain autodiff up to float32 summation order. Every
    other backend gets the plain convolution and its autodiff.
    """
    if cpu_rewrites() and (
        _forward_by_taps(x.shape, kernel.shape, stride, dilation)
        or _weight_grad_by_taps(kernel.shape, stride, dilation)
        or _input_grad_by_phases(kernel.shape, stride, padding, dilation)
    ):
        return _conv2d_cpu(x, kernel, stride, padding, dilation)
    return _plain_conv(x, kernel, stride, padding, dilation)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv2d_cpu(x, kernel, stride, padding, dilation):
    return _conv(x, kernel, stride, padding, dilation)


def _conv2d_cpu_fwd(x, kernel, stride, padding, dilation):
    return _conv(x, kernel, stride, padding, dilation), (x, kernel)


def _input_grad_by_phases(
    kernel_shape: tuple[int, ...], stride: tuple[int, int], padding, dilation: tuple[int, int]
) -> bool:
    """Whether :func:`conv2d`'s input gradient is computed as a transposed conv by phase taps
    (:func:`_conv_transpose_by_phase_taps`) instead of XLA's lhs-dilated convolution.

    Measured on XLA:CPU (2 cores): the input gradient of Def-GAN's 4x4 stride-2 512->512 conv on an 8x4 map
    took 138 ms at batch 1 and 472 ms at batch 4 (6.9 ms forward; PyTorch's whole forward + backward 23 ms).
    Strided, undilated, non-negative padding, and wide (the same channel rule as the transposed convs).
    """
    (pt, pb), (pl, pr) = _explicit_padding(padding)
    strided = stride != (1, 1) and dilation == (1, 1) and min(pt, pb, pl, pr) >= 0
    return strided and _transpose_by_phase_taps(kernel_shape)


def _conv_input_grad_by_phases(g, kernel, size, stride, padding):
    """d conv2d / d input for cotangent ``g``: the transposed conv of ``g`` with the same kernel (in and out
    swapped), its output padding (negative: a crop) sized to the input's ``size``."""
    (pt, _), (pl, _) = padding
    kh, kw = kernel.shape[:2]
    ho, wo = g.shape[1:3]
    op_h = size[0] - ((ho - 1) * stride[0] - 2 * pt + kh)
    op_w = size[1] - ((wo - 1) * stride[1] - 2 * pl + kw)
    return _conv_transpose_by_phase_taps(g, kernel.transpose(0, 1, 3, 2), stride, (pt, pl), (op_h, op_w))


def _conv2d_cpu_bwd(stride, padding, dilation, res, g):
    x, kernel = res
    if _input_grad_by_phases(kernel.shape, stride, padding, dilation):
        dx = _conv_input_grad_by_phases(g, kernel, x.shape[1:3], stride, padding).astype(x.dtype)
        if not _weight_grad_by_taps(kernel.shape, stride, dilation):
            (dk,) = jax.linear_transpose(lambda k: _conv(x, k, stride, padding, dilation), kernel)(g)
            return dx, dk
    elif not _weight_grad_by_taps(kernel.shape, stride, dilation):
        _, vjp = jax.vjp(lambda a, k: _conv(a, k, stride, padding, dilation), x, kernel)
        return vjp(g)
    else:
        (dx,) = jax.linear_transpose(lambda a: _conv(a, kernel, stride, padding, dilation), x)(g)
    dk = _weight_grad_by_row_blocks(x, g, kernel.shape, stride, padding)
    return dx, dk.astype(kernel.dtype)


_conv2d_cpu.defvjp(_conv2d_cpu_fwd, _conv2d_cpu_bwd)


class Conv2d(nn.Module):
    """torch.nn.Conv2d with explicit (possibly asymmetric) zero padding, NHWC."""

    features: int
    kernel_size: int | tuple[int, int] = 3
    stride: int | tuple[int, int] = 1
    padding: Padding = 0
    dilation: int | tuple[int, int] = 1
    use_bias: bool = True
    spectral_norm: bool = False
    kernel_init: Callable = torch_default_kernel_init
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, update_stats: bool = False) -> jax.Array:
        kh, kw = _pair(self.kernel_size)
        kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features))
        if self.spectral_norm:
            kernel = _spectral(self, kernel, self.features, update_stats)
        dtype = self.dtype or x.dtype
        y = conv2d(
            x.astype(dtype),
            kernel.astype(dtype),
            _pair(self.stride),
            _explicit_padding(self.padding),
            _pair(self.dilation),
        )
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros, (self.features,))
            y = y + bias.astype(dtype)
        return y


def conv_transpose2d(
    x: jax.Array,
    kernel: jax.Array,
    stride: tuple[int, int],
    padding: tuple[int, int],
    output_padding: tuple[int, int] = (0, 0),
) -> jax.Array:
    """torch conv_transpose2d (NHWC, kernel (kh, kw, in, out) in torch orientation).

    XLA's own form is an lhs-dilated convolution (:func:`_conv_transpose_dilated`), used on every backend but
    XLA:CPU, where its weight gradient runs ~55x slower than PyTorch's (shared/reference/perf_cpu.md) and
    the same function is computed by phase decomposition instead: per-phase, per-tap matmuls for wide layers
    (:func:`_conv_transpose_by_phase_taps`), one ordinary convolution otherwise
    (:func:`_conv_transpose_by_phases`).
    """
    if cpu_rewrites():
        if _transpose_by_phase_taps(kernel.shape):
            return _conv_transpose_by_phase_taps(x, kernel, stride, padding, output_padding)
        return _conv_transpose_by_phases(x, kernel, stride, padding, output_padding)
    return _conv_transpose_dilated(x, kernel, stride, padding, output_padding)


def _transpose_by_phase_taps(kernel_shape: tuple[int, ...]) -> bool:
    """Whether the XLA:CPU transposed conv runs phase by phase as one matmul per kernel tap
    (:func:`_conv_transpose_by_phase_taps`) rather than as one convolution over a combined phase kernel.

    Measured on XLA:CPU (2 cores, batch 1, forward + both gradients): Def-GAN's 4x4 stride-2 decoder layers
    1536->512 at 16x8 2475 -> 274 ms, 1024->512 at 4x2 887 -> 105 ms, 512->128 at 64x32 506 -> 290 ms; a
    3x3 stride-2 256->128 at 64x44 (GFLA's size) 122 -> 95 ms. The combined kernel holds every phase's taps
    on 4x the output channels (a 4x4 stride-2 kernel becomes 3x3 x 4 out: 2.25x the work, and a weight-sized
    buffer written tap by tap). With 64 or fewer channels on a side the two forms measured even.
    """
    _, _, cin, cout = kernel_shape
    return cin * cout >= 128 * 64


def _phase_offsets(k: int, s: int, p: int) -> tuple[dict[int, list[tuple[int, int]]], int, int]:
    """Per output phase f, the (input offset, kernel tap) pairs with out[s*m + f] = sum x[m + offset] * w[tap]
    (taps t = f + p mod s), and the smallest and largest offset over all phases."""
    offsets = {f: [((f + p - t) // s, t) for t in range(k) if (f + p - t) % s == 0] for f in range(s)}
    all_off = [o for taps in offsets.values() for o, _ in taps]
    lo, hi = (min(all_off), max(all_off)) if all_off else (0, 0)
    return offsets, lo, hi


class _PhasePlan(NamedTuple):
    """How a transposed conv splits into output phases: output size, per-phase rows/cols (m_h, m_w), each axis's
    (offset, tap) pairs per phase with its smallest and largest offset, and the input padding that makes
    rows ``m + lo .. m + hi`` (``m < m_h``) readable."""

    out_h: int
    out_w: int
    m_h: int
    m_w: int
    offs_y: dict[int, list[tuple[int, int]]]
    offs_x: dict[int, list[tuple[int, int]]]
    lo_y: int
    lo_x: int
    hi_y: int
    hi_x: int
    pads: tuple[tuple[int, int], tuple[int, int]]


def _phase_plan(x_shape, kernel_shape, stride, padding, output_padding) -> _PhasePlan:
    _, h, w, _ = x_shape
    kh, kw = kernel_shape[:2]
    sy, sx = stride
    out_h = (h - 1) * sy - 2 * padding[0] + kh + output_padding[0]
    out_w = (w - 1) * sx - 2 * padding[1] + kw + output_padding[1]
    offs_y, lo_y, hi_y = _phase_offsets(kh, sy, padding[0])
    offs_x, lo_x, hi_x = _phase_offsets(kw, sx, padding[1])
    m_h, m_w = -(-out_h // sy), -(-out_w // sx)
    pads = ((-lo_y, (m_h - 1 + hi_y) - (h - 1)), (-lo_x, (m_w - 1 + hi_x) - (w - 1)))
    return _PhasePlan(out_h, out_w, m_h, m_w, offs_y, offs_x, lo_y, lo_x, hi_y, hi_x, pads)


def _conv_transpose_by_phase_taps(x, kernel, stride, padding, output_padding):
    """The transposed conv phase by phase, each phase the sum over its own taps of (shifted input) @ tap: the
    exact FLOPs of the transposed conv, the kernel read in place (the XLA:CPU path for wide layers)."""
    n, cout = x.shape[0], kernel.shape[-1]
    sy, sx = stride
    out_h, out_w, m_h, m_w, offs_y, offs_x, lo_y, lo_x, _, _, pads = _phase_plan(
        x.shape, kernel.shape, stride, padding, output_padding
    )
    xp = _pad_hw(x, pads)
    rows = []
    for fy in range(sy):
        cols = []
        for fx in range(sx):
            terms = [
                jnp.einsum(
                    "bhwc,co->bhwo",
                    xp[:, oy - lo_y : oy - lo_y + m_h, ox - lo_x : ox - lo_x + m_w],
                    kernel[ty, tx],
                )
                for oy, ty in offs_y[fy]
                for ox, tx in offs_x[fx]
            ]
            cols.append(sum(terms[1:], terms[0]) if terms else jnp.zeros((n, m_h, m_w, cout), x.dtype))
        rows.append(jnp.stack(cols, axis=3))  # (n, m_h, m_w, sx, cout)
    y = jnp.stack(rows, axis=2).reshape(n, m_h * sy, m_w * sx, cout)  # (n, m_h, sy, m_w, sx, cout)
    return y[:, :out_h, :out_w, :]


def _conv_transpose_dilated(x, kernel, stride, padding, output_padding):
    """The transposed conv as the gradient of a strided conv: the input dilated by the stride, correlated
    with the spatially flipped kernel, padded by ``k - 1 - p`` (plus ``output_padding`` at the end)."""
    kh, kw = kernel.shape[:2]
    pads = [
        (kh - 1 - padding[0], kh - 1 - padding[0] + output_padding[0]),
        (kw - 1 - padding[1], kw - 1 - padding[1] + output_padding[1]),
    ]
    flipped = jnp.flip(kernel, (0, 1))
    return lax.conv_general_dilated(x, flipped, (1, 1), pads, lhs_dilation=stride, dimension_numbers=_DN)


def _conv_transpose_by_phases(x, kernel, stride, padding, output_padding):
    """The transposed conv by phase decomposition (the XLA:CPU path).

    A stride-s transposed convolution is s*s ordinary convolutions over the undilated input, one per output
    phase. All phases are computed by one convolution whose kernel holds each phase's taps (zeros elsewhere)
    on s*s*out output channels, then interleaved (depth-to-space).
    """
    n, cin, cout = x.shape[0], x.shape[-1], kernel.shape[-1]
    sy, sx = stride
    out_h, out_w, m_h, m_w, offs_y, offs_x, lo_y, lo_x, hi_y, hi_x, pads = _phase_plan(
        x.shape, kernel.shape, stride, padding, output_padding
    )
    ly, lx = hi_y - lo_y + 1, hi_x - lo_x + 1
    # Combined correlation kernel: position a along an axis reads x[m + lo + a].
    big = jnp.zeros((ly, lx, cin, sy, sx, cout), kernel.dtype)
    for fy in range(sy):
        for oy, ty in offs_y[fy]:
            for fx in range(sx):
                for ox, tx in offs_x[fx]:
                    big = big.at[oy - lo_y, ox - lo_x, :, fy, fx, :].set(kernel[ty, tx])
    big = big.reshape(ly, lx, cin, sy * sx * cout)
    y = conv2d(x, big, (1, 1), pads, (1, 1))  # pads may be negative: a crop
    y = y.reshape(n, m_h, m_w, sy, sx, cout).transpose(0, 1, 3, 2, 4, 5).reshape(n, m_h * sy, m_w * sx, cout)
    return y[:, :out_h, :out_w, :]


class ConvTranspose2d(nn.Module):
    """torch.nn.ConvTranspose2d (groups 1, dilation 1), NHWC (phase-decomposed on XLA:CPU, see
    :func:`conv_transpose2d`)."""

    features: int
    kernel_size: int | tuple[int, int] = 3
    stride: int | tuple[int, int] = 2
    padding: int | tuple[int, int] = 1
    output_padding: int | tuple[int, int] = 1
    use_bias: bool = True
    spectral_norm: bool = False
    kernel_init: Callable = torch_default_kernel_init
    dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array, *, update_stats: bool = False) -> jax.Array:
        kh, kw = _pair(self.kernel_size)
        kernel = self.param("kernel", self.kernel_init, (kh, kw, x.shape[-1], self.features))
        if self.spectral_norm:
            kernel = _spectral(self, kernel, self.features, update_stats)
        dtype = self.dtype or x.dtype
        y = conv_transpose2d(
            x.astype(dtype),
            kernel.astype(dtype),
            _pair(self.stride),
            _pair(self.padding),
            _pair(self.output_padding),
        )
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(dtype)
        return y


class Dense(nn.Module):
    """torch.nn.Linear: ``kernel`` (in, out) = torch ``weight.T``."""

    features: int
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]

        def init(key, shape, dtype=jnp.float32):
            b = 1.0 / jnp.sqrt(fan_in)
            return jax.random.uniform(key, shape, dtype, -b, b)

        kernel = self.param("kernel", init, (fan_in, self.features))
        y = x @ kernel.astype(x.dtype)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(x.dtype)
        return y


class InstanceNorm(nn.Module):
    """torch.nn.InstanceNorm2d(track_running_stats=False): per-sample, per-channel, biased variance."""

    affine: bool = True
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(jnp.float32)
        mean = xf.mean(axis=(1, 2), keepdims=True)
        var = jnp.square(xf - mean).mean(axis=(1, 2), keepdims=True)
        y = (xf - mean) * lax.rsqrt(var + self.eps)
        if self.affine:
            c = x.shape[-1]
            y = y * self.param("scale", nn.initializers.ones, (c,)) + self.param(
                "bias", nn.initializers.zeros, (c,)
            )
        return y.astype(x.dtype)


class BatchNorm(nn.Module):
    """torch.nn.BatchNorm2d: batch statistics in training (biased for normalising, unbiased for the running
    variance), running statistics in eval, momentum as torch counts it (new = (1-m)*old + m*batch)."""

    affine: bool = True
    eps: float = 1e-5
    momentum: float = 0.1

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        c = x.shape[-1]
        mean_v = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        var_v = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        xf = x.astype(jnp.float32)
        if train:
            axes = tuple(range(x.ndim - 1))
            mean = xf.mean(axis=axes)
            var = jnp.square(xf - mean).mean(axis=axes)
            if not self.is_initializing():
                n = xf.size // c
                unbiased = var * n / max(n - 1, 1)
                mean_v.value = (1 - self.momentum) * mean_v.value + self.momentum * lax.stop_gradient(mean)
                var_v.value = (1 - self.momentum) * var_v.value + self.momentum * lax.stop_gradient(unbiased)
        else:
            mean, var = mean_v.value, var_v.value
        y = (xf - mean) * lax.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.param("scale", nn.initializers.ones, (c,)) + self.param(
                "bias", nn.initializers.zeros, (c,)
            )
        return y.astype(x.dtype)


def leaky_relu(x: jax.Array, slope: float = 0.2) -> jax.Array:
    return jnp.where(x >= 0, x, slope * x)


def avg_pool(
    x: jax.Array, k: int, stride: int | None = None, padding: int = 0, count_include_pad: bool = True
) -> jax.Array:
    """torch avg_pool2d on NHWC."""
    s = stride or k
    pads = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    summed = lax.reduce_window(x, 0.0, lax.add, (1, k, k, 1), (1, s, s, 1), pads)
    if count_include_pad or padding == 0:
        return summed / (k * k)
    ones = jnp.ones((1, x.shape[1], x.shape[2], 1), x.dtype)
    counts = lax.reduce_window(ones, 0.0, lax.add, (1, k, k, 1), (1, s, s, 1), pads)
    return summed / counts


def max_pool(x: jax.Array, k: int, stride: int | None = None, padding: int = 0) -> jax.Array:
    """torch max_pool2d on NHWC (padding with -inf)."""
    s = stride or k
    pads = ((0, 0), (padding, padding), (padding, padding), (0, 0))
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, k, k, 1), (1, s, s, 1), pads)
