"""PATN generator / discriminator: sizes, parameter counts of the published models, train/eval switches."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptx.models import patn

TINY = dataclasses.replace(patn.VARIANTS["market_tiny"], ngf=4, ndf=4)
H, W = 32, 16
# Not parity tests: skip LLVM's expensive passes (compiles ~8x faster on CPU).
FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _fast_jit(fn, *args):
    return jax.jit(fn).lower(*args).compile(FAST)


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def tiny():
    gen = patn.Generator(TINY)
    image = jax.random.uniform(jax.random.key(1), (2, H, W, 3), minval=-1, maxval=1)
    pose = jax.random.uniform(jax.random.key(2), (2, H, W, 36))
    variables = _fast_jit(gen.init, jax.random.key(0), image, pose)(jax.random.key(0), image, pose)
    return gen, variables, image, pose


@pytest.mark.parametrize(
    "variant,gen_count,d_counts",
    [("fashion", 41_358_019, (3_975_424, 3_928_384)), ("market", 41_365_763, (3_977_408, 3_930_368))],
)
def test_published_parameter_counts(variant, gen_count, d_counts):
    cfg = patn.VARIANTS[variant]
    img, pose = (
        jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32),
        jax.ShapeDtypeStruct((1, 16, 16, 36), jnp.float32),
    )
    shapes = jax.eval_shape(lambda a, b: patn.Generator(cfg).init(jax.random.key(0), a, b), img, pose)
    assert _count(shapes["params"]) == gen_count
    for channels, want in zip((21, 6), d_counts):
        x = jax.ShapeDtypeStruct((1, 16, 16, channels), jnp.float32)
        d = jax.eval_shape(lambda a: patn.Discriminator(cfg).init(jax.random.key(0), a), x)
        assert _count(d["params"]) == want


def test_eval_output_and_intermediates(tiny):
    gen, variables, image, pose = tiny
    out, state = _fast_jit(lambda v: gen.apply(v, image, pose, mutable=["intermediates"]), variables)(
        variables
    )
    assert out["image"].shape == (2, H, W, 3)
    assert float(jnp.abs(out["image"]).max()) <= 1.0
    inter = state["intermediates"]
    assert inter["block1_att"][0].shape == (2, H // 4, W // 4, 16)
    assert inter["last_x2_cat"][0].shape == (2, H // 4, W // 4, 32)
    att = inter["block0_att"][0]
    assert float(att.min()) >= 0.0 and float(att.max()) <= 1.0


def test_train_mode_dropout_and_batch_stats(tiny):
    gen, variables, image, pose = tiny
    run = _fast_jit(
        lambda v, r: gen.apply(v, image, pose, train=True, rngs={"dropout": r}, mutable=["batch_stats"]),
        variables,
        jax.random.key(3),
    )
    a, new_state = run(variables, jax.random.key(3))
    b, _ = run(variables, jax.random.key(4))
    assert not np.allclose(a["image"], b["image"])  # dropout active, rng-dependent
    old = variables["batch_stats"]["image_encoder"]["Norm_0"]["BatchNorm_0"]["mean"]
    new = new_state["batch_stats"]["image_encoder"]["Norm_0"]["BatchNorm_0"]["mean"]
    assert not np.allclose(old, new)  # running statistics moved
    apply = _fast_jit(gen.apply, variables, image, pose)
    e1, e2 = apply(variables, image, pose)["image"], apply(variables, image, pose)["image"]
    np.testing.assert_array_equal(e1, e2)  # eval is deterministic and needs no rng


def test_instance_norm_zero_padding_no_dropout_variant():
    cfg = dataclasses.replace(TINY, norm="instance", padding_type="zero", use_dropout=False, n_downsampling=1)
    gen = patn.Generator(cfg)
    image, pose = jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 8, 36))
    variables = _fast_jit(gen.init, jax.random.key(0), image, pose)(jax.random.key(0), image, pose)
    assert "batch_stats" not in variables
    # Instance norm -> biased convs; the 2*dim pose-stream conv of later blocks
    blk = variables["params"]["block_1"]["pose"]
    assert blk["PadConv_0"]["Conv2d_0"]["kernel"].shape == (3, 3, 16, 16)
    assert blk["PadConv_1"]["Conv2d_0"]["kernel"].shape == (3, 3, 16, 8)
    assert "bias" in blk["PadConv_0"]["Conv2d_0"]
    out = _fast_jit(lambda v: gen.apply(v, image, pose, train=True), variables)(variables)
    assert out["image"].shape == (1, 8, 8, 3)


def test_discriminator_output_map():
    d = patn.Discriminator(TINY)
    x = jnp.ones((2, H, W, 6))
    v = _fast_jit(d.init, jax.random.key(0), x)(jax.random.key(0), x)
    assert _fast_jit(d.apply, v, x)(v, x).shape == (
        2,
        H // 4,
        W // 4,
        16,
    )  # no 1-channel head (card section 2)
    d3 = patn.Discriminator(dataclasses.replace(TINY, n_downsampling_d=3))
    v3 = _fast_jit(d3.init, jax.random.key(0), x)(jax.random.key(0), x)
    assert _fast_jit(d3.apply, v3, x)(v3, x).shape == (
        2,
        H // 8,
        W // 8,
        16,
    )  # third downsampling keeps 4*ndf


def test_bad_inputs_raise_clear_errors(tiny):
    gen, variables, image, pose = tiny
    with pytest.raises(ValueError, match="36 channels"):
        gen.apply(variables, image, pose[..., :18])
    with pytest.raises(ValueError, match="multiples of 4"):
        gen.apply(variables, image[:, :30], pose[:, :30])
    with pytest.raises(ValueError, match="norm"):
        patn.Config(norm="group")
