"""Def-GAN recipe: the paper settings as config switches, the pair filter and host transform, and one compiled
train step of the tiny config (every (stage, player) loss finite, D then G, generator run once) plus predict."""

import collections
import os
import warnings

import flax.linen as nn
import jax
import numpy as np
import pytest

from configs import defgan_fashion, defgan_market
from ptx import api, registry
from ptx.models import defgan as models
from ptx.ops import affine
from ptx.train import loop, optim
from ptx.train import state as tstate
from ptx.train.step import make_train_step

FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def build(config):
    return registry.get_method("defgan").build(config)


def pose(rs, h, w):
    kp = np.stack([rs.uniform(4, h - 5, 18), rs.uniform(2, w - 3, 18)], -1).astype(np.float32)
    kp[3] = -1
    return kp


def make_batch(config, method, n=2, seed=0):
    """Pairs through the method's hooks as the pipeline runs them (filter, then per-pair transform)."""
    rs = np.random.RandomState(seed)
    h, w = config.data.image_size
    rows = []
    for _ in range(n):
        pair = {
            "source_image": rs.randint(0, 256, (h, w, 3)).astype(np.uint8),
            "target_image": rs.randint(0, 256, (h, w, 3)).astype(np.uint8),
            "source_keypoints": pose(rs, h, w),
            "target_keypoints": pose(rs, h, w),
        }
        assert method.pair_filter("train")(pair)
        transform = method.host_transform("train")
        rows.append({**pair, **(transform(pair) if transform else {})})
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


@pytest.mark.parametrize("module", [defgan_market, defgan_fashion])
def test_paper_settings_are_switches(module):
    want = {
        "baseline": ("none", 100.0, 1, ()),
        "dsc": ("mask", 100.0, 1, ()),
        "full": ("mask", 0.01, 3 if module is defgan_market else 5, ("relu1_2",)),
        "feature_matching": ("mask", 0.5, 1, ("relu2_1",)),
    }
    for setting, (warp_skip, l1, area, layers) in want.items():
        config = module.get_config(f"paper,setting={setting}")
        method = build(config)
        assert (method.cfg.warp_skip, method.options.l1, method.options.nn_area) == (warp_skip, l1, area)
        assert method.vgg_layers == layers and method.options.gan == 1.0
        assert (method.host_transform("train") is None) == (warp_skip == "none")
        assert config.stages[0].players == ("disc", "gen") and config.optim.gen.b1 == 0.5
        assert config.stages[0].num_steps == 90_000
    fashion_full = defgan_fashion.get_config("paper,setting=full")
    if not os.path.isfile(os.path.expanduser(defgan_market.KERAS_VGG)):  # no Keras VGG file: random, warned
        demo = build(defgan_market.get_config("demo,setting=full"))
        with pytest.warns(UserWarning, match="random VGG19"):
            assert set(demo.frozen("train")["vgg19"]) == {"conv1_1", "conv1_2"}
        assert not demo.keras_vgg
    assert fashion_full.data.batch_size == 2 and tuple(fashion_full.model.image_size) == (256, 256)
    assert tuple(fashion_full.data.image_size) == (256, 176)


def test_pair_filter_and_host_transform_in_the_frame():
    method = build(defgan_fashion.get_config("tiny"))  # 32x24 data in a 32x32 frame
    rs = np.random.RandomState(1)
    keep = method.pair_filter("test")
    view = {"source_keypoints": pose(rs, 32, 24), "target_keypoints": pose(rs, 32, 24)}
    assert keep(view)
    for joint in affine.BODY:
        missing = {k: v.copy() for k, v in view.items()}
        missing["target_keypoints"][affine.KEYPOINT_NAMES.index(joint)] = -1
        assert not keep(missing), joint
    pair = {"source_image": np.zeros((32, 24, 3), np.uint8), **view}
    out = method.host_transform("train")(pair)
    src = models.keypoints_to_frame(view["source_keypoints"], (32, 24), (32, 32))
    tgt = models.keypoints_to_frame(view["target_keypoints"], (32, 24), (32, 32))
    np.testing.assert_array_equal(out["transforms"], affine.affine_transforms(src, tgt))
    np.testing.assert_array_equal(out["masks"], affine.part_masks(tgt, (32, 32)))
    assert out["masks"].dtype == np.uint8


def _generator_applies(fn, *args) -> int:
    count = collections.Counter()

    def interceptor(next_fun, args_, kwargs_, context):
        if context.method_name == "__call__" and not isinstance(context.module.parent, nn.Module):
            count[type(context.module).__name__] += 1
        return next_fun(*args_, **kwargs_)

    with nn.intercept_methods(interceptor):
        jax.make_jaxpr(fn)(*args)
    return count["Generator"]


def test_tiny_step_losses_finite_and_predict_shape():
    config = defgan_fashion.get_config("tiny")  # frame padding, nn area 5 on VGG relu1_2
    method = build(config)
    (spec,) = loop.stages_from_config(config)
    batch = make_batch(config, method)
    txs = optim.make_optimizers(spec.optim, list(spec.stage.players))
    shapes = jax.eval_shape(lambda k: method.init(k, batch, "train"), jax.random.key(0))
    st = tstate.create(jax.random.key(1), api._random_variables(shapes), txs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random VGG fallback
        frozen = method.frozen("train")
    step = make_train_step(method, spec.stage, txs)
    assert _generator_applies(step, st, frozen, batch) == 1
    new, metrics = jax.jit(step).lower(st, frozen, batch).compile(FAST)(st, frozen, batch)
    for key in ("disc/loss", "disc/true", "disc/fake", "gen/loss", "gen/gan", "gen/l1"):
        assert np.isfinite(float(metrics[key])), key
    np.testing.assert_allclose(metrics["disc/loss"], metrics["disc/true"] + metrics["disc/fake"], rtol=1e-6)
    np.testing.assert_allclose(metrics["gen/loss"], metrics["gen/gan"] + 0.01 * metrics["gen/l1"], rtol=1e-6)
    assert int(new.step) == 1
    out = jax.eval_shape(lambda v, b: method.predict(v, b), new.variables(), batch)
    assert out["image"].shape == batch["target_image"].shape == (2, 32, 24, 3)
