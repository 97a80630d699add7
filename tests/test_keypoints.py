"""ptx.data.keypoints: joint order, limb/part tables, flips, CSV field parsing, skeleton drawing."""

import numpy as np
import pytest

from ptx.data import keypoints as K


def _random_kps(rng, n, h=256, w=176, missing=0.2):
    kps = np.stack([rng.integers(0, h, (n, 18)), rng.integers(0, w, (n, 18))], -1).astype(np.float32)
    kps[rng.random((n, 18)) < missing] = -1
    return kps


def test_names_and_tables_are_consistent():
    assert K.NAMES[:5] == ("nose", "neck", "Rsho", "Relb", "Rwri") and K.NAMES[-1] == "Lear"
    assert len(K.NAMES) == K.NUM_KEYPOINTS == 18
    assert len(K.LIMBS) == 19 and len(K.DEFGAN_MA_MASK_LIMBS) == 23 and len(K.CASD_LIMBS) == 12
    for table in (K.LIMBS, K.DEFGAN_MA_MASK_LIMBS, K.CASD_LIMBS):
        assert all(0 <= a < 18 and 0 <= b < 18 and a != b for a, b in table)
    joints = sorted(j for part in K.PARTS.values() for j in part)
    assert joints == sorted([*range(18), 2, 5, 8, 11])  # shoulders and hips are torso and limb
    assert [p[0] for p in K.PSSIM_PARTS][-1] == "torso" and len(K.PSSIM_PARTS) == 10
    assert [p[0] for p in K.DEFGAN_PARTS][:2] == ["body", "head"] and len(K.DEFGAN_PARTS) == 10


def test_head_joint_names_follow_openpose_not_the_plot_legend():
    # 14-17 are OpenPose's REye, LEye, REar, LEar (the originals' legend list says Leye, Reye, Lear, Rear): the
    # limb graph links each ear to the shoulder of its own side and each eye to the ear of its own side.
    assert K.NAMES[14:] == ("Reye", "Leye", "Rear", "Lear")
    for a, b in K.LIMBS:
        if {K.NAMES[a], K.NAMES[b]} & {"Reye", "Leye", "Rear", "Lear"} and "nose" not in (
            K.NAMES[a],
            K.NAMES[b],
        ):
            assert K.NAMES[a][0] == K.NAMES[b][0], (K.NAMES[a], K.NAMES[b])


def test_flip_perm_is_an_involution_swapping_sides():
    perm = np.array(K.FLIP_PERM)
    np.testing.assert_array_equal(perm[perm], np.arange(18))
    for i, name in enumerate(K.NAMES):
        other = K.NAMES[perm[i]]
        if name[0] in "RL":
            assert other == {"R": "L", "L": "R"}[name[0]] + name[1:]
        else:
            assert other == name


def test_flip_keypoints_mirrors_swaps_and_round_trips():
    rng = np.random.default_rng(0)
    kps = _random_kps(rng, 5)
    flipped = K.flip_keypoints(kps, 176)
    np.testing.assert_array_equal(K.flip_keypoints(flipped, 176), kps)
    # Rsho lands in the Lsho slot, mirrored.
    for b in range(5):
        if kps[b, 2, 0] != -1:
            np.testing.assert_array_equal(flipped[b, 5], [kps[b, 2, 0], 175 - kps[b, 2, 1]])
        else:
            np.testing.assert_array_equal(flipped[b, 5], [-1, -1])
    assert flipped.dtype == np.float32
    with pytest.raises(ValueError, match="18, 2"):
        K.flip_keypoints(np.zeros((17, 2)), 10)


def test_flip_matches_mirrored_image_pixel():
    img = np.zeros((8, 11), np.uint8)
    kps = np.full((18, 2), -1.0, np.float32)
    kps[2] = (3, 2)
    img[3, 2] = 1
    flipped = K.flip_keypoints(kps, 11)
    y, x = flipped[5].astype(int)
    assert img[:, ::-1][y, x] == 1


def test_parse_keypoint_list_and_errors():
    text = "[" + ", ".join(str(v) for v in range(-1, 17)) + "]"
    np.testing.assert_array_equal(K.parse_keypoint_list(text), np.arange(-1, 17))
    kps = K.parse_keypoints_yx(text, K.format_keypoint_list(range(18)))
    assert kps.dtype == np.float32 and kps.shape == (18, 2)
    np.testing.assert_array_equal(kps[0], [-1, -1])  # half-missing joint becomes fully missing
    with pytest.raises(ValueError, match="expected 18 keypoints.*got 17"):
        K.parse_keypoint_list(str(list(range(17))), where="f.csv, line 3")
    with pytest.raises(ValueError, match="f.csv, line 3.*entry 4 \\(Rwri\\)"):
        K.parse_keypoint_list(str([1, 2, 3, 4, 5.5] + [0] * 13), where="f.csv, line 3")
    with pytest.raises(ValueError, match="JSON list"):
        K.parse_keypoint_list("[1, 2,", where="f.csv")
    with pytest.raises(ValueError, match="entry 0"):
        K.parse_keypoint_list(str(['"a"'] * 18).replace("'", ""))


def test_draw_skeleton():
    kps = np.full((18, 2), -1.0)
    kps[1] = (20, 30)
    kps[2] = (22, 15)
    kps[4] = (60, 10)  # Relb missing: no Rsho-Relb or Relb-Rwri limb
    img = K.draw_skeleton(kps, (64, 48))
    assert img.shape == (64, 48, 3) and img.dtype == np.uint8
    assert img[21, 22].any()  # on the neck-Rsho limb
    assert img[40, 12].sum() == 0  # no limb towards the lone wrist
    assert img[60, 10].any()  # joints are drawn
    assert K.draw_skeleton(np.full((18, 2), -1.0), (8, 8)).sum() == 0
