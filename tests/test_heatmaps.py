"""ptx.data.heatmaps: parity with the originals' cords_to_map formula and with the golden fixtures."""

import jax
import numpy as np
import pytest

from ptx.data.heatmaps import casd_limb_maps, gaussian_heatmaps, point_maps


def cords_to_map_numpy(kps, size, sigma, truncate=True, keep_outside=False):
    """Straight transliteration of the originals' formula, one joint at a time, in float64."""
    h, w = size
    out = np.zeros((h, w, 18), np.float64)
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for k, (y, x) in enumerate(kps):
        if y == -1 or x == -1:
            continue
        if truncate:
            y, x = int(y), int(x)
        if not keep_outside and not (0 <= y <= h - 1 and 0 <= x <= w - 1):
            continue
        out[..., k] = np.exp(-((rows - y) ** 2 + (cols - x) ** 2) / (2 * sigma**2))
    return out


@pytest.fixture(scope="module")
def kps():
    rng = np.random.default_rng(1)
    k = np.stack([rng.uniform(-20, 60, (3, 18)), rng.uniform(-20, 50, (3, 18))], -1).astype(np.float32)
    k[rng.random((3, 18)) < 0.2] = -1
    k[0, 0] = (-1, 10)  # half-missing counts as missing
    k[0, 1] = (-0.5, 3.7)  # truncates to row 0: inside
    return k


@pytest.mark.parametrize("truncate", [True, False])
@pytest.mark.parametrize("keep", [True, False])
def test_matches_numpy_formula(kps, truncate, keep):
    size, sigma = (48, 40), 6.0
    got = np.asarray(gaussian_heatmaps(kps, size, sigma, truncate_centres=truncate, keep_outside=keep))
    assert got.shape == (3, 48, 40, 18) and got.dtype == np.float32
    for b in range(3):
        ref = cords_to_map_numpy(kps[b], size, sigma, truncate, keep)
        np.testing.assert_allclose(got[b], ref, atol=1e-6, rtol=0)
    assert not got[0, ..., 0].any()


def test_outside_points_zero_by_default_and_keep_tail_on_request():
    k = np.full((18, 2), -1.0, np.float32)
    k[3] = (-5, 10)
    k[4] = (10, 40)  # x == w: outside
    zeroed = np.asarray(gaussian_heatmaps(k, (48, 40)))
    kept = np.asarray(gaussian_heatmaps(k, (48, 40), keep_outside=True))
    assert not zeroed.any()
    assert kept[0, 10, 3] == pytest.approx(np.exp(-25 / 72), abs=1e-6) and kept[10, 39, 4] > 0.98


def test_unbatched_and_nested_batch_shapes():
    k = np.zeros((18, 2), np.float32)
    assert gaussian_heatmaps(k, (8, 6)).shape == (8, 6, 18)
    assert gaussian_heatmaps(np.zeros((2, 3, 18, 2)), (8, 6)).shape == (2, 3, 8, 6, 18)
    under_jit = jax.jit(lambda k: gaussian_heatmaps(k, (8, 6), 2.0))(np.full((18, 2), 3.0, np.float32))
    assert float(under_jit[3, 3, 0]) == 1.0
    with pytest.raises(ValueError, match="18, 2"):
        gaussian_heatmaps(np.zeros((17, 2)), (8, 6))


def test_point_maps_reproduce_uint8_truncation():
    k = np.full((18, 2), -1.0, np.float32)
    k[0] = (3, 4)
    k[1] = (2.5, 1)  # non-integer: the uint8 quirk leaves nothing
    maps = np.asarray(point_maps(k, (8, 6)))
    assert maps[3, 4, 0] == 1 and maps[..., 0].sum() == 1 and not maps[..., 1].any()


@pytest.mark.parametrize(
    "name,kp_key,map_key,size,sigma",
    [
        ("patn_market_small", "input/keypoints_yx", "input/x2_BP1_BP2", (128, 64), 6.0),
        ("defgan_affine", "input/kp_to", "output/pose_map_to", (128, 64), 6.0),
        ("scagan_pctnet_small", "aux/kp2", "input/input_BP2", (256, 176), 12.0),
    ],
)
def test_golden_heatmaps(golden_dir, name, kp_key, map_key, size, sigma):
    z = np.load(golden_dir / f"{name}.npz")
    k = z[kp_key].reshape(-1, 18, 2)
    ref = z[map_key].reshape(k.shape[0], 18, *size).transpose(0, 2, 3, 1)
    got = np.asarray(gaussian_heatmaps(k, size, sigma))
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)


def test_casd_point_and_limb_maps_match_golden(golden_dir):
    z = np.load(golden_dir / "casd_fashion_small.npz")
    img_a = z["input/img_A"]  # (B, 30, 256, 256): 18 one-pixel point maps, then 12 limb maps
    bp, bpd = img_a[:, :18].transpose(0, 2, 3, 1), img_a[:, 18:].transpose(0, 2, 3, 1)
    kps = np.full((bp.shape[0], 18, 2), -1, np.float32)
    for b, k in np.ndindex(bp.shape[0], 18):  # CASD reads the joints back as the first pixel equal to 1
        idx = np.flatnonzero(bp[b, ..., k].ravel() == 1.0)
        if idx.size:
            kps[b, k] = divmod(int(idx[0]), bp.shape[2])
    assert (kps == -1).any()  # the fixture has a missing joint
    np.testing.assert_array_equal(np.asarray(point_maps(kps, (256, 256))), bp)
    np.testing.assert_allclose(np.asarray(casd_limb_maps(kps, (256, 256))), bpd, atol=1e-6, rtol=0)


def test_casd_limb_maps_formula_and_coincident_quirk():
    k = np.full((18, 2), -1.0, np.float32)
    k[1] = (2, 3)  # neck
    k[2] = (2, 9)  # Rsho: limb 0 is the horizontal line through row 2
    k[5] = (6, 6)
    k[6] = (6, 6)  # Lsho == Lelb: coincident joints of limb 4
    maps = np.asarray(casd_limb_maps(k, (8, 12)))
    assert maps.shape == (8, 12, 12)
    rows = np.arange(8)[:, None] * np.ones((1, 12))
    np.testing.assert_allclose(maps[..., 0], np.exp(-0.1 * np.abs(rows - 2)), atol=1e-6)
    rr, cc = np.mgrid[0:8, 0:12]
    np.testing.assert_allclose(maps[..., 4], np.sqrt(((rr - 6) ** 2 + (cc - 6) ** 2).sum()), rtol=1e-6)
    assert not maps[..., 2].any()  # Relb missing
    off = np.asarray(casd_limb_maps(k, (8, 12), reproduce_coincident_quirk=False))
    assert not off[..., 4].any()
