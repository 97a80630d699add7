"""pSSIM loss against the golden recorded from the original (value, gradient, masks, components)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptx.losses import pssim

WINDOWS = {"win7_sigma0.8": (7, 0.8), "win11_sigma1.5": (11, 1.5)}


@pytest.fixture(scope="module")
def golden(golden_dir):
    with np.load(golden_dir / "pssim_loss.npz") as z:
        return {k: z[k] for k in z.files}


def _nhwc(x: np.ndarray) -> jax.Array:
    return jnp.asarray(np.transpose(x, (0, 2, 3, 1)))


def _nchw(x: jax.Array) -> np.ndarray:
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def _rel(got, want) -> float:
    return float(np.max(np.abs(np.asarray(got) - want)) / max(np.max(np.abs(want)), 1e-12))


@pytest.mark.parametrize("case", ["market", "fashion"])
def test_part_masks_from_keypoints(golden, case):
    want = golden[f"input/{case}/part_mask"]
    got = jax.jit(pssim.part_masks, static_argnums=1)(golden[f"input/{case}/keypoints_yx"], want.shape[2:])
    np.testing.assert_allclose(_nchw(got), want, atol=1e-6)
    assert float(jnp.abs(got[..., 1:]).sum(axis=(1, 2)).min()) == 0.0  # a missing part stays all zero


def _all_terms(gen, tgt, mask):
    """Everything the fixture records for one case, both windows, in one compiled function."""
    out = {}
    for window, (ws, sigma) in WINDOWS.items():
        out[f"pssim_{window}"], out[f"grad_pssim_wrt_generated_{window}"] = jax.value_and_grad(
            lambda x, ws=ws, sigma=sigma: pssim.part_ssim(x, tgt, mask, ws, sigma)
        )(gen)
        fg, bg = pssim.part_ssim_per_image(gen, tgt, mask, ws, sigma)
        out[f"fg_part_ssim_per_image_{window}"], out[f"bg_ssim_per_image_{window}"] = fg, bg
        out[f"plain_ssim_loss_module_{window}"], out[f"grad_plain_ssim_wrt_generated_{window}"] = (
            jax.value_and_grad(lambda x, ws=ws, sigma=sigma: pssim.ssim_value(x, tgt, ws, sigma))(gen)
        )
    return out


@pytest.mark.parametrize("case", ["market", "fashion"])
def test_pssim_value_gradient_and_terms(golden, case):
    args = [_nhwc(golden[f"input/{case}/{k}"]) for k in ("generated", "target", "part_mask")]
    got = jax.jit(_all_terms)(*args)
    assert len(got) == 12
    for name, value in got.items():
        value = _nchw(value) if np.ndim(value) == 4 else value
        assert _rel(value, golden[f"output/{case}/{name}"]) < 1e-4, name


def test_eval_protocol_from_keypoints(golden):
    """tool/getPartSSIM.py on uint8 panels: masks from the target keypoints, images to [-1, 1]."""
    ref = golden["input/metric_market/reference_uint8"] / 127.5 - 1.0
    gen = golden["input/metric_market/generated_uint8"] / 127.5 - 1.0
    kps = golden["input/metric_market/target_keypoints_yx"]
    got = [
        float(pssim.part_ssim_from_keypoints(ref[i : i + 1], gen[i : i + 1], kps[i : i + 1]))
        for i in range(3)
    ]
    np.testing.assert_allclose(got, golden["output/metric_market/pssim_eval_protocol"], atol=2e-5)


def test_identical_images_and_missing_parts_score_one():
    x = jax.random.uniform(jax.random.key(0), (1, 32, 16, 3), minval=-1, maxval=1)
    kps = -np.ones((1, 18, 2), np.float32)  # no joints: every part missing -> foreground exactly 1
    mask = jax.jit(pssim.part_masks, static_argnums=1)(kps, (32, 16))
    np.testing.assert_allclose(mask[..., 0], 1.0)
    fg, _ = jax.jit(pssim.part_ssim_per_image)(x, -x, mask)
    np.testing.assert_allclose(fg, 1.0)
    np.testing.assert_allclose(jax.jit(pssim.part_ssim)(x, x, mask), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="part_mask"):
        pssim.part_ssim(x, x, mask[..., :5])
    assert set(pssim.RECONSTRUCTION_TERMS["FPart_BSSIM_plus_perL1_L1"]) == {"l1", "perceptual", "pssim"}
