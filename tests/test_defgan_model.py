"""Def-GAN networks: keras-contrib instance norm, element-wise dropout, depth rule and full-size parameter counts,
the three warp_skip modes, the discriminator's patch grid, and the 256x176 frame helpers.

Numerical parity with the original (``defgan_market_small``) is in ``test_convert_defgan.py``.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptx.models import defgan
from ptx.nn.keras_norm import KerasInstanceNorm
from ptx.ops import affine

TINY = defgan.VARIANTS["tiny"]
# Tiny shapes: skip LLVM's expensive passes (compiles ~7x faster than eager op-by-op here; values are checked
# against simple facts only, parity lives in the goldens).
FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def run_fast(fn, *args):
    return jax.jit(fn).lower(*args).compile(FAST)(*args)


def n_params(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def abstract_init(cfg: defgan.Config, role: str):
    h, w = cfg.image_size
    img = jax.ShapeDtypeStruct((1, h, w, 3), jnp.float32)
    pose = jax.ShapeDtypeStruct((1, h, w, 18), jnp.float32)
    if role == "disc":
        return jax.eval_shape(defgan.Discriminator(cfg).init, jax.random.key(0), img, pose, img, pose)
    t = cfg.num_transforms
    tr = jax.ShapeDtypeStruct((1, t, 8), jnp.float32) if t else None
    masks = jax.ShapeDtypeStruct((1, t, h, w), jnp.float32) if cfg.warp_skip == "mask" else None
    return jax.eval_shape(defgan.Generator(cfg).init, jax.random.key(0), img, pose, pose, tr, masks)


@pytest.fixture(scope="module")
def tiny_batch():
    """Two 32x16 pairs with real part geometry (keypoints scaled from the affine fixture's 128x64 poses)."""
    rng = np.random.default_rng(0)
    h, w = TINY.image_size
    kp_from = np.array([[[30, 20], [40, 22], [40, 14], [60, 12], [80, 10], [40, 30], [60, 32], [80, 34], [84, 16],
                         [104, 16], [124, 16], [84, 28], [104, 28], [124, 28], [26, 24], [26, 18], [28, 27], [28, 13]]],
                       np.float32)  # fmt: skip
    kp_from = np.concatenate([kp_from, kp_from + [[0, 2]]]) / 4
    kp_to = kp_from[::-1] + [[1, -1]]
    warp = affine.batch_warp_inputs(kp_from, kp_to, (h, w))
    return {
        "source": jnp.asarray(rng.uniform(-1, 1, (2, h, w, 3)), jnp.float32),
        "source_pose": jnp.asarray(rng.uniform(0, 1, (2, h, w, 18)), jnp.float32),
        "target_pose": jnp.asarray(rng.uniform(0, 1, (2, h, w, 18)), jnp.float32),
        "transforms": jnp.asarray(warp["transforms"]),
        "masks": jnp.asarray(warp["masks"]),
        "transforms_full": jnp.asarray(
            affine.batch_warp_inputs(kp_from, kp_to, (h, w), "full")["transforms"]
        ),
    }


# ------------------------------------------------------------------------------------------------------------
# Instance norm.


@pytest.mark.parametrize("formula", ["keras", "torch"])
def test_keras_instance_norm_formula(formula):
    x = (
        np.random.default_rng(1).normal(2.0, 0.05, (2, 3, 4, 5)).astype(np.float32)
    )  # small std: formulas differ
    variables = {"params": {"scale": jnp.array([1.5]), "bias": jnp.array([-0.25])}}
    got = KerasInstanceNorm(formula).apply(variables, jnp.asarray(x))
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = x.std(axis=(1, 2, 3), keepdims=True)
    denom = std + 1e-3 if formula == "keras" else np.sqrt(std**2 + 1e-3)
    np.testing.assert_allclose(got, (x - mean) / denom * 1.5 - 0.25, rtol=2e-5, atol=2e-5)
    other = KerasInstanceNorm("torch" if formula == "keras" else "keras").apply(variables, jnp.asarray(x))
    assert np.max(np.abs(np.asarray(other) - np.asarray(got))) > 0.1  # the formulas really differ here


# ------------------------------------------------------------------------------------------------------------
# Structure: depth rule, parameter counts of the official networks.


def test_depth_rule_and_official_parameter_counts(golden_dir):
    official = json.loads((golden_dir / "defgan_official_keys.json").read_text())
    market, fashion = defgan.VARIANTS["market"], defgan.VARIANTS["fashion"]
    assert len(market.encoder) == 6 and len(fashion.encoder) == 7
    assert n_params(abstract_init(market, "gen")) == official["generator_market_128x64_num_params"]
    assert n_params(abstract_init(fashion, "gen")) == official["generator_fashion_256x256_num_params"]
    assert n_params(abstract_init(market, "disc")) == official["discriminator_num_params"]


def test_discriminator_patch_grid():
    for cfg, patches in ((defgan.VARIANTS["market"], 3), (defgan.VARIANTS["fashion"], 49)):
        h, w = cfg.image_size
        img, pose = jnp.zeros((2, h, w, 3)), jnp.zeros((2, h, w, 18))
        variables = abstract_init(cfg, "disc")
        out = jax.eval_shape(defgan.Discriminator(cfg).apply, variables, img, pose, img, pose)
        assert out.shape == (2, patches)
    first = variables["params"]["Conv2d_0"]
    assert first["kernel"].shape == (4, 4, 42, 64) and first["bias"].shape == (64,)


def test_config_validation():
    with pytest.raises(ValueError, match="divisible by 64"):
        defgan.Config(image_size=(256, 176))
    with pytest.raises(ValueError, match="warp_agg must be 'max'"):
        defgan.Config(warp_skip="full", warp_agg="avg")
    with pytest.raises(ValueError, match="at least 4"):
        defgan.Config(image_size=(16, 8), encoder_filters=(4, 4, 4), decoder_filters=(4, 4, 3))


# ------------------------------------------------------------------------------------------------------------
# Forward passes of the three warp_skip modes and dropout.


@pytest.mark.parametrize(
    "warp_skip,warp_agg", [("mask", "max"), ("mask", "avg"), ("full", "max"), ("none", "max")]
)
def test_generator_modes(tiny_batch, warp_skip, warp_agg):
    cfg = defgan.Config(**{**TINY.__dict__, "warp_skip": warp_skip, "warp_agg": warp_agg})
    b = tiny_batch
    tr = {"mask": b["transforms"], "full": b["transforms_full"], "none": None}[warp_skip]
    masks = b["masks"] if warp_skip == "mask" else None
    args = (b["source"], b["source_pose"], b["target_pose"], tr, masks)
    gen = defgan.Generator(cfg)
    variables = run_fast(gen.init, jax.random.key(0), *args)
    out, inter = run_fast(lambda v, *a: gen.apply(v, *a, mutable=["intermediates"]), variables, *args)
    assert out["image"].shape == (2, 32, 16, 3)
    assert np.all(np.abs(np.asarray(out["image"])) <= 1)
    skips = [inter["intermediates"][f"skip_{i}"][0] for i in range(4)]
    doubled = 1 if warp_skip == "none" else 2
    assert [s.shape[-1] for s in skips] == [doubled * c for c in cfg.encoder]
    assert ("encoder" in variables["params"]) == (warp_skip == "none")


def test_missing_warp_inputs_raise(tiny_batch):
    b = tiny_batch
    gen = defgan.Generator(TINY)
    with pytest.raises(ValueError, match="needs masks"):
        jax.eval_shape(
            gen.init, jax.random.key(0), b["source"], b["source_pose"], b["target_pose"], b["transforms"]
        )


def test_dropout_is_elementwise_in_the_first_three_decoder_blocks(tiny_batch):
    b = tiny_batch
    args = (b["source"], b["source_pose"], b["target_pose"], b["transforms"], b["masks"])
    gen = defgan.Generator(TINY)
    variables = run_fast(gen.init, jax.random.key(0), *args)

    def run(key, train):
        return gen.apply(variables, *args, train=train, rngs={"dropout": key})["image"]

    evaluated = run_fast(lambda k: run(k, False), jax.random.key(0))
    train = jax.jit(lambda k: run(k, True)).lower(jax.random.key(0)).compile(FAST)
    samples = [train(jax.random.key(k)) for k in (1, 2)]
    assert not np.allclose(samples[0], samples[1]) and not np.allclose(samples[0], evaluated)
    # Where dropout sits: traced (not compiled) on 5 levels, so a fourth up block exists and has none.
    five = defgan.Config(
        **{**TINY.__dict__, "encoder_filters": (4, 8, 8, 8, 8), "decoder_filters": (8, 8, 8, 4, 3)}
    )
    gen5 = defgan.Generator(five)
    variables5 = jax.eval_shape(gen5.init, jax.random.key(0), *args)
    jaxpr = str(jax.make_jaxpr(lambda v, k: gen5.apply(v, *args, train=True, rngs={"dropout": k}))(
        variables5, jax.random.key(1)))  # fmt: skip
    assert jaxpr.count("random_bits") == 3  # decoder blocks 0, 1, 2 only

    block = defgan.Block(6, down=False, dropout=True, leaky=False)
    x = jnp.ones((1, 8, 8, 3))
    bv = block.init(jax.random.key(0), x)
    y = np.asarray(block.apply(bv, x, train=True, rngs={"dropout": jax.random.key(3)}))
    y_eval = np.asarray(block.apply(bv, x))
    dropped = (y == 0) & (y_eval != 0)
    per_channel = dropped.reshape(-1, 6).mean(axis=0)
    assert 0.3 < dropped.mean() < 0.7
    assert np.all((per_channel > 0) & (per_channel < 1))  # element-wise, not whole channels (Dropout2d)
    kept = ~dropped & (y_eval != 0)
    np.testing.assert_allclose(y[kept], 2 * y_eval[kept], rtol=1e-6)


# ------------------------------------------------------------------------------------------------------------
# 256x176 data in the 256x256 frame.


def test_frame_helpers_round_trip():
    x = jnp.asarray(np.random.default_rng(2).uniform(size=(1, 256, 176, 3)), jnp.float32)
    framed = defgan.pad_to_frame(x, (256, 256))
    assert framed.shape == (1, 256, 256, 3)
    np.testing.assert_array_equal(framed[:, :, :40], np.broadcast_to(x[:, :, :1], (1, 256, 40, 3)))
    np.testing.assert_array_equal(defgan.crop_from_frame(framed, (256, 176)), x)
    kp = np.array([[10.0, 5.0], [-1.0, -1.0]] + [[3.0, 170.0]] * 16, np.float32)
    moved = defgan.keypoints_to_frame(kp, (256, 176), (256, 256))
    np.testing.assert_array_equal(moved[0], [10, 45])
    np.testing.assert_array_equal(moved[1], [-1, -1])
    np.testing.assert_array_equal(moved[2], [3, 210])
    np.testing.assert_array_equal(defgan.keypoints_to_frame(jnp.asarray(kp), (256, 176), (256, 256)), moved)
    with pytest.raises(ValueError, match="cannot be centred"):
        defgan.frame_offset((256, 175), (256, 256))
