"""LPIPS v0.1 alex / vgg against the lpips-package golden (real lin weights, regenerated random trunks)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptx.evaluate import lpips as L


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_matches_golden(golden_dir, metrics_random_weights, net):
    meta = json.loads((golden_dir / f"metrics_lpips_{net}.json").read_text())
    g = dict(np.load(golden_dir / f"metrics_lpips_{net}.npz"))
    rw = metrics_random_weights
    trunk = rw.make_state_dict(
        meta["full_keys_and_shapes"], meta["trunk"]["base_seed"], skip=lambda k: not k.startswith("net.")
    )
    for key, (s, a) in meta["trunk"]["checksums_float64_sum_abssum"].items():
        np.testing.assert_allclose(rw.checksum(trunk[key]), [s, a], rtol=1e-9)
    np.testing.assert_allclose(g["param/scaling_layer.shift"].ravel(), L.SHIFT, atol=1e-7)
    np.testing.assert_allclose(g["param/scaling_layer.scale"].ravel(), L.SCALE, atol=1e-7)
    lin = {k.removeprefix("param/"): v for k, v in g.items() if k.startswith("param/lin")}
    params = L.convert(lin, trunk, net)  # same code path as the real files (net.sliceK.N names)

    x0 = jnp.asarray(g["input/in0"].transpose(0, 2, 3, 1))
    x1 = jnp.asarray(g["input/in1"].transpose(0, 2, 3, 1))
    fn = jax.jit(lambda p, a, b: L.LPIPS(net).apply({"params": p}, a, b, per_layer=True))
    total, terms = fn(params, x0, x1)
    np.testing.assert_allclose(np.asarray(total), g["output/lpips"], atol=1e-6, rtol=1e-4)
    for i, t in enumerate(terms):
        np.testing.assert_allclose(np.asarray(t), g[f"output/lpips_layer{i}"], atol=1e-6, rtol=1e-4)
    assert float(total[0]) < 1e-6 < float(total[-1])  # pair 0 identical, pair 5 unrelated


def test_missing_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="alexnet-owt-7be5be79.pth.*download.pytorch.org"):
        L.load_lpips("alex", tmp_path / "none.pth", tmp_path / "lin.pth")
    (tmp_path / "trunk.pth").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="lpips/weights/v0.1/vgg.pth"):
        L.load_lpips("vgg", tmp_path / "trunk.pth", tmp_path / "nope.pth")
    shapes = {
        0: (64, 3, 11, 11),
        3: (192, 64, 5, 5),
        6: (384, 192, 3, 3),
        8: (256, 384, 3, 3),
        10: (256, 256, 3, 3),
    }
    trunk = {f"features.{i}.weight": np.zeros(s, np.float32) for i, s in shapes.items()}
    trunk |= {f"features.{i}.bias": np.zeros(s[0], np.float32) for i, s in shapes.items()}
    with pytest.raises(KeyError, match="lin1"):
        L.convert({"lin0.model.1.weight": np.ones((1, 64, 1, 1))}, trunk, "alex")
