"""Def-GAN losses against plain numpy references on tiny inputs: the nearest-neighbour loss (value, gradients,
ties, the -10000 border), BCE on probabilities with epsilon, and the Keras VGG19 input quirk."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptx.losses import nearest_neighbour as nn_loss
from ptx.losses import sigmoid_bce
from ptx.nn import keras_vgg, vgg


def numpy_nn(real: np.ndarray, fake: np.ndarray, area: int):
    """Loops as the paper defines it: value map (B,H,W) and d(mean)/d(real), d(mean)/d(fake) with ties split."""
    b, h, w, c = real.shape
    p = area // 2
    padded = np.full((b, h + 2 * p, w + 2 * p, c), -10000.0)
    padded[:, p : p + h, p : p + w] = real
    value = np.zeros((b, h, w))
    g_pad, g_fake = np.zeros_like(padded), np.zeros_like(fake, dtype=np.float64)
    scale = 1.0 / (b * h * w)
    for n in range(b):
        for y in range(h):
            for x in range(w):
                d = {
                    (dy, dx): np.abs(padded[n, y + dy, x + dx] - fake[n, y, x]).sum()
                    for dy in range(area)
                    for dx in range(area)
                }
                best = min(d.values())
                value[n, y, x] = best
                winners = [k for k, v in d.items() if v == best]
                for dy, dx in winners:
                    s = np.sign(padded[n, y + dy, x + dx] - fake[n, y, x]) * scale / len(winners)
                    g_pad[n, y + dy, x + dx] += s
                    g_fake[n, y, x] -= s
    return value, g_pad[:, p : p + h, p : p + w], g_fake


@pytest.mark.parametrize("area", [3, 5])
def test_nearest_neighbour_matches_numpy(area):
    rng = np.random.default_rng(area)
    real = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
    fake = (real[:, ::-1] + 0.3 * rng.normal(size=real.shape)).astype(np.float32)
    value, g_real, g_fake = numpy_nn(real.astype(np.float64), fake.astype(np.float64), area)
    got = nn_loss.nearest_neighbour_map(jnp.asarray(real), jnp.asarray(fake), area)
    np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-5)
    loss, grads = jax.value_and_grad(nn_loss.reconstruction_loss, argnums=(0, 1))(
        jnp.asarray(real), jnp.asarray(fake), area
    )
    np.testing.assert_allclose(loss, value.mean(), rtol=1e-5)
    np.testing.assert_allclose(grads[0], g_real, atol=1e-7)
    np.testing.assert_allclose(grads[1], g_fake, atol=1e-7)


def test_ties_split_the_gradient_and_the_border_never_wins():
    real = np.zeros((1, 3, 3, 2), np.float32)
    real[0, 1, 1] = [1.0, 1.0]
    fake = np.zeros((1, 3, 3, 2), np.float32)  # every all-zero neighbour ties at distance 0
    fake[0, 1, 1] = [1.0, 1.0]  # the centre has a single exact match
    value, g_real, g_fake = numpy_nn(real.astype(np.float64), fake.astype(np.float64), 3)
    assert value.max() == 0.0
    grads = jax.grad(nn_loss.reconstruction_loss, argnums=(0, 1))(jnp.asarray(real), jnp.asarray(fake), 3)
    np.testing.assert_allclose(grads[0], g_real, atol=1e-7)
    np.testing.assert_allclose(grads[1], g_fake, atol=1e-7)
    # Zero padding would let a fake border pixel of 0 match "outside"; -10000 padding never wins.
    far = jnp.full((1, 3, 3, 1), 5.0)
    np.testing.assert_allclose(nn_loss.nearest_neighbour_map(far, jnp.zeros_like(far), 3), 5.0)


def test_area_one_is_the_channel_mean_l1():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 3, 4)).astype(np.float32), rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(nn_loss.reconstruction_loss(a, b, 1), np.abs(a - b).mean(), rtol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        nn_loss.nearest_neighbour_map(jnp.asarray(a), jnp.asarray(b), 4)


def test_nearest_neighbour_memory_is_one_shifted_copy():
    """Compiled temp memory of value+gradient stays far below the k*k stacked copies a direct version needs."""
    x = jnp.zeros((2, 64, 32, 64), jnp.float32)
    fn = jax.jit(jax.grad(lambda r, f: nn_loss.reconstruction_loss(r, f, 5), argnums=1))
    stats = fn.lower(x, x).compile().memory_analysis()
    if stats is None:
        pytest.skip("no memory analysis on this backend")
    assert stats.temp_size_in_bytes < 6 * x.nbytes  # 25 stacked copies would be 25 * x.nbytes


def test_bce_with_epsilon_matches_numpy():
    d_real = np.array([[0.9, 0.2, 1.0]], np.float32)
    d_fake = np.array([[0.0, 0.5, 1.0]], np.float32)
    np.testing.assert_allclose(sigmoid_bce.generator_loss(d_fake), -np.log(d_fake + 1e-7).mean(), rtol=1e-6)
    real, fake = sigmoid_bce.discriminator_terms(d_real, d_fake)
    np.testing.assert_allclose(real, -np.log(d_real + 1e-7).mean(), rtol=1e-6)
    np.testing.assert_allclose(fake, -np.log(1 - d_fake + 1e-7).mean(), rtol=1e-6)
    assert np.isfinite(float(sigmoid_bce.generator_loss(jnp.zeros(3))))  # saturated D: -log(1e-7), finite


def test_keras_vgg_preprocess_quirk_and_layers():
    black_red = jnp.array([[[[-1.0, -1.0, -1.0], [1.0, -1.0, -1.0]]]])  # a black and a red pixel, RGB
    out = np.asarray(keras_vgg.defgan_preprocess(black_red))
    # BGR out; the mean was subtracted in RGB order: blue gets -123.68, red -103.939.
    np.testing.assert_allclose(out[0, 0, 0], [-123.68, -116.779, -103.939], rtol=1e-6)
    np.testing.assert_allclose(out[0, 0, 1], [-123.68, -116.779, 255 - 103.939], rtol=1e-6)
    assert keras_vgg.keras_layer("block1_conv2") == "relu1_2"
    assert keras_vgg.keras_layer("block2_conv1") == "relu2_1"
    with pytest.raises(ValueError):
        keras_vgg.keras_layer("block6_conv1")


def test_load_keras_vgg19(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    names = [n.replace("relu", "block").replace("_", "_conv") for n in vgg.layer_names("vgg19")]
    path = tmp_path / keras_vgg.WEIGHT_FILE
    stored = {}
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"input_1"] + [n.encode() for n in names] + [b"block5_pool"]
        f.create_group("input_1").attrs["weight_names"] = []
        f.create_group("block5_pool").attrs["weight_names"] = []
        for n in names:
            g = f.create_group(n)
            g.attrs["weight_names"] = [f"{n}_W_1:0".encode(), f"{n}_b_1:0".encode()]  # Keras-1-era names
            stored[n] = (
                rng.normal(size=(3, 3, 2, 2)).astype(np.float32),
                rng.normal(size=2).astype(np.float32),
            )
            g.create_dataset(f"{n}_W_1:0", data=stored[n][0])
            g.create_dataset(f"{n}_b_1:0", data=stored[n][1])
    params = keras_vgg.load_keras_vgg19(path)
    assert len(params) == 16
    np.testing.assert_array_equal(params["conv2_1"]["kernel"], stored["block2_conv1"][0])
    np.testing.assert_array_equal(params["conv5_4"]["bias"], stored["block5_conv4"][1])
