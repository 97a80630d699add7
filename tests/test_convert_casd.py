"""CASD converter: golden parity, the official key list (random values, convert only), round trips, errors."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from ptx.convert import casd as conv
from ptx.convert.common import ConversionError
from ptx.models import casd
from ptx.tools import check_golden


@pytest.fixture(scope="module")
def golden(golden_dir):
    return check_golden.load_fixture(golden_dir / "casd_fashion_small.npz")


@pytest.fixture(scope="module")
def golden_state(golden):
    arrays, _ = golden
    return {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}


@pytest.fixture(scope="module")
def official_keys(golden_dir):
    return json.loads((golden_dir / "casd_official_keys.json").read_text())


def test_golden_parity(golden):
    """image, both energy maps and the style codes within 1e-4 relative of the original (batch 2, 256x256)."""
    arrays, meta = golden
    report = check_golden.compare(conv.run_golden(arrays, meta))
    assert set(report) == {"image", "energy3", "energy4", "style_codes"}
    for name, r in report.items():
        print(f"{name}: max_abs {r['max_abs']:.2e} rel {r['rel']:.2e}")
        assert r["rel"] <= 1e-4, (name, r)


def test_golden_config_and_round_trip(golden_state):
    cfg, players = conv.convert({"generator": golden_state})
    small = casd.VARIANTS["fashion_small"]
    assert all(getattr(cfg, f) == getattr(small, f) for f in conv.GEN_FIELDS)
    back = conv.export(cfg, players)["generator"]
    assert sorted(back) == sorted(golden_state)
    for key, value in golden_state.items():
        np.testing.assert_array_equal(back[key], value, err_msg=key)


def test_official_keys_convert_and_export_exactly(official_keys):
    """Every official name and shape, random values, as a DataParallel file whose loader dropped the running
    statistics: converts to the default config, and exports back to exactly the official key list."""
    rng = np.random.default_rng(0)
    shapes = {e["key"]: tuple(e["shape"]) for e in official_keys["keys"]}
    assert len(shapes) == official_keys["num_state_dict_entries"] == 214
    released = {
        f"module.{k}": rng.standard_normal(s, dtype=np.float32)
        for k, s in shapes.items()
        if not k.endswith(("running_mean", "running_var"))
    }
    cfg, players = conv.convert({"generator": released})
    default = casd.VARIANTS["fashion"]
    assert all(getattr(cfg, f) == getattr(default, f) for f in conv.GEN_FIELDS)
    n_params = sum(int(np.size(x)) for x in jax.tree.leaves(players["gen"]["params"]))
    n_vgg = sum(int(np.size(x)) for x in jax.tree.leaves(players["gen"]["vgg"]))
    assert (n_params, n_vgg) == (38_485_591, 20_024_384)
    back = conv.export(cfg, players)["generator"]
    assert {k: tuple(v.shape) for k, v in back.items()} == shapes
    for key in ("enc_style.vgg.34.weight", "dec.mlp.model.2.fc.weight", "dec.LN_4_style.rho", "dec.gamma4_2"):
        np.testing.assert_array_equal(back[key], released[f"module.{key}"])
    with_buffers = conv.convert({"generator": {k[len("module.") :]: v for k, v in released.items()} | back})
    assert with_buffers[0] == cfg


def test_discriminators_round_trip():
    cfg = dataclasses.replace(casd.VARIANTS["tiny"], ndf=4)
    players, rng = {}, np.random.default_rng(1)
    for role, channels in (("disc_pose", 33), ("disc_image", 6)):
        x = jax.ShapeDtypeStruct((1, 8, 8, channels), np.float32)
        shapes = jax.eval_shape(casd.Discriminator(cfg).init, jax.random.key(1), x)
        players[conv.ROLES[role]] = jax.tree.map(lambda s: rng.standard_normal(s.shape, np.float32), shapes)
    files = conv.export(cfg, players)
    assert sorted(files["disc_pose"]) == ["model.1.bias", "model.1.weight", "model.4.bias", "model.4.weight",
                                          "model.7.bias", "model.7.weight"]  # fmt: skip
    assert files["disc_pose"]["model.1.weight"].shape == (4, 33, 7, 7)
    got_cfg, got = conv.convert(files, cfg)
    assert got_cfg == cfg
    for player in players:
        jax.tree.map(np.testing.assert_array_equal, got[player], players[player])
    with pytest.raises(ConversionError, match="channels"):
        conv.convert({"disc_image": files["disc_pose"]})


def test_disagreeing_config_names_fields(golden_state):
    with pytest.raises(ConversionError, match="dim: config 256 vs file 32"):
        conv.convert({"generator": golden_state}, casd.VARIANTS["fashion"])
    broken = dict(golden_state)
    del broken["dec.FFN4_1.fc2.bias"]
    with pytest.raises(ConversionError, match="FFN4_1.fc2.bias"):
        conv.convert({"generator": broken})
    with pytest.raises(ConversionError, match="unknown CASD roles"):
        conv.convert({"netG": golden_state})
