"""PyTorch-matching layers: geometry and numerics against independent lax formulations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ptx.nn import layers


def _reference_conv_transpose(x, kernel, stride, padding, output_padding):
    # torch semantics via lhs dilation: flip the kernel spatially, swap in/out, pad (k-1-p, k-1-p+op).
    kh, kw = kernel.shape[:2]
    k = jnp.flip(kernel, (0, 1))
    pads = [
        (kh - 1 - padding[0], kh - 1 - padding[0] + output_padding[0]),
        (kw - 1 - padding[1], kw - 1 - padding[1] + output_padding[1]),
    ]
    return lax.conv_general_dilated(
        x, k, (1, 1), pads, lhs_dilation=stride, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


@pytest.mark.parametrize(
    "k,s,p,op,h,w",
    [
        (3, 2, 1, 1, 5, 7),
        (4, 2, 1, 0, 6, 5),
        (3, 1, 1, 0, 4, 4),
        (5, 3, 2, 1, 4, 3),
        (2, 2, 0, 0, 3, 3),
        (3, 2, 0, 1, 4, 6),
    ],
)
def test_conv_transpose_phase_decomposition_matches_dilated_form(k, s, p, op, h, w):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, h, w, 3)), jnp.float32)
    kern = jnp.asarray(rng.normal(size=(k, k, 3, 4)), jnp.float32)
    got = layers.conv_transpose2d(x, kern, (s, s), (p, p), (op, op))
    want = _reference_conv_transpose(x, kern, (s, s), (p, p), (op, op))
    assert got.shape == ((2, (h - 1) * s - 2 * p + k + op, (w - 1) * s - 2 * p + k + op, 4))
    np.testing.assert_allclose(got, want, atol=1e-5)
    # Gradients agree too (the reason for the decomposition is the weight gradient's speed).
    g1 = jax.grad(lambda kk: jnp.sum(layers.conv_transpose2d(x, kk, (s, s), (p, p), (op, op)) ** 2))(kern)
    g2 = jax.grad(lambda kk: jnp.sum(_reference_conv_transpose(x, kk, (s, s), (p, p), (op, op)) ** 2))(kern)
    np.testing.assert_allclose(g1, g2, rtol=1e-4, atol=1e-3)


def test_conv2d_explicit_padding_and_stride():
    x = jnp.ones((1, 8, 6, 2))
    m = layers.Conv2d(5, kernel_size=4, stride=2, padding=1)
    v = m.init(jax.random.key(0), x)
    assert v["params"]["kernel"].shape == (4, 4, 2, 5)
    assert m.apply(v, x).shape == (1, 4, 3, 5)


def test_instance_norm_biased_variance():
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 5, 4, 3)) * 3 + 1, jnp.float32)
    y = layers.InstanceNorm(affine=False).apply({}, x)
    xn = np.asarray(x)
    want = (xn - xn.mean((1, 2), keepdims=True)) / np.sqrt(xn.var((1, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, want, atol=1e-5)


def test_spectral_norm_divides_by_top_singular_value_after_iterations():
    rng = np.random.default_rng(2)
    kern = jnp.asarray(rng.normal(size=(3, 3, 4, 6)), jnp.float32)
    u = jnp.asarray(rng.normal(size=(6,)), jnp.float32)
    v = jnp.zeros((36,))
    for _ in range(200):
        _, u, v = layers.spectral_normalize(kern, u, v, update=True)
    wn, _, _ = layers.spectral_normalize(kern, u, v, update=False)
    mat = np.transpose(np.asarray(wn), (3, 2, 0, 1)).reshape(6, -1)
    np.testing.assert_allclose(np.linalg.svd(mat, compute_uv=False)[0], 1.0, rtol=1e-4)


def test_batchnorm_running_stats_follow_torch_momentum():
    x = jnp.asarray(np.random.default_rng(3).normal(size=(4, 3, 3, 2)), jnp.float32)
    m = layers.BatchNorm()
    v = m.init(jax.random.key(0), x, train=False)
    _, upd = m.apply(v, x, train=True, mutable=["batch_stats"])
    xn = np.asarray(x).reshape(-1, 2)
    np.testing.assert_allclose(upd["batch_stats"]["mean"], 0.1 * xn.mean(0), rtol=1e-5)
    np.testing.assert_allclose(upd["batch_stats"]["var"], 0.9 + 0.1 * xn.var(0, ddof=1), rtol=1e-5)


@pytest.mark.parametrize(
    "k,stride,padding",
    [
        (3, (1, 1), ((1, 1), (1, 1))),
        (2, (1, 1), ((0, 1), (0, 1))),
        (3, (2, 2), ((1, 0), (2, 1))),
        (
            2,
            (1, 2),
            ((-1, 1), (0, -1)),
        ),  # negative padding crops, as the phase-decomposed transposed conv uses
    ],
)
def test_conv2d_tap_weight_gradient_matches_autodiff(k, stride, padding):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 7, 6, 128)), jnp.float32)
    kern = jnp.asarray(rng.normal(size=(k, k, 128, 64)) * 0.05, jnp.float32)
    assert layers._weight_grad_by_taps(kern.shape, stride, (1, 1))  # the path under test

    def plain(a, kk):
        return lax.conv_general_dilated(a, kk, stride, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    y = plain(x, kern)
    g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
    np.testing.assert_allclose(layers.conv2d(x, kern, stride, padding, (1, 1)), y, rtol=1e-5, atol=1e-5)
    _, vjp_plain = jax.vjp(plain, x, kern)
    _, vjp_taps = jax.vjp(lambda a, kk: layers.conv2d(a, kk, stride, padding, (1, 1)), x, kern)
    for got, want in zip(vjp_taps(g), vjp_plain(g)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(want))))


@pytest.mark.parametrize("stride,padding", [((1, 1), ((1, 1), (1, 1))), ((2, 2), ((1, 0), (0, 2)))])
def test_weight_gradient_by_row_blocks_matches_autodiff(monkeypatch, stride, padding):
    """Blocks smaller than the map (here 2-3 rows, the last one padded) give the same weight gradient."""
    monkeypatch.setattr(layers, "_ROW_BLOCK_BYTES", 4 * 2 * 3 * (14 * 5 + 13 * 6))
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(2, 11, 13, 5)), jnp.float32)
    kern = jnp.asarray(rng.normal(size=(3, 3, 5, 6)) * 0.1, jnp.float32)

    def plain(a, kk):
        return lax.conv_general_dilated(a, kk, stride, padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    y, vjp_plain = jax.vjp(plain, x, kern)
    g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
    rows = layers._rows_per_block(layers._pad_hw(x, padding).shape, y.shape, stride)
    assert 1 < rows < y.shape[1] and y.shape[1] % rows  # several blocks, the last one padded
    got = layers._weight_grad_by_row_blocks(x, g, kern.shape, stride, padding)
    want = vjp_plain(g)[1]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(want))))


def test_1x1_conv_by_matmul_matches_lax():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(2, 6, 5, 64)), jnp.float32)
    kern = jnp.asarray(rng.normal(size=(1, 1, 64, 32)) * 0.1, jnp.float32)
    padding = ((1, 0), (0, 1))
    assert layers._forward_by_taps(x.shape, kern.shape, (1, 1), (1, 1))  # the path under test

    def plain(a, kk):
        return lax.conv_general_dilated(a, kk, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    y = plain(x, kern)
    np.testing.assert_allclose(layers.conv2d(x, kern, (1, 1), padding, (1, 1)), y, rtol=1e-5, atol=1e-5)
    g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
    _, vjp_plain = jax.vjp(plain, x, kern)
    _, vjp_taps = jax.vjp(lambda a, kk: layers.conv2d(a, kk, (1, 1), padding, (1, 1)), x, kern)
    for got, want in zip(vjp_taps(g), vjp_plain(g)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(want))))


# ------------------------------------------------------------------------------------------------------------
# The XLA:CPU rewrites (ptx.backend.cpu_rewrites) against the plain lax forms, forced both ways on this CPU.

# (name, kind, kernel (kh, kw, in, out), stride, padding, dilation or output_padding, input (h, w), XLA convs
# in the CPU path's forward + backward program: 3 = no rewrite, 2 = per-tap weight gradient or phase-tap input
# gradient, 1 = both, 0 = per-tap matmuls).
REWRITE_CASES = [
    ("1x1", "conv", (1, 1, 8, 16), (1, 1), ((0, 0), (0, 0)), (1, 1), (5, 4), 0),
    ("1x1_wide", "conv", (1, 1, 128, 64), (1, 1), ((0, 0), (0, 0)), (1, 1), (4, 3), 0),
    ("3x3_wide", "conv", (3, 3, 128, 128), (1, 1), ((1, 1), (1, 1)), (1, 1), (5, 4), 0),
    ("3x3_wide_large_map", "conv", (3, 3, 128, 128), (1, 1), ((1, 1), (1, 1)), (1, 1), (24, 23), 2),
    # Strided and wide: the input gradient is a transposed conv by phase taps (no lhs-dilated convolution).
    ("3x3_s2_wide", "conv", (3, 3, 128, 64), (2, 2), ((1, 0), (2, 1)), (1, 1), (7, 6), 1),
    ("4x4_s2_wide", "conv", (4, 4, 128, 64), (2, 2), ((1, 1), (1, 1)), (1, 1), (7, 6), 1),
    ("4x4_s2_valid_wide", "conv", (4, 4, 64, 128), (2, 2), ((0, 0), (0, 0)), (1, 1), (9, 7), 1),
    ("2x2_crop", "conv", (2, 2, 128, 64), (1, 2), ((-1, 1), (0, -1)), (1, 1), (6, 5), 2),
    ("3x3_dilated", "conv", (3, 3, 8, 8), (1, 1), ((2, 2), (2, 2)), (2, 2), (6, 5), 3),
    ("3x3_narrow", "conv", (3, 3, 4, 8), (1, 1), ((1, 1), (1, 1)), (1, 1), (5, 4), 2),
    ("7x7_narrow", "conv", (7, 7, 3, 8), (1, 1), ((3, 3), (3, 3)), (1, 1), (9, 8), 2),
    ("9x9_narrow", "conv", (9, 9, 3, 8), (1, 1), ((4, 4), (4, 4)), (1, 1), (9, 8), 3),
    # Transposed: phases as one 2x2 stride-1 conv on 4*out channels (narrow: 3 convs; wide: per-tap matmuls).
    ("transposed_3x3_s2", "transpose", (3, 3, 4, 8), (2, 2), (1, 1), (1, 1), (4, 3), 2),
    ("transposed_4x4_s2_wide", "transpose", (4, 4, 128, 32), (2, 2), (1, 1), (0, 0), (3, 4), 0),
    # Wider still: phase by phase, one matmul per kernel tap (no combined phase kernel).
    ("transposed_4x4_s2_phase_taps", "transpose", (4, 4, 128, 64), (2, 2), (1, 1), (0, 0), (3, 4), 0),
    ("transposed_3x3_s2_phase_taps", "transpose", (3, 3, 128, 64), (2, 2), (1, 1), (1, 1), (4, 3), 0),
    ("transposed_5x5_s3_phase_taps", "transpose", (5, 5, 128, 64), (3, 3), (2, 2), (1, 1), (4, 3), 0),
]


def _rewrite_case_fn(kind, stride, padding, dilation):
    if kind == "conv":
        return lambda x, k: layers.conv2d(x, k, stride, padding, dilation)
    return lambda x, k: layers.conv_transpose2d(x, k, stride, padding, dilation)  # dilation = output_padding


def _convolutions(fn, *args):
    """The ``conv_general_dilated`` equations of ``fn``'s program (nested jaxprs included)."""
    found = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                found.append(eqn)
            for sub in jax.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


@pytest.mark.parametrize("case", REWRITE_CASES, ids=[c[0] for c in REWRITE_CASES])
def test_cpu_rewrites_equal_plain_lax_in_value_and_gradients(case):
    from ptx import backend

    _, kind, kshape, stride, padding, dilation, (h, w), cpu_convs = case
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=(2, h, w, kshape[2])), jnp.float32)
    kern = jnp.asarray(rng.normal(size=kshape) / np.sqrt(np.prod(kshape[:3])), jnp.float32)
    fn = _rewrite_case_fn(kind, stride, padding, dilation)
    g = jnp.asarray(rng.normal(size=jax.eval_shape(fn, x, kern).shape), jnp.float32)

    def value_and_grads(a, k, gy):
        y, vjp = jax.vjp(fn, a, k)
        return (y, *vjp(gy))

    results = {}
    for cpu in (True, False):
        with backend.force_cpu_rewrites(cpu):
            convs = _convolutions(value_and_grads, x, kern, g)
            results[cpu] = jax.jit(value_and_grads)(x, kern, g)
            forward_dilated = [e for e in _convolutions(fn, x, kern) if e.params["lhs_dilation"] != (1, 1)]
        # The path taken: plain is XLA's convolution and its two autodiff transposes, the transposed conv an
        # lhs-dilated one; the CPU path has the rewrites the case is named for and no lhs-dilated forward.
        assert len(convs) == (cpu_convs if cpu else 3)
        assert len(forward_dilated) == (0 if cpu or kind == "conv" else 1)
    for got, want, name in zip(results[True], results[False], ("output", "d input", "d kernel")):
        assert got.shape == want.shape
        err = float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))
        assert err < 1e-5, f"{name}: max error {err:.2e} of max |plain|"


@pytest.mark.parametrize("kshape,taps,convs", [((4, 4, 128, 64), 16, 0), ((4, 4, 64, 64), 0, 1)])
def test_wide_transposed_conv_runs_one_matmul_per_tap_on_cpu(kshape, taps, convs):
    """XLA:CPU path: a wide 4x4 stride-2 transposed conv is 16 tap matmuls over its own 2x2 taps per phase;
    a narrower one keeps one convolution over the combined 3x3 phase kernel (4x the output channels)."""
    from ptx import backend

    x = jnp.zeros((1, 3, 4, kshape[2]), jnp.float32)
    kern = jnp.zeros(kshape, jnp.float32)
    with backend.force_cpu_rewrites(True):
        jaxpr = jax.make_jaxpr(lambda a, k: layers.conv_transpose2d(a, k, (2, 2), (1, 1), (0, 0)))(x, kern)
    names = []

    def walk(j):
        for eqn in j.eqns:
            names.append(eqn.primitive.name)
            for sub in jax.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jaxpr.jaxpr)
    assert (names.count("dot_general"), names.count("conv_general_dilated")) == (taps, convs)
    assert jaxpr.out_avals[0].shape == (1, 6, 8, kshape[3])
