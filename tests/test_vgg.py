"""ptx.nn.vgg: torchvision names, conversion, early stop, weight loading errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptx.nn import vgg


def test_torchvision_indices_match_features_layout():
    idx = vgg.torchvision_indices("vgg19")
    assert idx["conv1_1"] == 0 and idx["conv1_2"] == 2 and idx["conv2_1"] == 5
    assert idx["conv3_4"] == 16 and idx["conv4_1"] == 19 and idx["conv5_4"] == 34
    idx16 = vgg.torchvision_indices("vgg16")
    assert idx16["conv5_3"] == 28 and idx16["conv4_3"] == 21 and len(idx16) == 13
    assert vgg.layer_names("vgg16")[-1] == "relu5_3"


def _torch_state_dict(arch, seed=0):
    rs = np.random.RandomState(seed)
    sd, cin = {}, 3
    for name, idx in vgg.torchvision_indices(arch).items():
        cout = vgg._WIDTHS[int(name[4]) - 1]
        w = rs.standard_normal((cout, cin, 3, 3)) * np.sqrt(2 / (9 * cin))
        sd[f"features.{idx}.weight"] = w.astype(np.float32)
        sd[f"features.{idx}.bias"] = (0.1 * rs.standard_normal(cout)).astype(np.float32)
        cin = cout
    sd["classifier.0.weight"] = np.zeros((4, 4), np.float32)  # ignored
    return sd


@pytest.mark.parametrize("arch", ["vgg16", "vgg19"])
def test_matches_torch_reference(arch):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    sd = _torch_state_dict(arch)
    x = np.random.RandomState(1).standard_normal((1, 3, 16, 24)).astype(np.float32)
    # Reference: the torchvision features trunk rebuilt from plain torch ops.
    taps, h = {}, torch.from_numpy(x)
    idx = vgg.torchvision_indices(arch)
    for conv, i in idx.items():
        if conv.endswith("_1") and conv != "conv1_1":
            h = torch.nn.functional.max_pool2d(h, 2)
        w, b = torch.from_numpy(sd[f"features.{i}.weight"]), torch.from_numpy(sd[f"features.{i}.bias"])
        h = torch.relu(torch.nn.functional.conv2d(h, w, b, padding=1))
        taps["relu" + conv[4:]] = h.numpy()
    params = vgg.convert_torchvision(sd)  # arch inferred
    assert set(params) == set(idx)
    out = vgg.VGG(arch).apply({"params": params}, jnp.asarray(x.transpose(0, 2, 3, 1)))
    assert set(out) == set(taps)
    for name, ref in taps.items():
        got = np.asarray(out[name]).transpose(0, 3, 1, 2)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max(), err_msg=name)


def test_early_stop_builds_only_needed_convs():
    model = vgg.VGG("vgg19", layers=("relu1_2",))
    params = model.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
    assert sorted(params) == ["conv1_1", "conv1_2"]
    out = model.apply({"params": params}, jnp.ones((1, 16, 16, 3)))
    assert list(out) == ["relu1_2"] and out["relu1_2"].shape == (1, 16, 16, 64)
    with pytest.raises(ValueError, match="relu5_4"):
        vgg.VGG("vgg16", layers=("relu5_4",)).init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))


def test_load_vgg_random_and_missing_file(tmp_path):
    with pytest.warns(UserWarning, match="vgg19-dcbb9e9d.pth"):
        p = vgg.load_vgg(None, "vgg19", seed=3)
    k = np.asarray(p["conv5_4"]["kernel"])
    assert k.shape == (3, 3, 512, 512) and abs(k.std() - np.sqrt(2 / (9 * 512))) < 1e-3  # He-normal
    again = np.random.RandomState(3).standard_normal((3, 3, 3, 64)) * np.sqrt(2 / 27)  # seeded: first layer
    np.testing.assert_allclose(p["conv1_1"]["kernel"], again, rtol=1e-6)
    with pytest.raises(FileNotFoundError, match="vgg16-397923af.pth.*download.pytorch.org"):
        vgg.load_vgg(tmp_path / "nope.pth", "vgg16")
    with pytest.raises(KeyError, match="features.34"):
        sd = _torch_state_dict("vgg19")
        del sd["features.34.bias"]
        vgg.convert_torchvision(sd, "vgg19")


def test_imagenet_normalize():
    x = jnp.array([[-1.0, 0.0, 1.0]])
    y = vgg.imagenet_normalize(x)
    ref = [[(0 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (1 - 0.406) / 0.225]]
    np.testing.assert_allclose(y, ref, rtol=1e-6)
