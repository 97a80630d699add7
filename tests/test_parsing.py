"""ptx.data.parsing: LIP flip, CASD's 8-region merge as its dataset computes it, labels outside 0..19."""

import numpy as np
import pytest

from ptx.data import parsing as P


def _casd_planes(labels):
    """CASD's data/keypoint.py, restated: one plane per LIP id 0..19 (==), summed per region, channels last."""
    lip = np.stack([(labels == i).astype(np.float32) for i in range(20)], -1)
    groups = ((0,), (9, 12), (2, 1), (3,), (13, 4), (5, 6, 7, 10, 11), (14, 15), (8, 16, 17, 18, 19))
    return np.stack([sum(lip[..., i] for i in g) for g in groups], -1)


def test_casd_merge_matches_the_original_including_labels_outside_0_19():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 20, (16, 12)).astype(np.uint8)
    labels[0, :6] = (20, 21, 30, 100, 254, 255)  # what a parser file may hold besides LIP ids
    regions = P.merge_lip(labels, P.CASD_LIP_TABLE)
    assert regions.dtype == np.uint8 and regions.shape == labels.shape
    assert np.all(regions[0, :6] == P.NO_REGION)
    masks = P.region_masks(regions, len(P.CASD_REGIONS))
    assert masks.shape == (16, 12, 8) and masks.dtype == np.float32
    np.testing.assert_array_equal(masks, _casd_planes(labels))
    assert np.all(masks[0, :6] == 0)  # in no region, as in the original
    assert np.all(masks[1:].sum(-1) == 1)  # every LIP label is in exactly one region


def test_region_names_and_table():
    assert P.CASD_REGIONS == (
        "background", "lower_clothes", "hair", "gloves", "face", "upper_clothes", "arms", "legs_shoes",
    )  # fmt: skip
    lut = P.lookup_table(P.CASD_LIP_TABLE)
    by_name = {P.LIP_CLASSES[i]: P.CASD_REGIONS[lut[i]] for i in range(20)}
    assert by_name["skirt"] == "lower_clothes" and by_name["sunglasses"] == "face"
    assert by_name["scarf"] == "upper_clothes" and by_name["socks"] == "legs_shoes"
    with pytest.raises(ValueError, match="label 9 \\(pants\\) is in region 'a' and in 'b'"):
        P.lookup_table((("a", (9,)), ("b", (9, 1))))
    with pytest.raises(ValueError, match="label 20; LIP labels are 0..19"):
        P.lookup_table((("a", (20,)),))
    with pytest.raises(ValueError, match="uint8"):
        P.merge_lip(np.zeros((2, 2), np.int32))


def test_flip_swaps_sided_labels_only():
    perm = P.LIP_FLIP_PERM
    np.testing.assert_array_equal(perm[perm], np.arange(20))
    assert P.LIP_CLASSES[perm[14]] == "right_arm" and P.LIP_CLASSES[perm[18]] == "right_shoe"
    regions = P.lookup_table(P.CASD_LIP_TABLE)
    np.testing.assert_array_equal(regions[perm], regions[:20])  # CASD's regions are side-free
