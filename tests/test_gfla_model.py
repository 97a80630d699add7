"""ptx.models.gfla: golden parity through check_golden, parameter counts of the card, shapes, config parsing."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptx.models import gfla
from ptx.tools import check_golden


def test_check_golden_passes_on_every_gfla_fixture(golden_dir, capsys):
    files = sorted(str(p) for p in golden_dir.glob("gfla_*.npz"))
    assert any("gfla_fashion_small" in f for f in files) and any("gfla_flow_small" in f for f in files)
    assert check_golden.main([*files, "--rtol", "1e-4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    outputs = {tuple(line.split()[:2]) for line in lines}
    for name in ["image", "flow_0", "flow_1", "mask_0", "mask_1", "attn_softmax_0", "attn_softmax_1"]:
        assert ("gfla_fashion_small.npz", name) in outputs
    for name in ["flow_0", "flow_1", "mask_0", "mask_1"]:
        assert ("gfla_flow_small.npz", name) in outputs
    assert all(line.endswith(" ok") for line in lines), "\n".join(lines)
    rels = [float(re.search(r"rel (\S+)", line).group(1)) for line in lines]
    assert max(rels) < 1e-4


def random_variables(model, *inputs, seed=0, **kwargs):
    """Seeded random variables from ``jax.eval_shape`` of init: a compiled init costs far more CPU than it saves."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(model.init, jax.random.key(0), *inputs, **kwargs)
    return jax.tree.map(lambda s: jnp.asarray(0.3 * rng.normal(size=s.shape), jnp.float32), shapes)


def _count(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize(
    "preset,size,counts",
    [
        ("fashion", (256, 256), {"source": 1_434_758, "target": 6_004_425, "flow_net": 6_608_212}),
        ("market", (128, 64), {"total": 12_926_471}),
    ],
)
def test_parameter_counts_match_the_card(preset, size, counts):
    cfg = gfla.VARIANTS[preset]
    img, pose = jnp.zeros((1, *size, 3)), jnp.zeros((1, *size, 18))
    v = jax.eval_shape(gfla.PoseGenerator(cfg).init, jax.random.key(0), img, pose, pose)
    got = {k: _count(v["params"][k]) for k in counts if k != "total"} | {"total": _count(v["params"])}
    if "total" not in counts:
        counts = counts | {"total": 14_047_395}
    assert got == counts
    d = jax.eval_shape(gfla.ResDiscriminator(cfg).init, jax.random.key(0), img)
    assert _count(d["params"]) == {"fashion": 664_577, "market": 238_209}[preset]
    out = jax.eval_shape(gfla.ResDiscriminator(cfg).apply, d, img)
    assert out.shape == (1, 16, 16 if preset == "fashion" else 8, 1)


TINY = gfla.Config(ngf=4, img_f=16, attn_layer="2,3", kernel_size={"2": 3, "3": 3}, flow_ngf=4, flow_img_f=8)


@pytest.fixture(scope="module")
def tiny_run():
    rng = np.random.default_rng(0)
    src = jnp.asarray(rng.uniform(-1, 1, (2, 64, 32, 3)), jnp.float32)
    poses = jnp.asarray(rng.uniform(0, 1, (2, 2, 64, 32, 18)), jnp.float32)
    model = gfla.PoseGenerator(TINY)
    variables = random_variables(model, src, poses[0], poses[1])
    return (
        model,
        variables,
        (src, poses[0], poses[1]),
        jax.jit(model.apply)(variables, src, poses[0], poses[1]),
    )


def test_generator_outputs(tiny_run):
    _, _, _, out = tiny_run
    assert set(out) == {"image", "flows", "masks", "attn"}
    assert out["image"].shape == (2, 64, 32, 3) and out["image"].dtype == jnp.float32
    assert float(jnp.max(jnp.abs(out["image"]))) <= 1.0
    assert [f.shape for f in out["flows"]] == [(2, 8, 4, 2), (2, 16, 8, 2)]  # deepest first
    assert [m.shape for m in out["masks"]] == [(2, 8, 4, 1), (2, 16, 8, 1)]
    assert [a.shape for a in out["attn"]] == [(2, 8, 4, 9), (2, 16, 8, 9)]
    for a in out["attn"]:
        np.testing.assert_allclose(jnp.sum(a, -1), 1.0, rtol=1e-5)
    for m in out["masks"]:
        assert float(m.min()) > 0 and float(m.max()) < 1


def test_stage1_flow_net_in_bfloat16(tiny_run):
    # The stage-1 model reads the generator's flow_net subtree as is; bf16 compute stays close to f32.
    _, variables, inputs, out = tiny_run
    stage1 = gfla.PoseFlowNetGenerator(dataclasses.replace(TINY, dtype="bfloat16"))
    got = jax.jit(stage1.apply)({"params": {"flow_net": variables["params"]["flow_net"]}}, *inputs)
    for g, want in zip(got["flows"] + got["masks"], out["flows"] + out["masks"]):
        assert g.dtype == jnp.float32 and g.shape == want.shape
        scale = float(jnp.max(jnp.abs(want)))
        assert float(jnp.max(jnp.abs(g - want))) < 0.05 * scale


@pytest.mark.slow
def test_generator_in_bfloat16(tiny_run):
    model, variables, inputs, out = tiny_run
    bf = gfla.PoseGenerator(dataclasses.replace(TINY, dtype="bfloat16"))
    got = jax.jit(bf.apply)(variables, *inputs)
    assert got["image"].dtype == jnp.float32
    # bf16 keeps ~3 significant digits; through ~40 layers of random weights the image moves by ~1e-2 rms.
    err = got["image"] - out["image"]
    assert float(jnp.sqrt(jnp.mean(err**2))) < 0.03 and float(jnp.max(jnp.abs(err))) < 0.3


def test_patch_pair_conv_equals_the_originals_strided_conv_over_the_block_image():
    # fully_connect_layer.0 of the original: a k x k, stride-k conv over the block image of
    # concat([target blocks at zero flow, source blocks]); PatchPairConv computes it without that image.
    rng = np.random.default_rng(2)
    for k in (3, 4):
        target = jnp.asarray(rng.normal(size=(2, 5, 4, 3)), jnp.float32)
        source = jnp.asarray(rng.normal(size=(2, 6, 7, 3)), jnp.float32)
        flow = jnp.asarray(rng.normal(size=(2, 5, 4, 2)) * 2, jnp.float32)
        src_blocks = gfla.ops.extract_blocks(source, flow, k)
        conv = gfla.PatchPairConv(8)
        params = conv.init(jax.random.key(0), target, src_blocks)
        tgt_blocks = gfla.ops.extract_blocks(target, jnp.zeros_like(flow), k)
        image = gfla.ops.blocks_to_image(jnp.concatenate([tgt_blocks, src_blocks], axis=-1))
        want = gfla.layers.Conv2d(8, k, k, 0).apply(params, image)
        np.testing.assert_allclose(conv.apply(params, target, src_blocks), want, rtol=1e-5, atol=1e-5)


def test_local_attention_is_a_mean_over_taps():
    # A constant source gives c / k^2 whatever the flow and weights: the original averages the k*k taps.
    attn = gfla.ExtractorAttn(kernel_size=3, hidden=8)
    src = jnp.full((1, 6, 5, 2), 3.0)
    tgt = jnp.asarray(np.random.default_rng(0).normal(size=(1, 6, 5, 2)), jnp.float32)
    flow = jnp.asarray(np.random.default_rng(1).normal(scale=4, size=(1, 6, 5, 2)), jnp.float32)
    out, weights = jax.jit(attn.apply)(random_variables(attn, src, tgt, flow), src, tgt, flow)
    np.testing.assert_allclose(out, 3.0 / 9, rtol=1e-5)
    assert weights.shape == (1, 6, 5, 9)


def test_config_parsing_and_errors():
    cfg = gfla.Config(attn_layer="3,2", kernel_size="2=5,3=3", activation="LeakyReLU")
    assert cfg.attn_layer == (2, 3) and cfg.kernel_sizes == {2: 5, 3: 3} and cfg.attn_order == (3, 2)
    assert cfg == gfla.VARIANTS["fashion"]
    assert gfla.Config(attn_layer=[2], kernel_size={"2": 3}, disc_layers=3) == gfla.VARIANTS["market"]
    with pytest.raises(ValueError, match="no window"):
        gfla.Config(attn_layer=(1, 2), kernel_size="2=3")
    with pytest.raises(ValueError, match="must lie in"):
        gfla.Config(attn_layer=(4,), kernel_size="4=3")
    with pytest.raises(ValueError, match="norm"):
        gfla.Config(norm="batch")
    with pytest.raises(ValueError, match="multiples of 32"):
        model = gfla.PoseGenerator(gfla.Config())
        jax.eval_shape(
            model.init, jax.random.key(0), jnp.zeros((1, 256, 176, 3)), *[jnp.zeros((1, 256, 176, 18))] * 2
        )


def test_discriminator_power_iteration_updates_state():
    cfg = gfla.Config(disc_ndf=4, disc_img_f=8, disc_layers=2)
    d = gfla.ResDiscriminator(cfg)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 16, 3)), jnp.float32)
    v = random_variables(d, x)
    assert set(v) == {"params", "spectral"}
    eval_out = jax.jit(d.apply)(v, x)
    train = jax.jit(lambda v, x: d.apply(v, x, update_stats=True, mutable=["spectral"]))
    train_out, new = train(v, x)
    assert eval_out.shape == train_out.shape == (2, 4, 4, 1)
    assert not np.allclose(new["spectral"]["block0"]["conv1"]["u"], v["spectral"]["block0"]["conv1"]["u"])
