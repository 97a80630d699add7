"""``benchmarks.common.method_batch``: synthetic batches pass the method's pair filter and carry its host fields."""

import numpy as np

from benchmarks.common import method_batch, synthetic_batch
from configs import defgan_market, patn_market
from ptx.methods import defgan, patn
from ptx.ops import affine


def test_defgan_batch_passes_the_filter_and_has_the_warp_inputs():
    config = defgan_market.get_config("tiny")
    method = defgan.build(config)
    batch = method_batch(method, config.data, 5, seed=3)
    h, w = config.data.image_size
    assert batch["source_image"].shape == (5, h, w, 3)
    body = list(defgan.BODY_JOINTS)
    for side in ("source_keypoints", "target_keypoints"):
        assert np.all(batch[side][:, body] != -1)
    want = affine.batch_warp_inputs(batch["source_keypoints"], batch["target_keypoints"], (h, w))
    np.testing.assert_array_equal(batch["transforms"], want["transforms"])
    np.testing.assert_array_equal(batch["masks"], want["masks"].astype(np.uint8))
    assert batch["masks"].dtype == np.uint8
    np.testing.assert_array_equal(method_batch(method, config.data, 5, seed=3)["masks"], batch["masks"])


def test_method_without_hooks_gets_the_plain_synthetic_batch():
    config = patn_market.get_config("tiny")
    got = method_batch(patn.build(config), config.data, 3, seed=2)
    want = synthetic_batch(config.data, 3, seed=2)
    assert got.keys() == want.keys()
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
