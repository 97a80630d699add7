"""ptx.ops.ssim against scikit-image and the pSSIM golden (metric protocol and loss-mode SSIM)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptx.ops import ssim as S

skm = pytest.importorskip("skimage.metrics")


@pytest.fixture(scope="module")
def golden(golden_dir):
    return dict(np.load(golden_dir / "pssim_loss.npz"))


@pytest.mark.parametrize("case", ["metric_fashion", "metric_market"])
@pytest.mark.parametrize(
    "variant, truncate, win_size",
    [("ssim_skimage_0.15plus_11tap", 3.5, None), ("ssim_skimage_pre0.15_13tap", 4.0, 11)],
)
def test_patn_protocol_matches_golden(golden, case, variant, truncate, win_size):
    ref = golden[f"input/{case}/reference_uint8"].astype(np.uint8)
    gen = golden[f"input/{case}/generated_uint8"].astype(np.uint8)
    data_range = (gen.reshape(len(gen), -1).max(1) - gen.reshape(len(gen), -1).min(1)).astype(np.float32)
    got = S.structural_similarity(
        jnp.asarray(ref),
        jnp.asarray(gen),
        data_range=jnp.asarray(data_range),
        gaussian_weights=True,
        sigma=1.5,
        truncate=truncate,
        win_size=win_size,
        use_sample_covariance=False,
    )
    np.testing.assert_allclose(np.asarray(got), golden[f"output/{case}/{variant}"], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(data_range=255.0),  # skimage defaults: uniform 7, sample covariance
        dict(data_range=1.0, win_size=51, scale=1 / 255),  # GFLA "ssim"
        dict(data_range=255.0, gaussian_weights=True, sigma=1.2, use_sample_covariance=False),
        dict(data_range=100.0, win_size=9, k1=0.02, k2=0.05),
    ],
)
def test_matches_skimage(kwargs):
    kwargs = dict(kwargs)
    scale = kwargs.pop("scale", 1.0)
    rs = np.random.RandomState(0)
    a = rs.randint(0, 256, (2, 64, 56, 3)).astype(np.float32)
    b = np.clip(a + rs.normal(0, 40, a.shape), 0, 255).astype(np.float32)
    a, b = a * scale, b * scale
    sk_kwargs = {{"k1": "K1", "k2": "K2"}.get(k, k): v for k, v in kwargs.items()}  # skimage spells K1, K2
    ref = [skm.structural_similarity(x, y, channel_axis=-1, **sk_kwargs) for x, y in zip(a, b)]
    got = S.structural_similarity(jnp.asarray(a), jnp.asarray(b), **kwargs)
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-5)


@pytest.mark.parametrize(
    "case, win_size, sigma", [("market", 7, 0.8), ("market", 11, 1.5), ("fashion", 7, 0.8)]
)
def test_loss_mode_value_and_gradient(golden, case, win_size, sigma):
    """pSSIM repo's plain SSIM module: valid Gaussian window, population covariance, [0, 1] images."""
    gen = jnp.asarray(golden[f"input/{case}/generated"].transpose(0, 2, 3, 1))
    tgt = jnp.asarray(golden[f"input/{case}/target"].transpose(0, 2, 3, 1))

    def value(g):
        return S.ssim((g + 1) / 2, (tgt + 1) / 2, win_size=win_size, sigma=sigma).mean()

    v, grad = jax.jit(jax.value_and_grad(value))(gen)
    tag = f"win{win_size}_sigma{sigma}"
    np.testing.assert_allclose(float(v), golden[f"output/{case}/plain_ssim_loss_module_{tag}"], atol=2e-5)
    ref_grad = golden[f"output/{case}/grad_plain_ssim_wrt_generated_{tag}"].transpose(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(grad), ref_grad, atol=1e-4 * np.abs(ref_grad).max())


def test_map_shapes_and_identity():
    x = jax.ShapeDtypeStruct((2, 20, 18, 3), jnp.float32)
    assert jax.eval_shape(lambda a: S.ssim_map(a, a, win_size=7), x).shape == (2, 14, 12, 3)
    assert jax.eval_shape(lambda a: S.ssim_map(a, a, win_size=7, padding="reflect"), x).shape == x.shape
    x = jnp.asarray(np.random.RandomState(1).rand(2, 20, 18, 3).astype(np.float32))
    same = jax.jit(lambda a: S.ssim(a, a, window="uniform", win_size=5))(x)
    np.testing.assert_allclose(np.asarray(same), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        S.ssim_map(x, x, win_size=6)
    with pytest.raises(ValueError, match="smaller than"):
        S.ssim_map(x[:, :5], x[:, :5], win_size=7)
