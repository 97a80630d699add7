"""CASD recipe pieces: region merge on device, the 30-channel pose input, AMCE against PyTorch, predict outputs,
the contextual-loss TODO. (Every (stage, player) loss of the tiny config is run by tests/test_method_contract.py.)"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import casd_fashion
from ptx.data import parsing as lip
from ptx.losses import segmentation
from ptx.methods import casd


def test_region_masks_match_the_host_merge_and_drop_unlabelled():
    labels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    got = np.asarray(casd.region_masks(labels))
    want = lip.region_masks(lip.merge_lip(labels), 8)
    np.testing.assert_array_equal(got, want)
    assert got[0].reshape(256, 8)[20:].sum() == 0  # labels >= 20 (255 = unlabelled) belong to no region
    assert (got[0].reshape(256, 8)[:20].sum(-1) == 1).all()


def test_pose_input_is_point_maps_then_limb_maps():
    kps = np.full((1, 18, 2), -1.0, np.float32)
    kps[0, 1] = (10.4, 6.6)  # neck, rounded to (10, 7)
    kps[0, 2] = (10.0, 2.0)  # right shoulder: limb 1-2 present
    x = np.asarray(casd.pose_input(jnp.asarray(kps), (16, 16)))
    assert x.shape == (1, 16, 16, 30)
    assert x[0, 10, 7, 1] == 1 and x[0, ..., 1].sum() == 1
    assert x[0, ..., 0].sum() == 0  # missing joint
    np.testing.assert_allclose(x[0, 10, :, 18], 1.0)  # limb 1-2 lies on row 10: distance 0 along it
    assert x[0, ..., 19:].sum() == 0  # limbs with a missing joint


def test_amce_matches_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 6, 8)).astype(np.float32)
    labels = rng.integers(0, 8, (2, 16, 24))
    got = float(segmentation.upsampled_cross_entropy(jnp.asarray(logits), jnp.asarray(labels)))
    up = torch.nn.Upsample(scale_factor=4, mode="bilinear")(torch.from_numpy(logits).permute(0, 3, 1, 2))
    want = torch.nn.CrossEntropyLoss()(
        up.permute(0, 2, 3, 1).reshape(-1, 8), torch.from_numpy(labels).reshape(-1)
    )
    np.testing.assert_allclose(got, float(want), rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_method():
    config = casd_fashion.get_config("tiny")
    return casd.build(config), config


def test_predict_outputs(tiny_method):
    method, config = tiny_method
    h, w = config.data.image_size
    b = 2
    batch = {
        "source_image": np.zeros((b, h, w, 3), np.uint8),
        "source_keypoints": np.full((b, 18, 2), 5.0, np.float32),
        "target_keypoints": np.full((b, 18, 2), 6.0, np.float32),
        "source_parsing": np.zeros((b, h, w), np.uint8),
        "target_image": np.zeros((b, h, w, 3), np.uint8),
        "target_parsing": np.zeros((b, h, w), np.uint8),
    }
    shapes = jax.eval_shape(lambda k: method.init(k, batch), jax.random.key(0))
    out = jax.eval_shape(method.predict, shapes, batch)
    assert out["image"].shape == (b, h, w, 3)
    assert out["parsing"].shape == (b, h, w) and out["parsing"].dtype == jnp.int32
    assert out["energy4"].shape == (b, h // 4, w // 4, 8)
    assert set(shapes) == set(casd.PLAYERS)
    assert method.sampler.cfg.spade_stats == "sample" and method.gen.cfg.spade_stats == "batch"


def test_contextual_weight_is_a_named_todo():
    config = casd_fashion.get_config("tiny")
    with config.unlocked():
        config.loss.contextual = 0.1
    with pytest.raises(NotImplementedError, match="TODO\\(casd-contextual\\)"):
        casd.build(config)


def test_registered():
    from ptx import registry

    assert registry.get_method("casd") is importlib.import_module("ptx.methods.casd")
