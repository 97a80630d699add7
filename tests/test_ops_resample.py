"""Bilinear ``resample`` and GFLA ``gaussian_resample`` (resample2d): goldens, numpy transliteration, Pallas, grads."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ptx import ops

RNG = np.random.default_rng(1)


def nhwc(a):
    return jnp.asarray(np.transpose(a, (0, 2, 3, 1)))


def nchw(a):
    return np.transpose(np.asarray(a), (0, 3, 1, 2))


# ------------------------------------------------------------------------------------------------------------
# Numpy transliterations (NCHW) of the CUDA forward kernels.


def np_resample2d(img, flow, kernel_size, dilation, sigma):
    """resample2d forward, one output pixel's taps at a time as the CUDA kernel loops over them."""
    b, c, hi, wi = img.shape
    h, w = flow.shape[-2:]
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    xf = xx + flow[:, 0]
    yf = yy + flow[:, 1]
    fx, fy = np.floor(xf), np.floor(yf)
    alpha, beta = xf - fx, yf - fy
    num = np.zeros((b, c, h, w))
    den = np.zeros((b, 1, h, w))
    bi = np.arange(b)[:, None, None]
    g = lambda yi, xi: np.moveaxis(img[bi, :, yi, xi], -1, 1)  # noqa: E731
    half = kernel_size // 2
    for iy in range(half):
        for ix in range(half):
            ys = [
                (fy - iy * dilation, iy * dilation + beta),
                (fy + (iy + 1) * dilation, (iy + 1) * dilation - beta),
            ]
            xs = [
                (fx - ix * dilation, ix * dilation + alpha),
                (fx + (ix + 1) * dilation, (ix + 1) * dilation - alpha),
            ]
            for ypos, ydist in ys:
                for xpos, xdist in xs:
                    wgt = np.exp(-(xdist**2) / (2 * sigma**2)) * np.exp(-(ydist**2) / (2 * sigma**2))
                    yi = np.clip(ypos, 0, hi - 1).astype(int)
                    xi = np.clip(xpos, 0, wi - 1).astype(int)
                    num += wgt[:, None] * g(yi, xi)
                    den += wgt[:, None]
    den[den == 0] = 1e-8
    return num / den


def np_bilinear(img, flow):
    """Border-clamped bilinear warp with unclamped fractional weights (GFLA's rule)."""
    b, c, hi, wi = img.shape
    h, w = flow.shape[-2:]
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    px, py = xx + flow[:, 0], yy + flow[:, 1]
    x0, y0 = np.floor(px), np.floor(py)
    ax, ay = px - x0, py - y0
    bi = np.arange(b)[:, None, None]

    def g(yv, xv):
        yi = np.clip(yv, 0, hi - 1).astype(int)
        xi = np.clip(xv, 0, wi - 1).astype(int)
        return np.moveaxis(img[bi, :, yi, xi], -1, 1)

    return (
        ((1 - ay) * (1 - ax))[:, None] * g(y0, x0)
        + ((1 - ay) * ax)[:, None] * g(y0, x0 + 1)
        + (ay * (1 - ax))[:, None] * g(y0 + 1, x0)
        + (ay * ax)[:, None] * g(y0 + 1, x0 + 1)
    )


def _inputs(b, c, hi, wi, h, w, std, dtype=np.float32):
    return RNG.standard_normal((b, c, hi, wi)).astype(dtype), (
        RNG.standard_normal((b, 2, h, w)) * std
    ).astype(dtype)


# ------------------------------------------------------------------------------------------------------------
# Goldens.


@pytest.fixture(scope="module")
def golden(golden_dir):
    return np.load(golden_dir / "gfla_ops.npz"), json.loads((golden_dir / "gfla_ops.json").read_text())


@pytest.mark.parametrize("case", ["rs_K4_s2_a", "rs_K4_s2_far", "rs_K2_s5_default", "rs_K4_s2_diffsize"])
def test_gaussian_resample_golden(golden, case):
    d, meta = golden
    m = meta["cases"][case]
    img, flow = nhwc(d[f"input/{case}/input1"]), nhwc(d[f"input/{case}/flow"])
    fn = jax.jit(lambda x, f: ops.gaussian_resample(x, f, m["kernel_size"], m["dilation"], m["sigma"]))
    out, vjp = jax.vjp(fn, img, flow)
    gimg, gflow = vjp(nhwc(d[f"input/{case}/proj"]))
    np.testing.assert_allclose(nchw(out), d[f"output/{case}/out"], atol=1e-5, rtol=0)
    # The consistent (autograd) image gradient, not the CUDA kernel's trunc-based one.
    np.testing.assert_allclose(nchw(gimg), d[f"grad/{case}/input1"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(nchw(gflow), d[f"grad/{case}/flow"], atol=1e-5, rtol=0)


def test_numpy_transliteration_matches_golden(golden):
    d, _ = golden
    case = "rs_K4_s2_diffsize"
    ref = np_resample2d(
        d[f"input/{case}/input1"].astype(np.float64), d[f"input/{case}/flow"].astype(np.float64), 4, 1, 2.0
    )
    np.testing.assert_allclose(ref, d[f"output/{case}/out"], atol=1e-5)


# ------------------------------------------------------------------------------------------------------------
# Randomized options: odd/even kernel sizes, dilation, far flows, flow grids smaller than the image.

GAUSS_CASES = [
    # (K, dilation, sigma, B, C, Hi, Wi, H, W, std)
    (1, 1, 2.0, 1, 2, 5, 4, 5, 4, 1.0),  # no taps: output 0 (0 / 1e-8)
    (3, 2, 1.0, 2, 3, 7, 6, 7, 6, 2.0),
    pytest.param((6, 1, 3.0, 1, 2, 9, 8, 4, 5, 15.0), marks=pytest.mark.slow),
    (4, 2, 2.0, 1, 3, 11, 7, 6, 3, 3.0),
]


@pytest.mark.parametrize("case", GAUSS_CASES, ids=lambda c: f"K{c[0]}_d{c[1]}_s{c[2]}")
def test_gaussian_resample_vs_numpy(case):
    k, dil, sigma, b, c, hi, wi, h, w, std = case
    img, flow = _inputs(b, c, hi, wi, h, w, std)
    out = ops.gaussian_resample(nhwc(img), nhwc(flow), k, dil, sigma)
    ref = np_resample2d(img.astype(np.float64), flow.astype(np.float64), k, dil, sigma)
    np.testing.assert_allclose(nchw(out), ref, atol=1e-5)


def test_resample_vs_numpy_and_block_extractor():
    img, flow = _inputs(2, 3, 9, 7, 5, 6, 6.0)
    out = ops.resample(nhwc(img), nhwc(flow))
    np.testing.assert_allclose(
        nchw(out), np_bilinear(img.astype(np.float64), flow.astype(np.float64)), atol=1e-5
    )
    blocks = ops.extract_blocks(nhwc(img), nhwc(flow), 1)
    np.testing.assert_array_equal(out, blocks[:, :, :, 0, 0])


def test_resample_identity_and_integer_shift():
    img = jnp.asarray(RNG.standard_normal((1, 6, 5, 2)), jnp.float32)
    np.testing.assert_array_equal(ops.resample(img, jnp.zeros((1, 6, 5, 2))), img)
    shift = jnp.zeros((1, 6, 5, 2)).at[..., 0].set(1.0)  # read one pixel to the right, border replicated
    expected = jnp.concatenate([img[:, :, 1:], img[:, :, -1:]], axis=2)
    np.testing.assert_array_equal(ops.resample(img, shift), expected)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="flow"):
        ops.resample(jnp.zeros((1, 4, 4, 3)), jnp.zeros((1, 4, 4, 3)))
    with pytest.raises(ValueError, match="impl"):
        ops.resample(jnp.zeros((1, 4, 4, 3)), jnp.zeros((1, 4, 4, 2)), impl="cuda")


# ------------------------------------------------------------------------------------------------------------
# Pallas (interpret mode) equals jnp, values and gradients.


@pytest.mark.parametrize("op", ["resample", "gaussian"])
def test_pallas_equals_jnp(op):
    img, flow = (jnp.asarray(a) for a in map(nhwc, _inputs(2, 3, 7, 6, 5, 4, 3.0)))
    call = {
        "resample": lambda x, f, i: ops.resample(x, f, impl=i),
        "gaussian": lambda x, f, i: ops.gaussian_resample(x, f, 4, 1, 2.0, impl=i),
    }[op]
    res = {}
    for impl in ("xla", "pallas"):
        out, vjp = jax.vjp(jax.jit(lambda x, f, impl=impl: call(x, f, impl)), img, flow)
        res[impl] = (out, *vjp(jnp.cos(out)))
    for a, r in zip(res["pallas"], res["xla"]):
        np.testing.assert_allclose(a, r, atol=1e-5)


# ------------------------------------------------------------------------------------------------------------
# Finite differences in float64.


def test_check_grads_float64():
    with jax.enable_x64(True):
        img, flow = (jnp.asarray(a) for a in map(nhwc, _inputs(1, 2, 6, 5, 4, 5, 2.0, np.float64)))
        check_grads(ops.resample, (img, flow), order=1, modes=("rev",), eps=1e-6)
        check_grads(
            lambda x, f: ops.gaussian_resample(x, f, 4, 2, 1.5),
            (img, flow),
            order=1,
            modes=("rev",),
            eps=1e-6,
        )


# ------------------------------------------------------------------------------------------------------------
# The XLA:CPU forms (hand-written bilinear backward, dot channel sums, four gathers) equal the plain jnp ones.


@pytest.mark.parametrize("op", ["resample", "gaussian"])
def test_cpu_rewrites_equal_plain_jnp(op):
    from ptx import backend

    # Flows of std 3 on a 7x6 image: some positions fall outside, where the border rule applies.
    img, flow = (jnp.asarray(a) for a in map(nhwc, _inputs(2, 3, 7, 6, 5, 4, 3.0)))
    call = {"resample": ops.resample, "gaussian": lambda x, f: ops.gaussian_resample(x, f, 4, 1, 2.0)}[op]

    def value_and_grads(x, f):
        out, vjp = jax.vjp(call, x, f)
        return (out, *vjp(jnp.cos(out)))

    res, dots = {}, {}
    for cpu in (True, False):
        with backend.force_cpu_rewrites(cpu):
            res[cpu] = value_and_grads(img, flow)
            forward = str(jax.make_jaxpr(call)(img, flow))
            dots[cpu] = str(jax.make_jaxpr(value_and_grads)(img, flow)).count("dot_general")
        # The path taken: the bilinear backward is hand-written on CPU only (Gaussian's on every backend).
        assert ("custom_vjp_call" in forward) == (cpu or op == "gaussian")
    assert dots[True] > dots[False]  # channel sums as dots on CPU only
    for got, want, name in zip(res[True], res[False], ("output", "d image", "d flow")):
        err = float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))
        assert err < 1e-5, f"{op} {name}: max error {err:.2e} of max |plain|"
