"""GFLA block_extractor / local_attn_reshape / local attention: goldens, numpy transliteration, Pallas, grads."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ptx import ops

RNG = np.random.default_rng(0)


def nhwc(a):
    return jnp.asarray(np.transpose(a, (0, 2, 3, 1)))


def nchw(a):
    return np.transpose(np.asarray(a), (0, 3, 1, 2))


# ------------------------------------------------------------------------------------------------------------
# Straightforward numpy transliteration of the CUDA block_extractor (NCHW, per output pixel, forward + backward).


def _np_taps(src_hw, flow, k):
    """For every output pixel of the [k*Hf, k*Wf] image: corner indices and weights, as the CUDA kernel."""
    hs, ws = src_hw
    hf, wf = flow.shape[-2:]
    yy, xx = np.meshgrid(np.arange(k * hf), np.arange(k * wf), indexing="ij")
    yf, xf = yy // k, xx // k
    oy, ox = yy % k - k // 2, xx % k - k // 2
    fx = flow[:, 0][:, yf, xf]
    fy = flow[:, 1][:, yf, xf]
    px = (fx + ox) + xf
    py = (fy + oy) + yf
    x0, y0 = np.floor(px), np.floor(py)
    wr, wb = px - x0, py - y0
    wl, wt = 1 - wr, 1 - wb
    xl = np.clip(x0, 0, ws - 1).astype(int)
    xr = np.clip(x0 + 1, 0, ws - 1).astype(int)
    yt = np.clip(y0, 0, hs - 1).astype(int)
    yb = np.clip(y0 + 1, 0, hs - 1).astype(int)
    return (yf, xf), (xl, xr, yt, yb), (wl, wr, wt, wb)


def np_block_extractor(src, flow, k):
    b = src.shape[0]
    _, (xl, xr, yt, yb), (wl, wr, wt, wb) = _np_taps(src.shape[-2:], flow, k)
    bi = np.arange(b)[:, None, None]
    g = lambda y, x: np.moveaxis(src[bi, :, y, x], -1, 1)  # noqa: E731  (B,C,kH,kW)
    return (
        (wt * wl)[:, None] * g(yt, xl)
        + (wt * wr)[:, None] * g(yt, xr)
        + (wb * wl)[:, None] * g(yb, xl)
        + (wb * wr)[:, None] * g(yb, xr)
    )


def np_block_extractor_grad(src, flow, k, gout):
    """CUDA backward: atomicAdd of weighted cotangents into the source; flow gradient from clamped corners."""
    b = src.shape[0]
    (yf, xf), (xl, xr, yt, yb), (wl, wr, wt, wb) = _np_taps(src.shape[-2:], flow, k)
    gsrc = np.zeros_like(src)
    gflow = np.zeros_like(flow)
    for n in range(b):
        for y, x, w in ((yt, xl, wt * wl), (yt, xr, wt * wr), (yb, xl, wb * wl), (yb, xr, wb * wr)):
            np.add.at(gsrc[n], (slice(None), y[n], x[n]), w[n][None] * gout[n])
        v = lambda y, x, n=n: src[n][:, y[n], x[n]]  # noqa: E731
        dx = wt[n] * (v(yt, xr) - v(yt, xl)) + wb[n] * (v(yb, xr) - v(yb, xl))
        dy = wl[n] * (v(yb, xl) - v(yt, xl)) + wr[n] * (v(yb, xr) - v(yt, xr))
        np.add.at(gflow[n, 0], (yf, xf), (dx * gout[n]).sum(0))
        np.add.at(gflow[n, 1], (yf, xf), (dy * gout[n]).sum(0))
    return gsrc, gflow


def extract_image(source, flow, k, impl="xla"):
    return ops.blocks_to_image(ops.extract_blocks(source, flow, k, impl=impl))


# ------------------------------------------------------------------------------------------------------------
# Goldens (recorded from the original op semantics).


@pytest.fixture(scope="module")
def golden(golden_dir):
    arrays = np.load(golden_dir / "gfla_ops.npz")
    meta = json.loads((golden_dir / "gfla_ops.json").read_text())
    return arrays, meta


BE_CASES = ["be_k3_a", "be_k5_b", "be_k3_far", "be_k5_diffsize"]
LAR_CASES = ["lar_k3", "lar_k5", "lar_k3_1x1"]


@pytest.mark.parametrize("case", BE_CASES)
def test_extract_blocks_golden(golden, case):
    d, meta = golden
    k = meta["cases"][case]["kernel_size"]
    src, flow = nhwc(d[f"input/{case}/source"]), nhwc(d[f"input/{case}/flow_field"])
    out, vjp = jax.vjp(lambda s, f: extract_image(s, f, k), src, flow)
    gsrc, gflow = vjp(nhwc(d[f"input/{case}/proj"]))
    np.testing.assert_allclose(nchw(out), d[f"output/{case}/out"], atol=1e-5, rtol=0)
    # Source gradients are float32 scatter-adds (many flows land on one border pixel), as in the CUDA kernel's
    # atomicAdd: allow float32 rounding relative to the gradient's scale (~1e-6), not only 1e-5 absolute.
    for got, name in ((gsrc, "source"), (gflow, "flow_field")):
        want = d[f"grad/{case}/{name}"]
        np.testing.assert_allclose(nchw(got), want, atol=1e-5 + 1e-6 * np.abs(want).max(), rtol=0)


@pytest.mark.parametrize("case", LAR_CASES)
def test_local_attn_reshape_golden(golden, case):
    d, meta = golden
    k = meta["cases"][case]["kernel_size"]
    x = nhwc(d[f"input/{case}/inputs"])
    out, vjp = jax.vjp(lambda a: ops.local_attn_reshape(a, k), x)
    (g,) = vjp(nhwc(d[f"input/{case}/proj"]))
    np.testing.assert_array_equal(nchw(out), d[f"output/{case}/out"])
    np.testing.assert_array_equal(nchw(g), d[f"grad/{case}/inputs"])


def test_numpy_transliteration_matches_golden(golden):
    """The test's own numpy reference is itself pinned to the originals."""
    d, _ = golden
    case = "be_k5_diffsize"
    src, flow = d[f"input/{case}/source"].astype(np.float64), d[f"input/{case}/flow_field"].astype(np.float64)
    np.testing.assert_allclose(np_block_extractor(src, flow, 5), d[f"output/{case}/out"], atol=1e-5)
    gs, gf = np_block_extractor_grad(src, flow, 5, d[f"input/{case}/proj"].astype(np.float64))
    np.testing.assert_allclose(gs, d[f"grad/{case}/source"], atol=1e-5)
    np.testing.assert_allclose(gf, d[f"grad/{case}/flow_field"], atol=1e-5)


# ------------------------------------------------------------------------------------------------------------
# Randomized shapes/options beyond the goldens: even k, k=1, odd sizes, far flows, small flow grids.

RANDOM_CASES = [
    # (k, B, C, Hs, Ws, Hf, Wf, flow std)
    pytest.param((2, 1, 2, 6, 9, 6, 9, 1.5), marks=pytest.mark.slow),
    (4, 2, 3, 9, 7, 9, 7, 3.0),
    (3, 1, 4, 13, 11, 5, 4, 20.0),  # flow grid smaller than source, flows far outside
    pytest.param((7, 1, 1, 5, 4, 3, 3, 4.0), marks=pytest.mark.slow),
]


def _random_inputs(b, c, hs, ws, hf, wf, std, dtype=np.float32):
    src = RNG.standard_normal((b, c, hs, ws)).astype(dtype)
    flow = (RNG.standard_normal((b, 2, hf, wf)) * std).astype(dtype)
    return src, flow


@pytest.mark.parametrize("case", RANDOM_CASES, ids=lambda c: f"k{c[0]}_{c[3]}x{c[4]}_f{c[5]}x{c[6]}")
def test_extract_blocks_vs_numpy(case):
    k, b, c, hs, ws, hf, wf, std = case
    src, flow = _random_inputs(b, c, hs, ws, hf, wf, std)
    proj = RNG.standard_normal((b, c, k * hf, k * wf)).astype(np.float32)
    out, vjp = jax.vjp(lambda s, f: extract_image(s, f, k), nhwc(src), nhwc(flow))
    gsrc, gflow = vjp(nhwc(proj))
    s64, f64 = src.astype(np.float64), flow.astype(np.float64)
    np.testing.assert_allclose(nchw(out), np_block_extractor(s64, f64, k), atol=1e-5)
    ref_gs, ref_gf = np_block_extractor_grad(s64, f64, k, proj.astype(np.float64))
    np.testing.assert_allclose(nchw(gsrc), ref_gs, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(nchw(gflow), ref_gf, atol=1e-4, rtol=1e-5)


def test_far_outside_flow_gives_border_value_and_zero_flow_grad():
    src = jnp.asarray(RNG.standard_normal((1, 4, 5, 2)), jnp.float32)
    flow = jnp.full((1, 4, 5, 2), -1000.0, jnp.float32)
    blocks, vjp = jax.vjp(lambda f: ops.extract_blocks(src, f, 3), flow)
    np.testing.assert_array_equal(blocks, jnp.broadcast_to(src[:, :1, :1, None, None, :], blocks.shape))
    np.testing.assert_array_equal(vjp(jnp.ones_like(blocks))[0], 0.0)


def test_zero_flow_blocks_are_replicate_padded_patches():
    src = jnp.asarray(RNG.standard_normal((2, 5, 6, 3)), jnp.float32)
    blocks = ops.extract_blocks(src, jnp.zeros((2, 5, 6, 2)), 3)
    padded = jnp.pad(src, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    for dy in range(3):
        for dx in range(3):
            np.testing.assert_array_equal(blocks[:, :, :, dy, dx], padded[:, dy : dy + 5, dx : dx + 6])


# ------------------------------------------------------------------------------------------------------------
# local_attention = mean_j w_j * block_j, without materialising the blocks.


def _attention_inputs(k, b=2, c=3, hs=7, ws=6, hf=7, wf=6, std=3.0, dtype=jnp.float32):
    src, flow = _random_inputs(b, c, hs, ws, hf, wf, std)
    w = jax.nn.softmax(jnp.asarray(RNG.standard_normal((b, hf, wf, k * k))), axis=-1)
    return nhwc(src).astype(dtype), nhwc(flow).astype(dtype), w.astype(dtype)


def _attention_via_blocks(src, flow, w, k):
    blocks = ops.extract_blocks(src, flow, k, impl="xla")
    b, h, wd = flow.shape[:3]
    return jnp.mean(blocks.reshape(b, h, wd, k * k, -1) * w[..., None], axis=3)


@pytest.mark.parametrize("k", [4, pytest.param(5, marks=pytest.mark.slow)])
def test_local_attention_matches_blocks(k):
    args = _attention_inputs(k, hs=9, ws=8, hf=5, wf=4)
    out, vjp = jax.vjp(lambda *a: ops.local_attention(*a, k, impl="xla"), *args)
    ref, ref_vjp = jax.vjp(lambda *a: _attention_via_blocks(*a, k), *args)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    g = jnp.asarray(RNG.standard_normal(out.shape), jnp.float32)
    for a, r in zip(vjp(g), ref_vjp(g)):
        np.testing.assert_allclose(a, r, atol=1e-5)


def test_local_attention_never_builds_blocks():
    """No intermediate of the jnp forward is larger than the 4 bilinear corners of one tap."""
    k, b, c, h, w = 5, 1, 8, 8, 8
    args = _attention_inputs(k, b=b, c=c, hs=h, ws=w, hf=h, wf=w)
    jaxpr = jax.make_jaxpr(lambda *a: ops.local_attention(*a, k, impl="xla"))(*args)
    sizes = [int(np.prod(v.aval.shape)) for eqn in jaxpr.jaxpr.eqns for v in eqn.outvars]
    assert max(sizes) <= 4 * b * h * w * c < b * h * w * c * k * k


def test_local_attention_bad_weights_shape():
    src, flow, w = _attention_inputs(3)
    with pytest.raises(ValueError, match="weights must be"):
        ops.local_attention(src, flow, w[..., :4], 3)


# ------------------------------------------------------------------------------------------------------------
# Pallas kernels (interpret mode on CPU) equal the jnp versions, values and gradients.


@pytest.mark.parametrize("k", [4])
def test_pallas_extract_blocks_equals_jnp(k):
    src, flow, _ = _attention_inputs(k, b=2, c=2, hs=6, ws=5, hf=4, wf=3, std=4.0)
    f = {i: jax.jit(lambda s, fl, i=i: ops.extract_blocks(s, fl, k, impl=i)) for i in ("xla", "pallas")}
    out_x, vjp_x = jax.vjp(f["xla"], src, flow)
    out_p, vjp_p = jax.vjp(f["pallas"], src, flow)
    np.testing.assert_allclose(out_p, out_x, atol=1e-6)
    g = jnp.asarray(RNG.standard_normal(out_x.shape), jnp.float32)
    for a, r in zip(vjp_p(g), vjp_x(g)):
        np.testing.assert_allclose(a, r, atol=1e-6)


@pytest.mark.parametrize("k", [3])
def test_pallas_local_attention_equals_jnp(k):
    args = _attention_inputs(k, b=2, c=3, hs=6, ws=5, hf=6, wf=5, std=4.0)
    loss = {
        i: jax.jit(
            jax.value_and_grad(lambda *a, i=i: jnp.sum(ops.local_attention(*a, k, impl=i) ** 2), (0, 1, 2))
        )
        for i in ("xla", "pallas")
    }
    v_x, g_x = loss["xla"](*args)
    v_p, g_p = loss["pallas"](*args)
    np.testing.assert_allclose(v_p, v_x, rtol=1e-6)
    for a, r in zip(g_p, g_x):
        np.testing.assert_allclose(a, r, atol=1e-5)


# ------------------------------------------------------------------------------------------------------------
# Finite-difference gradient checks in float64 (positions kept away from integer kinks by randomness).


def test_check_grads_float64():
    with jax.enable_x64(True):
        src, flow, w = _attention_inputs(3, b=1, c=2, hs=5, ws=4, hf=4, wf=3, std=1.5, dtype=jnp.float64)
        check_grads(lambda s, f: ops.extract_blocks(s, f, 3), (src, flow), order=1, modes=("rev",), eps=1e-6)
        check_grads(
            lambda s, f, a: ops.local_attention(s, f, a, 3), (src, flow, w), order=1, modes=("rev",), eps=1e-6
        )


# ------------------------------------------------------------------------------------------------------------
# The XLA:CPU forms of the bilinear math (ptx.backend.cpu_rewrites) equal the plain jnp ones.


@pytest.mark.parametrize("op", ["extract_blocks", "local_attention"])
def test_cpu_rewrites_equal_plain_jnp(op):
    from ptx import backend

    k = 3
    src, flow, w = _attention_inputs(k, b=2, c=3, hs=6, ws=5, hf=4, wf=3, std=3.0)
    if op == "extract_blocks":
        args, call = (src, flow), lambda s, f: ops.extract_blocks(s, f, k)
    else:
        args, call = (src, flow, w), lambda s, f, a: ops.local_attention(s, f, a, k)

    def value_and_grads(*a):
        out, vjp = jax.vjp(call, *a)
        return (out, *vjp(jnp.cos(out)))

    res, programs = {}, {}
    for cpu in (True, False):
        with backend.force_cpu_rewrites(cpu):
            res[cpu] = value_and_grads(*args)
            programs[cpu] = str(jax.make_jaxpr(value_and_grads)(*args))
    assert programs[True] != programs[False]  # two paths were compared
    for got, want in zip(res[True], res[False]):
        err = float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want)))
        assert err < 1e-5, f"{op}: max error {err:.2e} of max |plain|"
