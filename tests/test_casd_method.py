"""CASD recipe pieces: region merge on device, the 30-channel pose input, AMCE against PyTorch, predict outputs,
the contextual term (value, weight, vgg_conv.pth resolution). (Every (stage, player) loss of the tiny config is run by tests/test_method_contract.py.)"""

import importlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import casd_fashion
from ptx import api
from ptx.data import parsing as lip
from ptx.losses import segmentation
from ptx.methods import casd
from ptx.nn import vgg, vgg_conv


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


def _batch(h: int, w: int, b: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "source_image": rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8),
        "target_image": rng.integers(0, 256, (b, h, w, 3), dtype=np.uint8),
        "source_keypoints": rng.uniform(0, h - 1, (b, 18, 2)).astype(np.float32),
        "target_keypoints": rng.uniform(0, h - 1, (b, 18, 2)).astype(np.float32),
        "source_parsing": rng.integers(0, 20, (b, h, w), dtype=np.uint8),
        "target_parsing": rng.integers(0, 20, (b, h, w), dtype=np.uint8),
    }


def _cx_numpy(gen: np.ndarray, tgt: np.ndarray, sigma: float = 0.5, b: float = 1.0) -> float:
    """float64 CX as the card's section 5 words it (batch+space target-mean centring, b kept in)."""
    mean = tgt.astype(np.float64).mean(axis=(0, 1, 2))
    gen, tgt = gen - mean, tgt - mean
    gen = (gen / np.linalg.norm(gen, axis=-1, keepdims=True)).reshape(len(gen), -1, gen.shape[-1])
    tgt = (tgt / np.linalg.norm(tgt, axis=-1, keepdims=True)).reshape(len(tgt), -1, tgt.shape[-1])
    d = (1 - np.einsum("nic,njc->nij", gen, tgt)) / 2  # i generated, j target
    rel = d / (d.min(axis=2, keepdims=True) + 1e-5)
    w = np.exp((b - rel) / sigma)
    cx = (w / w.sum(axis=2, keepdims=True)).max(axis=1).mean(axis=1)
    return float(np.mean(-np.log(cx)))


@pytest.fixture(scope="module")
def cx_images():
    rng = np.random.default_rng(3)
    target = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    fake = np.clip(target + 0.3 * rng.standard_normal(target.shape), -1, 1).astype(np.float32)
    return jnp.asarray(fake), jnp.asarray(target)


def test_contextual_term_is_cx_on_vgg_conv_r32_r42(tiny_method, cx_images):
    method, _ = tiny_method
    frozen = method.frozen()
    assert set(frozen["vgg_conv"]) == {f"conv{b}_{i}" for b, i in [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2),
                                                                   (3, 3), (3, 4), (4, 1), (4, 2)]}  # fmt: skip
    fake, target = cx_images
    term = jax.jit(method.contextual_term)
    got = float(term(frozen, fake, target))
    net = vgg.VGG("vgg19", layers=("relu3_2", "relu4_2"))
    features = jax.jit(lambda x: net.apply({"params": frozen["vgg_conv"]}, x))
    f_fake, f_real = features(fake), features(target)  # raw [-1, 1]: no ImageNet normalisation
    want = sum(_cx_numpy(np.asarray(f_fake[k]), np.asarray(f_real[k])) for k in ("relu3_2", "relu4_2"))
    np.testing.assert_allclose(got, want, rtol=1e-4)
    same = float(term(frozen, target, target))
    assert np.isfinite(got) and same < got  # the target itself is closer than a noisy copy
    g = jax.jit(jax.grad(lambda f: method.contextual_term(frozen, f, target)))(fake)
    assert float(jnp.abs(g).max()) > 0


def test_contextual_in_the_generator_loss_with_its_weight(tiny_method):
    method, config = tiny_method
    assert method.weights["contextual"] == pytest.approx(0.1)
    h, w = config.data.image_size
    batch = _batch(h, w)
    shapes = jax.eval_shape(lambda k: method.init(k, batch), jax.random.key(0))
    variables = api._random_variables(shapes)  # host draws: XLA's CPU initialisers take minutes
    frozen = method.frozen()
    key = jax.random.key(1)

    def gen_loss(variables, batch):
        outputs, _ = method.forward("train", variables, frozen, batch, key)
        return method.loss("train", "gen", variables, frozen, batch, outputs, key)

    fast = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
    total, (terms, _) = jax.jit(gen_loss).lower(variables, batch).compile(fast)(variables, batch)
    cx = float(terms["contextual"])
    assert np.isfinite(cx) and cx > 0
    others = sum(method.weights[k] * float(v) for k, v in terms.items() if k != "contextual")
    np.testing.assert_allclose(float(total) - others, 0.1 * cx, rtol=1e-4, atol=1e-6)
    config = casd_fashion.get_config("tiny")  # a fresh one: the fixture's config stays as built
    with config.unlocked():
        config.loss.contextual = 0.0
    assert "vgg_conv" not in casd.build(config).frozen()  # a zero weight removes the term and its network


def _cx_only(**top):
    config = casd_fashion.get_config("tiny")
    with config.unlocked():
        config.loss.update(perceptual=0.0, content=0.0, style=0.0)
        for k, v in top.items():
            setattr(config, k, v)
    return casd.build(config)


def test_vgg_conv_path_fallback_and_error(tmp_path, monkeypatch):
    missing = str(tmp_path / "nowhere" / "vgg_conv.pth")
    with pytest.raises(FileNotFoundError, match="vgg_conv.pth.*nowhere"):
        _cx_only(vgg_conv_path=missing, vgg_fallback_random=False).frozen()
    with pytest.warns(UserWarning, match="vgg_conv.pth not found"):
        random = _cx_only(vgg_conv_path=missing).frozen()["vgg_conv"]
    present = tmp_path / "vgg_conv.pth"
    present.write_bytes(b"")
    loaded = {n: {"kernel": np.full((3, 3, 1, 1), i, np.float32), "bias": np.zeros(1, np.float32)}
              for i, n in enumerate(vgg_conv.conv_names())}  # fmt: skip
    monkeypatch.setattr(vgg_conv, "load_vgg_conv", lambda p: loaded if p == str(present) else None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file that is there: no fallback warning
        got = _cx_only(vgg_conv_path=str(present), vgg_fallback_random=False).frozen()["vgg_conv"]
    assert got["conv4_2"]["kernel"][0, 0, 0, 0] == vgg_conv.conv_names().index("conv4_2")
    assert "conv4_3" not in got and random["conv1_1"]["kernel"].shape == (3, 3, 3, 64)


def test_lpips_files_or_random_fallback(tmp_path):
    missing = str(tmp_path / "vgg16-397923af.pth")
    with pytest.raises(FileNotFoundError, match="LPIPS-vgg trunk"):
        _cx_only(vgg_fallback_random=False, lpips_trunk_path=missing)._lpips()
    with pytest.warns(UserWarning, match="seeded random VGG16"):
        params = _cx_only(lpips_trunk_path=missing)._lpips()
    assert params["net"]["conv5_3"]["kernel"].shape == (3, 3, 512, 512)
    assert [params[f"lin{i}"].shape[0] for i in range(5)] == [64, 128, 256, 512, 512]


def test_registered():
    from ptx import registry

    assert registry.get_method("casd") is importlib.import_module("ptx.methods.casd")
