"""Contextual (CX) loss against a float64 numpy transcription of the originals' CXLoss, and vgg_conv.pth."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptx.losses import contextual
from ptx.nn import vgg, vgg_conv


def _cx_reference(
    generated: np.ndarray, target: np.ndarray, sigma=0.5, b=1.0, centre="target_batch"
) -> float:
    """NHWC numpy, float64, step by step as ADGAN's CXLoss (NCHW dist of shape (N, P_T, H_I, W_I))."""
    i, t = generated.astype(np.float64), target.astype(np.float64)
    if centre != "none":
        mean = t.mean(axis=(0, 1, 2) if centre == "target_batch" else (1, 2), keepdims=True)
        i, t = i - mean, t - mean
    i = i / np.linalg.norm(i, axis=-1, keepdims=True)
    t = t / np.linalg.norm(t, axis=-1, keepdims=True)
    losses = []
    for n in range(len(i)):
        patches = t[n].reshape(-1, t.shape[-1])  # P_T x C
        dist = np.einsum("hwc,pc->phw", i[n], patches)  # conv2d(featureI, T patches)
        raw = (1.0 - dist) / 2.0
        rel = raw / (raw.min(axis=0, keepdims=True) + 1e-5)
        w = np.exp((b - rel) / sigma)
        cx = w / w.sum(axis=0, keepdims=True)
        losses.append(-np.log(cx.max(axis=(1, 2)).mean()))
    return float(np.mean(losses))


@pytest.fixture(scope="module")
def feats():
    rng = np.random.default_rng(0)
    relu = lambda a: np.maximum(a, 0).astype(np.float32)  # noqa: E731
    target = relu(rng.standard_normal((2, 6, 5, 8)) + 0.3)
    generated = relu(target + 0.5 * rng.standard_normal(target.shape))
    return generated, target


@pytest.mark.parametrize("centre", contextual.CENTRES)
@pytest.mark.parametrize("sigma", [0.5, 0.1])
def test_matches_numpy_reference(feats, centre, sigma):
    generated, target = feats
    got = contextual.contextual_loss(jnp.asarray(generated), jnp.asarray(target), sigma=sigma, centre=centre)
    want = _cx_reference(generated, target, sigma=sigma, centre=centre)
    np.testing.assert_allclose(float(got), want, rtol=2e-5)


def test_band_width_cancels_and_identity_is_low(feats):
    generated, target = feats
    base = _cx_reference(generated, target)
    assert _cx_reference(generated, target, b=3.0) == pytest.approx(base, rel=1e-12)
    same = float(contextual.contextual_loss(jnp.asarray(target), jnp.asarray(target)))
    assert same < base  # a copy of the target is (much) closer than a noisy one


def test_layered_sum_and_gradient(feats):
    generated, target = feats
    fg = {"relu3_2": jnp.asarray(generated), "relu4_2": jnp.asarray(generated[:, ::2, ::2])}
    ft = {"relu3_2": jnp.asarray(target), "relu4_2": jnp.asarray(target[:, ::2, ::2])}
    total = contextual.layered_contextual_loss(fg, ft, {"relu3_2": 1.0, "relu4_2": 0.5})
    want = _cx_reference(generated, target) + 0.5 * _cx_reference(generated[:, ::2, ::2], target[:, ::2, ::2])
    np.testing.assert_allclose(float(total), want, rtol=2e-5)
    grad = jax.grad(lambda g: contextual.layered_contextual_loss({"relu3_2": g}, ft, ["relu3_2"]))(
        fg["relu3_2"]
    )
    assert np.isfinite(np.asarray(grad)).all() and float(jnp.abs(grad).max()) > 0
    with pytest.raises(KeyError, match="relu5_1"):
        contextual.layered_contextual_loss(fg, ft, ["relu5_1"])
    with pytest.raises(ValueError, match="centre"):
        contextual.contextual_loss(fg["relu3_2"], ft["relu3_2"], centre="mean")


def _vgg_conv_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sd, cin = {}, 3
    for name in vgg_conv.conv_names():
        cout = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}[name[4]]
        sd[f"{name}.weight"] = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (9 * cin))).astype(
            np.float32
        )
        sd[f"{name}.bias"] = (0.1 * rng.standard_normal(cout)).astype(np.float32)
        cin = cout
    return sd


def test_vgg_conv_reader_matches_gatys_vgg():
    torch = pytest.importorskip("torch")
    sd = _vgg_conv_state_dict()
    params = vgg_conv.convert_vgg_conv(sd)
    assert sorted(params) == sorted(vgg_conv.conv_names()) and len(params) == 16
    np.testing.assert_array_equal(params["conv5_4"]["kernel"], sd["conv5_4.weight"].transpose(2, 3, 1, 0))
    x = (
        np.random.default_rng(1).uniform(-1, 1, (1, 12, 8, 3)).astype(np.float32)
    )  # raw [-1, 1] as the originals
    got = vgg.VGG("vgg19", layers=["relu3_2"]).apply({"params": params}, jnp.asarray(x))["relu3_2"]
    h = torch.from_numpy(x.transpose(0, 3, 1, 2))
    for name in ("conv1_1", "conv1_2", "pool", "conv2_1", "conv2_2", "pool", "conv3_1", "conv3_2"):
        if name == "pool":
            h = torch.nn.functional.max_pool2d(h, 2, 2)
            continue
        w, bias = (torch.from_numpy(sd[f"{name}.{k}"]) for k in ("weight", "bias"))
        h = torch.relu(torch.nn.functional.conv2d(h, w, bias, padding=1))
    np.testing.assert_allclose(np.asarray(got), h.numpy().transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)


def test_vgg_conv_reader_refuses_other_files():
    sd = _vgg_conv_state_dict()
    sd["classifier.0.weight"] = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="unexpected \\['classifier.0.weight'\\]"):
        vgg_conv.convert_vgg_conv(sd)
    del sd["classifier.0.weight"], sd["conv4_2.bias"]
    with pytest.raises(ValueError, match="missing \\['conv4_2.bias'\\]"):
        vgg_conv.convert_vgg_conv(sd)
    with pytest.raises(FileNotFoundError, match="bethgelab"):
        vgg_conv.load_vgg_conv("/nonexistent/vgg_conv.pth")
