"""CASD generator: published parameter counts, region pooling, the two batch-statistics modes, energies."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptx.models import casd
from ptx.nn import norms

TINY = casd.VARIANTS["tiny"]
B, H, W = 3, 16, 16
# Not parity tests: skip LLVM's expensive passes (compiles several times faster on CPU).
FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def _inputs(b=B, h=H, w=W, seed=0):
    k = jax.random.split(jax.random.key(seed), 3)
    pose = jax.random.uniform(k[0], (b, h, w, 30))
    image = jax.random.uniform(k[1], (b, h, w, 3), minval=-1, maxval=1)
    labels = jax.random.randint(k[2], (b, h, w), 0, 8)
    return pose, image, jax.nn.one_hot(labels, 8)


def random_variables(cfg: casd.Config, inputs, seed: int = 0) -> dict:
    """Seeded N(0, 0.1) values of every variable (the attention gammas included, which init sets to 0 and
    which would leave the attention paths dead); built from eval_shape, much cheaper than compiling init."""
    shapes = jax.eval_shape(casd.Generator(cfg).init, jax.random.key(0), *inputs)
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, 0.1, s.shape), jnp.float32), shapes)


@pytest.fixture(scope="module")
def tiny():
    pose, image, parsing = inputs = _inputs()
    variables = random_variables(TINY, inputs)
    run = {}
    for mode in casd.SPADE_STATS:
        gen = casd.Generator(dataclasses.replace(TINY, spade_stats=mode))
        run[mode] = jax.jit(gen.apply).lower(variables, pose, image, parsing).compile(FAST)
    return variables, inputs, run


def test_published_parameter_counts():
    """casd_official_keys.json: 38,485,591 trainable + 20,024,384 frozen VGG19 = 58,509,975."""
    cfg = casd.VARIANTS["fashion"]
    x = [jax.ShapeDtypeStruct((1, 8, 8, c), jnp.float32) for c in (30, 3, 8)]
    shapes = jax.eval_shape(casd.Generator(cfg).init, jax.random.key(0), *x)
    assert set(shapes) == {"params", "vgg"}
    assert _count(shapes["params"]) == 38_485_591
    assert _count(shapes["vgg"]) == 20_024_384
    d = jax.eval_shape(casd.Discriminator(cfg).init, jax.random.key(0), jnp.zeros((1, 8, 8, 33)))
    assert _count(d["params"]) == 33 * 49 * 64 + 64 + 64 * 9 * 128 + 128 + 128 * 9 * 256 + 256


def test_outputs_and_shapes(tiny):
    variables, inputs, run = tiny
    out = run["batch"](variables, *inputs)
    assert out["image"].shape == (B, H, W, 3)
    assert float(jnp.abs(out["image"]).max()) <= 1.0
    for name in ("energy3", "energy4"):
        assert out[name].shape == (B, H // 4, W // 4, 8)
        assert np.isfinite(np.asarray(out[name])).all()
    assert out["style_codes"].shape == (B, 8, TINY.dim)
    assert out["content"].shape == (B, H // 4, W // 4, TINY.dim)


def test_sample_mode_is_independent_of_the_batch(tiny):
    """'sample' statistics: a sample's output is the same in any batch and equals the batch-1 original;
    'batch' statistics (the original's batched call) do depend on the other samples."""
    variables, (pose, image, parsing), run = tiny
    other = _inputs(seed=7)
    mixed = [jnp.concatenate([a[:1], b[1:]]) for a, b in zip((pose, image, parsing), other)]
    per_sample = run["sample"](variables, pose, image, parsing)["image"]
    per_sample_mixed = run["sample"](variables, *mixed)["image"]
    np.testing.assert_allclose(per_sample[0], per_sample_mixed[0], atol=1e-6)
    batched = run["batch"](variables, pose, image, parsing)["image"]
    batched_mixed = run["batch"](variables, *mixed)["image"]
    assert float(jnp.abs(batched[0] - batched_mixed[0]).max()) > 1e-4
    one = (pose[:1], image[:1], parsing[:1])
    single = (
        jax.jit(casd.Generator(TINY).apply).lower(variables, *one).compile(FAST)(variables, *one)["image"]
    )
    np.testing.assert_allclose(per_sample[0], single[0], atol=1e-5)


def test_region_pool_fallback_and_nearest_pick():
    """Top-left pixel of each 8x8 cell decides; an empty region gets the mean over the whole code map."""
    codes = jnp.arange(2 * 2 * 3, dtype=jnp.float32).reshape(1, 2, 2, 3)
    parsing = np.zeros((1, 16, 16, 3), np.float32)
    parsing[0, 0, 0, 0] = 1  # region 0: cell (0, 0) only
    parsing[0, 8, :, 1] = 1  # region 1: cells (1, 0), (1, 1)
    parsing[0, 1:8, 1:8, 2] = 1  # region 2: inside cell (0, 0) but never its top-left pixel -> empty
    pooled = np.asarray(casd.region_pool(codes, jnp.asarray(parsing)))
    c = np.asarray(codes)[0]
    np.testing.assert_allclose(pooled[0, 0], c[0, 0])
    np.testing.assert_allclose(pooled[0, 1], c[1].mean(0))
    np.testing.assert_allclose(pooled[0, 2], c.reshape(4, 3).mean(0))


def test_batch_stat_norm_groups_and_variance():
    x = np.random.default_rng(3).normal(1.0, 3.0, (4, 3, 5, 2)).astype(np.float32)
    whole = np.asarray(norms.batch_stat_norm(x))
    xs = np.asarray(x, np.float64)
    mean, var = xs.mean((0, 1, 2)), xs.var((0, 1, 2), ddof=1)
    np.testing.assert_allclose(whole, (xs - mean) / (var + 1e-6), rtol=1e-4, atol=1e-5)
    halves = np.asarray(norms.batch_stat_norm(x, group=2))
    np.testing.assert_allclose(halves[2:], np.asarray(norms.batch_stat_norm(x[2:])), atol=1e-6)
    with pytest.raises(ValueError, match="multiple"):
        norms.batch_stat_norm(x, group=3)


def test_keys_are_detached(tiny):
    """The original detaches the attention keys: no gradient reaches key convs, queries get one."""
    variables, inputs, _ = tiny
    gen = casd.Generator(TINY)

    def energy(params):
        out = gen.apply({**variables, "params": params}, *inputs)
        return jnp.sum(out["energy3"]) + jnp.sum(out["energy4"])

    grads = jax.jit(jax.grad(energy)).lower(variables["params"]).compile(FAST)(variables["params"])
    for n in casd.ATTENTION_BLOCKS:
        block = grads["dec"][f"attn{n}"]
        assert float(jnp.abs(block["key"]["kernel"]).max()) == 0.0
        assert float(jnp.abs(block["query"]["kernel"]).max()) > 0.0
