"""PATN recipe on the generic train step: configs build, one step updates every player, presets switch terms."""

import dataclasses
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptx.methods import patn as recipe
from ptx.methods.protocol import Stage
from ptx.models import patn
from ptx.train import optim
from ptx.train import state as tstate
from ptx.train.step import make_train_step

CONFIGS = ("patn_fashion", "patn_market", "pssim_fashion", "pssim_market")
# Smoke tests only: skip LLVM's expensive passes (compiles ~8x faster on CPU; numerics are not checked here).
FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _fast_jit(fn, *args):
    return jax.jit(fn).lower(*args).compile(FAST)


def _batch(size, b=2, seed=0):
    rs = np.random.RandomState(seed)
    h, w = size
    kps = np.stack([rs.uniform(0, h - 1, (b, 18)), rs.uniform(0, w - 1, (b, 18))], -1).astype(np.float32)
    kps[:, 3] = -1  # a missing joint
    return {
        "source_image": rs.randint(0, 256, (b, h, w, 3)).astype(np.uint8),
        "target_image": rs.randint(0, 256, (b, h, w, 3)).astype(np.uint8),
        "source_keypoints": kps,
        "target_keypoints": kps[::-1].copy(),
    }


def _config(name, arg="tiny"):
    return importlib.import_module(f"configs.{name}").get_config(arg)


@pytest.mark.parametrize("name", CONFIGS)
def test_configs_build_every_variant(name):
    for variant in ("paper", "demo", "tiny"):
        cfg = _config(name, variant)
        method = recipe.build(cfg)
        assert method.players == ("gen", "disc_image", "disc_pose")
        assert [s.name for s in cfg.stages] == ["train"]
    paper = _config(name, "paper")
    assert (paper.model.norm == "batch") == name.endswith("market")
    assert (paper.loss.pssim > 0) == name.startswith("pssim")
    assert (paper.loss.l1 > 0) == name.startswith("patn")
    assert paper.loss.pool_size == (50 if name.endswith("market") else 0)


@pytest.fixture(scope="module")
def market_step():
    """One train step of the pSSIM-market preset (batch norm, BCE, image pool) at the smallest sizes."""
    cfg = _config("pssim_market")
    method = recipe.build(cfg)
    method.options = dataclasses.replace(method.options, pool_size=3)
    small = dataclasses.replace(method.cfg, n_downsampling=1, n_blocks_d=0)
    method.cfg, method.gen, method.disc = small, patn.Generator(small), patn.Discriminator(small)
    batch = _batch(tuple(cfg.data.image_size))
    stage = Stage("train", 1, ("gen", "disc_image", "disc_pose"))
    txs = optim.make_optimizers(cfg.optim, stage.players)
    key = jax.random.key(0)
    st = _fast_jit(lambda r, b: tstate.create(r, method.init(r, b, "train"), txs), key, batch)(key, batch)
    frozen = method.frozen("train")
    new, metrics = _fast_jit(make_train_step(method, stage, txs), st, frozen, batch)(st, frozen, batch)
    return method, batch, st, new, metrics


def test_train_step_updates_every_player(market_step):
    method, batch, st, new, metrics = market_step
    for player in ("gen", "disc_image", "disc_pose"):
        before, after = jax.tree.leaves(st.params[player]), jax.tree.leaves(new.params[player])
        assert any(not np.allclose(a, b) for a, b in zip(before, after)), player
        assert np.isfinite(float(metrics[f"{player}/loss"]))
    assert {"gen/pssim", "gen/perceptual", "gen/gan"} <= set(metrics)
    assert "gen/l1" not in metrics  # pSSIM preset: lambda_A = 0 removes the term
    assert 0.0 < float(metrics["gen/pssim"]) < 1.0
    # Running statistics and the image pools are state the losses update.
    bn = lambda s: s["gen"]["batch_stats"]["image_encoder"]["Norm_0"]["BatchNorm_0"]["mean"]  # noqa: E731
    assert not np.allclose(bn(st.state), bn(new.state))
    assert int(new.state["disc_pose"]["pool"]["count"]) == 2
    assert "vgg" not in new.state["gen"] and "vgg" not in new.params["gen"]  # frozen VGG: a step argument


def test_predict_is_deterministic_eval(market_step):
    method, batch, _, new, _ = market_step
    predict = _fast_jit(method.predict, new.variables(), batch)
    a = predict(new.variables(), batch)["image"]
    b = predict(new.variables(), batch)["image"]
    assert a.shape == batch["target_image"].shape
    np.testing.assert_array_equal(a, b)


def test_image_pool_fills_then_swaps():
    pool = {"images": jnp.zeros((2, 1)), "count": jnp.zeros((), jnp.int32)}
    out, pool = recipe.image_pool(pool, jnp.asarray([[1.0], [2.0]]), jax.random.key(0))
    np.testing.assert_array_equal(out, [[1.0], [2.0]])  # filling: images pass through and are stored
    np.testing.assert_array_equal(pool["images"], [[1.0], [2.0]])
    outs = [recipe.image_pool(pool, jnp.full((8, 1), 9.0), jax.random.key(k))[0] for k in range(3)]
    values = np.concatenate(outs).ravel()
    assert {1.0, 2.0} & set(values) and 9.0 in values  # some returned from the pool, some passed through


def test_onehot_heatmaps_and_bad_player():
    cfg = _config("patn_fashion", "tiny,heatmap=onehot")
    method = recipe.build(cfg)
    maps = method.pose_maps(jnp.asarray([[[3.0, 4.0]] + [[-1.0, -1.0]] * 17]), (8, 8))
    assert float(maps.sum()) == 1.0 and float(maps[0, 3, 4, 0]) == 1.0
    with pytest.raises(ValueError, match="players"):
        method.loss("train", "critic", {}, {}, _batch((8, 8)), {}, jax.random.key(0))
