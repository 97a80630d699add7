"""Def-GAN geometry (part transforms, masks) and the masked affine warp against the original's goldens."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from ptx.ops import affine

LEVELS = ["128x64", "64x32", "32x16", "16x8"]


@pytest.fixture(scope="module")
def geometry(golden_dir):
    return np.load(golden_dir / "defgan_affine.npz")


@pytest.fixture(scope="module")
def warp(golden_dir):
    return np.load(golden_dir / "defgan_warp.npz")


def to_nhwc(a):
    return jnp.asarray(np.transpose(a, (0, 2, 3, 1)))


def to_nchw(a):
    return np.transpose(np.asarray(a), (0, 3, 1, 2))


# ------------------------------------------------------------------------------------------------------------
# Geometry.


def test_transforms_and_masks_match_golden(geometry):
    d = geometry
    for n in range(len(d["input/kp_from"])):
        kp_from, kp_to = d["input/kp_from"][n], d["input/kp_to"][n]
        np.testing.assert_allclose(affine.affine_transforms(kp_from, kp_to), d["output/affine"][n], atol=1e-5)
        np.testing.assert_allclose(
            affine.uniform_transform(kp_from, kp_to), d["output/affine_full"][n], atol=1e-5
        )
        np.testing.assert_array_equal(affine.part_masks(kp_to, (128, 64)), d["output/masks"][n])


def test_batch_warp_inputs(geometry):
    d = geometry
    out = affine.batch_warp_inputs(d["input/kp_from"], d["input/kp_to"], (128, 64))
    np.testing.assert_allclose(out["transforms"], d["output/affine"], atol=1e-5)
    np.testing.assert_array_equal(out["masks"], d["output/masks"])
    full = affine.batch_warp_inputs(d["input/kp_from"], d["input/kp_to"], (128, 64), mode="full")
    assert set(full) == {"transforms"} and full["transforms"].shape == (6, 1, 8)


def test_missing_parts_are_no_point(geometry):
    d = geometry
    # Pair 4: target has no head keypoints; pair 5: target misses Rkne, Rank, Rwri.
    no_point = affine.NO_POINT.reshape(9)[:8]
    tr4 = affine.affine_transforms(d["input/kp_from"][4], d["input/kp_to"][4])
    np.testing.assert_array_equal(tr4[1], no_point)
    tr5 = affine.affine_transforms(d["input/kp_from"][5], d["input/kp_to"][5])
    names = affine.PART_NAMES
    for part in ("Rhip-Rkne", "Rkne-Rank", "Relb-Rwri"):
        np.testing.assert_array_equal(tr5[names.index(part)], no_point)


def test_missing_body_joint_raises():
    kp = np.full((18, 2), 10.0, np.float32)
    kp[8] = -1  # Rhip
    with pytest.raises(ValueError, match="Rhip"):
        affine.affine_transforms(kp, np.full((18, 2), 10.0, np.float32))


def test_fit_affine_recovers_exact_maps_and_flags_degenerate():
    rng = np.random.default_rng(0)
    m = np.array([[1.2, -0.3, 5.0], [0.4, 0.9, -7.0], [0.0, 0.0, 1.0]])
    for n in (3, 6):
        src = rng.uniform(0, 100, (n, 2))
        dst = src @ m[:2, :2].T + m[:2, 2]
        np.testing.assert_allclose(affine.fit_affine(src, dst), m, atol=1e-9)
    collinear = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    assert np.isnan(affine.fit_affine(collinear, collinear)).all()
    # A degenerate limb (both joints at one pixel) becomes NO_POINT instead of a garbage fit.
    kp = np.round(rng.uniform(5, 60, (18, 2)))
    kp[9] = kp[8]  # Rkne on Rhip
    tr = affine.affine_transforms(kp, kp)
    np.testing.assert_array_equal(tr[affine.PART_NAMES.index("Rhip-Rkne")], affine.NO_POINT.reshape(9)[:8])
    np.testing.assert_allclose(tr[0], np.eye(3).reshape(9)[:8], atol=1e-9)


def test_points_in_polygon_half_open_boundary():
    """skimage 0.13 rule: vertices on the grid; only the top/left boundary points count as inside."""
    square = np.array([[1.0, 1.0], [1.0, 3.0], [3.0, 3.0], [3.0, 1.0]])
    inside = affine.points_in_polygon(np.arange(5)[:, None], np.arange(5)[None, :], square)
    expected = np.zeros((5, 5), bool)
    expected[1:3, 1:3] = True
    np.testing.assert_array_equal(inside, expected)


# ------------------------------------------------------------------------------------------------------------
# Warp.


@pytest.mark.parametrize("level", LEVELS)
def test_warp_matches_golden(warp, level):
    w = warp
    feat = to_nhwc(w[f"input/feat_{level}"])
    cases = [
        ("max", "mask_max", w["input/affine"], w["input/masks"], 0.0),
        ("avg", "mask_avg", w["input/affine"], w["input/masks"], 1e-6),
        ("max", "full", w["input/affine_full"], None, 0.0),
    ]
    for agg, key, tr, masks, atol in cases:
        out = affine.affine_warp(feat, jnp.asarray(tr), masks, init_image_size=(128, 64), aggregation=agg)
        np.testing.assert_allclose(to_nchw(out), w[f"output/{key}_{level}"], atol=atol, rtol=0)


def test_mask_downsampling_matches_golden(warp):
    masks = jnp.asarray(warp["input/masks"])
    for level in LEVELS[1:]:
        h, wd = map(int, level.split("x"))
        np.testing.assert_array_equal(affine._downsample_masks(masks, h, wd), warp[f"output/masks_{level}"])


def test_round_half_away_from_zero():
    v = jnp.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.49])
    np.testing.assert_array_equal(affine._round_half_away(v), [-3, -2, -1, 1, 2, 3, 2])


def test_aggregation_none_stacks_parts(warp):
    feat = to_nhwc(warp["input/feat_16x8"])[:2]
    out = affine.affine_warp(
        feat,
        jnp.asarray(warp["input/affine"][:2]),
        warp["input/masks"][:2],
        init_image_size=(128, 64),
        aggregation="none",
    )
    assert out.shape == (2, 16, 8, 40)
    mx = affine.affine_warp(
        feat, jnp.asarray(warp["input/affine"][:2]), warp["input/masks"][:2], init_image_size=(128, 64)
    )
    np.testing.assert_array_equal(out.reshape(2, 16, 8, 10, 4).max(axis=3), mx)


def test_pallas_warp_equals_jnp(warp):
    feat = to_nhwc(warp["input/feat_16x8"])[:3]
    tr, masks = jnp.asarray(warp["input/affine"][:3]), jnp.asarray(warp["input/masks"][:3])
    res = {}
    for impl in ("xla", "pallas"):
        fn = jax.jit(
            lambda f, impl=impl: affine.affine_warp(f, tr, masks, init_image_size=(128, 64), impl=impl)
        )
        out, vjp = jax.vjp(fn, feat)
        res[impl] = (out, vjp(jnp.cos(out))[0])
    np.testing.assert_array_equal(res["pallas"][0], res["xla"][0])
    np.testing.assert_allclose(res["pallas"][1], res["xla"][1], atol=1e-6)


def test_warp_gradient_float64(warp):
    with jax.enable_x64(True):
        feat = to_nhwc(warp["input/feat_16x8"][:1]).astype(jnp.float64)
        tr, masks = jnp.asarray(warp["input/affine"][:1]), jnp.asarray(warp["input/masks"][:1])
        check_grads(
            lambda f: affine.affine_warp(f, tr, masks, init_image_size=(128, 64), aggregation="avg"),
            (feat,),
            order=1,
            modes=("rev",),
        )
