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


def test_conv2d_by_taps_for_wide_inputs_matches_lax():
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(2, 6, 5, 512)), jnp.float32)
    kern = jnp.asarray(rng.normal(size=(3, 3, 512, 128)) * 0.02, jnp.float32)
    padding = ((1, 1), (2, 0))
    assert layers._forward_by_taps(kern.shape, (1, 1), (1, 1))  # the path under test

    def plain(a, kk):
        return lax.conv_general_dilated(a, kk, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    y = plain(x, kern)
    np.testing.assert_allclose(layers.conv2d(x, kern, (1, 1), padding, (1, 1)), y, rtol=1e-4, atol=1e-4)
    g = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
    _, vjp_plain = jax.vjp(plain, x, kern)
    _, vjp_taps = jax.vjp(lambda a, kk: layers.conv2d(a, kk, (1, 1), padding, (1, 1)), x, kern)
    for got, want in zip(vjp_taps(g), vjp_plain(g)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(want))))
