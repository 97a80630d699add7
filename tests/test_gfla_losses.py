"""GFLA losses against straightforward numpy transliterations of the reference card's formulas (small shapes)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptx.losses import correctness, flow_regularization, gan, perceptual

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------------------------- gan


@pytest.mark.parametrize("mode", ["lsgan", "hinge", "nsgan"])
def test_gan_losses_match_numpy(mode):
    real = RNG.normal(size=(2, 4, 3, 1)).astype(np.float32)
    fake = RNG.normal(size=(2, 4, 3, 1)).astype(np.float32)
    if mode == "lsgan":
        d_ref = 0.5 * (np.mean((real - 1) ** 2) + np.mean(fake**2))
        g_ref = np.mean((fake - 1) ** 2)
    elif mode == "hinge":
        d_ref = 0.5 * (np.mean(np.maximum(0, 1 - real)) + np.mean(np.maximum(0, 1 + fake)))
        g_ref = -np.mean(fake)
    else:
        sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
        d_ref = 0.5 * (-np.mean(np.log(sig(real))) - np.mean(np.log(1 - sig(fake))))
        g_ref = -np.mean(np.log(sig(fake)))
    np.testing.assert_allclose(gan.discriminator_loss(real, fake, mode), d_ref, rtol=1e-5)
    np.testing.assert_allclose(gan.generator_loss(fake, mode), g_ref, rtol=1e-5)


def test_gan_unknown_mode():
    with pytest.raises(ValueError, match="wgan"):
        gan.generator_loss(jnp.zeros(3), "wgan")


# ----------------------------------------------------------------------------------------------- perceptual


def _feats(seed):
    r = np.random.default_rng(seed)
    return {
        "relu1_1": r.random((2, 8, 6, 3)).astype(np.float32),
        "relu2_2": r.random((2, 4, 3, 5)).astype(np.float32),
    }


def test_content_loss_weighted_mean_l1():
    fx, fy = _feats(1), _feats(2)
    w = {"relu1_1": 1.0, "relu2_2": 0.25}
    ref = sum(w[k] * np.mean(np.abs(fx[k] - fy[k])) for k in w)
    np.testing.assert_allclose(perceptual.content_loss(fx, fy, w), ref, rtol=1e-5)


def test_style_loss_gram_over_chw():
    fx, fy = _feats(3), _feats(4)

    def gram_nchw(f):  # the card: F [B, C, HW], F F^T / (C H W)
        b, h, w, c = f.shape
        F = f.transpose(0, 3, 1, 2).reshape(b, c, h * w).astype(np.float64)
        return F @ F.transpose(0, 2, 1) / (c * h * w)

    ref = sum(np.mean(np.abs(gram_nchw(fx[k]) - gram_nchw(fy[k]))) for k in fx)
    np.testing.assert_allclose(perceptual.style_loss(fx, fy, list(fx)), ref, rtol=1e-5)


def test_vgg_input_normalisation():
    x = jnp.asarray(RNG.uniform(-1, 1, (1, 2, 2, 3)), jnp.float32)
    np.testing.assert_array_equal(perceptual.vgg_input(x, "none"), x)
    ref = ((np.asarray(x) + 1) / 2 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(perceptual.vgg_input(x, "imagenet"), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="caffe"):
        perceptual.vgg_input(x, "caffe")


def test_missing_layer_named():
    with pytest.raises(KeyError, match="relu9_9"):
        perceptual.content_loss(_feats(1), _feats(2), {"relu9_9": 1.0})


# ----------------------------------------------------------------------------------------------- correctness


def np_resample2d(image, flow, k=4, d=1, sigma=2.0):
    """Card §4c, per output pixel, NHWC."""
    b, hi, wi, c = image.shape
    _, h, w, _ = flow.shape
    out = np.zeros((b, h, w, c))
    for n in range(b):
        for y in range(h):
            for x in range(w):
                xf, yf = x + flow[n, y, x, 0], y + flow[n, y, x, 1]
                x0, y0 = math.floor(xf), math.floor(yf)
                al, be = xf - x0, yf - y0
                acc, wsum = np.zeros(c), 0.0
                for fy in range(k // 2):
                    for fx in range(k // 2):
                        ys = [(y0 - fy * d, fy * d + be), (y0 + (fy + 1) * d, (fy + 1) * d - be)]
                        xs = [(x0 - fx * d, fx * d + al), (x0 + (fx + 1) * d, (fx + 1) * d - al)]
                        for yy, dy in ys:
                            for xx, dx in xs:
                                wt = math.exp(-(dx**2) / (2 * sigma**2)) * math.exp(-(dy**2) / (2 * sigma**2))
                                acc += wt * image[n, min(max(yy, 0), hi - 1), min(max(xx, 0), wi - 1)]
                                wsum += wt
                out[n, y, x] = acc / (wsum if wsum != 0 else 1e-8)
    return out


def np_correctness(t, s, flow):
    """Card §5: cosine matrix, max over source positions, Gaussian resample, exp(-c / c_max) - 1/e."""
    b, h, w, c = t.shape
    T = t.reshape(b, h * w, c).astype(np.float64)
    S = s.reshape(b, h * w, c).astype(np.float64)
    Tn = T / (np.linalg.norm(T, axis=-1, keepdims=True) + 1e-8)
    Sn = S / (np.linalg.norm(S, axis=-1, keepdims=True) + 1e-8)
    cmax = np.einsum("bsc,btc->bst", Sn, Tn).max(axis=1)
    Sw = np_resample2d(s.astype(np.float64), flow.astype(np.float64)).reshape(b, h * w, c)
    cs = (Sw * T).sum(-1) / (
        np.maximum(np.linalg.norm(Sw, axis=-1), 1e-8) * np.maximum(np.linalg.norm(T, axis=-1), 1e-8)
    )
    return np.mean(np.exp(-cs / (cmax + 1e-8))) - np.exp(-1)


def _np_resample_as_jnp(image, flow):
    return jnp.asarray(
        np_resample2d(np.asarray(image, np.float64), np.asarray(flow, np.float64)), jnp.float32
    )


@pytest.fixture(scope="module")
def corr_case():
    r = np.random.default_rng(5)
    t = np.maximum(r.normal(size=(2, 5, 4, 6)), 0).astype(np.float32)
    s = np.maximum(r.normal(size=(2, 5, 4, 6)), 0).astype(np.float32)
    flow = (r.normal(size=(2, 5, 4, 2)) * 1.5).astype(np.float32)
    return t, s, flow


def test_correctness_matches_numpy(corr_case):
    t, s, flow = corr_case
    got = correctness.sampling_correctness(t, s, flow, resample=_np_resample_as_jnp)
    np.testing.assert_allclose(got, np_correctness(t, s, flow), rtol=1e-5, atol=1e-6)


def test_correctness_with_ptx_gaussian_resample(corr_case):
    ops = pytest.importorskip("ptx.ops")
    if not hasattr(ops, "gaussian_resample"):
        pytest.skip("ptx.ops.gaussian_resample not available yet")
    t, s, flow = corr_case
    got = jax.jit(correctness.sampling_correctness)(t, s, flow)
    np.testing.assert_allclose(got, np_correctness(t, s, flow), rtol=1e-4, atol=1e-5)


def test_correctness_zero_for_identity_match():
    # Target = source and a zero flow on a constant-per-column image: resampling blurs only within equal values
    # along y, so c = 1 = c_max wherever the cosine is 1 -> loss exp(-1) - exp(-1) = 0.
    base = np.tile(np.eye(3, dtype=np.float32)[None, None, [0, 0, 1, 2, 2]], (1, 4, 1, 1))  # (1, 4, 5, 3)
    flow = np.zeros((1, 4, 5, 2), np.float32)
    got = correctness.sampling_correctness(base, base, flow, resample=_np_resample_as_jnp)
    assert float(got) > 0.0  # columns 1 and 3 mix neighbours: not a perfect match
    ref = np_correctness(base, base, flow)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_correctness_pairs_flows_with_layers(corr_case):
    t, s, flow = corr_case
    small = flow[:, :3, :2]
    feats_t = {"relu4_1": t[:, :3, :2], "relu3_1": t}
    feats_s = {"relu4_1": s[:, :3, :2], "relu3_1": s}
    got = correctness.correctness_loss(feats_t, feats_s, [small, flow], [2, 3], resample=_np_resample_as_jnp)
    ref = np_correctness(t[:, :3, :2], s[:, :3, :2], small) + np_correctness(t, s, flow)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_resize_nearest_matches_torch_rule():
    x = jnp.arange(4 * 6, dtype=jnp.float32).reshape(1, 4, 6, 1)
    y = correctness.resize_nearest(x, (2, 4))
    iy, ix = np.floor(np.arange(2) * 4 / 2).astype(int), np.floor(np.arange(4) * 6 / 4).astype(int)
    np.testing.assert_array_equal(y[0, :, :, 0], np.asarray(x)[0, iy][:, ix, 0])


def test_correctness_gradient_only_through_flow(corr_case):
    t, s, flow = corr_case
    g = jax.grad(lambda f: correctness.sampling_correctness(t, s, f, resample=_jnp_bilinear))(
        jnp.asarray(flow)
    )
    assert np.all(np.isfinite(g)) and np.any(np.abs(g) > 0)


def _jnp_bilinear(image, flow):
    """A differentiable stand-in resampler (border bilinear) for the gradient smoke test only."""
    b, h, w, c = image.shape
    ys, xs = jnp.meshgrid(jnp.arange(h), jnp.arange(w), indexing="ij")
    px = jnp.clip(xs + flow[..., 0], 0, w - 1)
    py = jnp.clip(ys + flow[..., 1], 0, h - 1)
    x0, y0 = jnp.floor(px), jnp.floor(py)
    ax, ay = (px - x0)[..., None], (py - y0)[..., None]
    x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)
    x1, y1 = jnp.minimum(x0 + 1, w - 1), jnp.minimum(y0 + 1, h - 1)
    bi = jnp.arange(b)[:, None, None]
    g = lambda yy, xx: image[bi, yy, xx]  # noqa: E731
    return (1 - ay) * ((1 - ax) * g(y0, x0) + ax * g(y0, x1)) + ay * ((1 - ax) * g(y1, x0) + ax * g(y1, x1))


# ----------------------------------------------------------------------------------------------- regularisation


def np_affine_reg(flow, kz):
    """Card §5 literally: grid = flow + (x, y); per component, per valid window, |(P - I) g|^2; mean + mean."""
    b, h, w, _ = flow.shape
    temp = np.arange(kz)
    A = np.ones((kz * kz, 3))
    A[:, 0] = np.repeat(temp, kz)  # row
    A[:, 1] = np.tile(temp, kz)  # col
    M = A @ np.linalg.inv(A.T @ A) @ A.T - np.eye(kz * kz)
    K = M.T @ M
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    grid = flow.astype(np.float64) + np.stack([xs, ys], -1)[None]
    total = 0.0
    for comp in range(2):
        vals = []
        for n in range(b):
            for y in range(h - kz + 1):
                for x in range(w - kz + 1):
                    g = grid[n, y : y + kz, x : x + kz, comp].reshape(-1)
                    vals.append(g @ K @ g)
        total += np.mean(vals)
    return total


@pytest.mark.parametrize("kz", [3, 4, 5])
def test_affine_regularization_matches_numpy(kz):
    flow = (RNG.normal(size=(2, 7, 6, 2)) * 2).astype(np.float32)
    got = flow_regularization.affine_regularization(jnp.asarray(flow), kz)
    np.testing.assert_allclose(got, np_affine_reg(flow, kz), rtol=1e-5)


def test_affine_regularization_zero_for_affine_flow():
    ys, xs = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    flow = np.stack([0.3 * xs - 0.2 * ys + 4, 1.5 * ys + 0.1 * xs - 7], -1)[None].astype(np.float32)
    assert float(flow_regularization.affine_regularization(jnp.asarray(flow), 5)) < 1e-8


def test_kernel_pairing_by_reverse_string_sort():
    assert flow_regularization.pair_kernel_sizes({"2": 5, "3": 3}) == [3, 5]
    assert flow_regularization.pair_kernel_sizes({2: 3}) == [3]
    # string sort, as the original: "10" < "9"
    assert flow_regularization.pair_kernel_sizes({"9": 3, "10": 5}) == [3, 5]
    f8 = (RNG.normal(size=(1, 4, 4, 2))).astype(np.float32)
    f4 = (RNG.normal(size=(1, 8, 8, 2))).astype(np.float32)
    got = flow_regularization.multi_affine_regularization([f8, f4], {"2": 5, "3": 3})
    np.testing.assert_allclose(got, np_affine_reg(f8, 3) + np_affine_reg(f4, 5), rtol=1e-5)
