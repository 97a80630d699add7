"""pSSIM loss against the golden recorded from the original (value, gradient, masks, components)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptx.losses import pssim


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


def test_pssim_value_gradient_and_terms_via_check_golden(golden):
    """Every recorded term of both cases and both windows, through the check_golden hook."""
    from ptx.tools import check_golden, golden_pssim

    report = check_golden.compare(golden_pssim.run_golden(golden, {}))
    assert len(report) == 2 * 13
    bad = {k: r for k, r in report.items() if r["rel"] >= 1e-4}
    assert not bad, bad


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
