"""SCA-GAN's shifted edge crops (BEP2): bit-exact against the original's pipeline, and the clean mode."""

import numpy as np
import pytest

from ptx.data import shifted_edges as se


def _kps(points: dict[int, tuple[float, float]]) -> np.ndarray:
    out = np.full((18, 2), -1.0, np.float32)
    for i, p in points.items():
        out[i] = p
    return out


@pytest.mark.parametrize("fixture", ["scagan_pctnet_small", "scagan_isnet_small"])
def test_compat_mode_equals_the_originals_bep2(golden_dir, fixture):
    with np.load(golden_dir / f"{fixture}.npz") as z:
        kp1, kp2, xdog, want = z["aux/kp1"], z["aux/kp2"], z["aux/xdog1_u8"], z["input/input_BEP2"]
    for b in range(len(want)):
        got = se.shifted_edges(kp1[b], kp2[b], xdog[b].astype(np.uint8))
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got.transpose(2, 0, 1), want[b])


def test_compat_values_and_border_reflow():
    edge = np.full((24, 16), 255, np.uint8)
    edge[5, :] = 0  # one horizontal line through the source window
    src = _kps({0: (5, 8), 1: (5, 8)})
    tgt = _kps({0: (10, 8), 1: (10, 15)})  # joint 1 lands at the right border: window cut, pixels re-flowed
    bep = se.shifted_edges(src, tgt, edge, radius=3)
    assert set(np.unique(bep)) == {-1.0, 507.0, 509.0}
    assert (bep[..., 2:] == 507).all()  # joints missing in either pose leave 255 - 1 = 254 -> 507
    # joint 0: rows [2, 8) of the source pasted at rows [7, 13); the line (row 5) lands at row 10
    assert (bep[10, 5:11, 0] == -1).all() and (bep[7:13, 5:11, 0] != 507).all()
    assert (bep[:7, :, 0] == 507).all() and (bep[13:, :, 0] == 507).all()
    # joint 1: the 6x6 crop goes to rows [7, 13) x cols [12, 16): np.resize re-flows its first 24 pixels into
    # rows of 4, so the line (crop pixels 18..23) covers cols 14-15 of row 11 and all of row 12; a spatial cut
    # would have put it on row 10
    assert (bep[11, 14:16, 1] == -1).all() and (bep[11, 12:14, 1] == 509).all()
    assert (bep[12, 12:16, 1] == -1).all() and (bep[10, 12:16, 1] == 509).all()


def test_reextracted_joints_follow_the_heatmap_argmax():
    size = (32, 20)
    kps = _kps({0: (3, 4), 1: (-5, 10), 2: (-100, 10), 3: (2.6, 7.2), 4: (40, 25)})
    got = se.reextract_keypoints(kps, size)
    assert got[0].tolist() == [3, 4]
    assert got[1].tolist() == [0, 10]  # off-image tail still above 0.1 at the border
    assert got[2].tolist() == [-1, -1]  # too far: the map's maximum is <= 0.1
    assert got[3].tolist() == [3, 7]
    assert got[4].tolist() == [31, 19]
    assert (got[5:] == -1).all()
    m = se.keypoint_map(40, 25, size)
    assert np.unravel_index(np.argmax(m), size) == (31, 19)


def test_clean_mode_translates_the_neighbourhood():
    edge = np.full((24, 16), 255, np.uint8)
    edge[6, 9] = 0  # a line pixel at offset (+1, +1) from the source joint
    src = _kps({0: (5, 8), 1: (5, 8)})
    tgt = _kps({0: (12, 3), 1: (23, 15)})
    bep = se.shifted_edges(src, tgt, edge, radius=3, mode="clean")
    assert bep.min() == -1.0 and bep.max() == 1.0
    assert bep[13, 4, 0] == 1.0 and (bep[..., 0] == 1.0).sum() == 1
    assert (bep[..., 1] == -1).all()  # its offset pixel (24, 16) is off the image: dropped, not re-flowed
    assert (bep[..., 2:] == -1).all()
    with pytest.raises(ValueError, match="mode"):
        se.shifted_edges(src, tgt, edge, mode="other")
