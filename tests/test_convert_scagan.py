"""SCA-GAN converter: golden parity of both nets, the official key lists, config inference and checks."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from ptx.convert import scagan as convert
from ptx.convert.common import ConversionError
from ptx.models import scagan
from ptx.tools import check_golden


@pytest.mark.parametrize("net", ["pctnet", "isnet"])
def test_check_golden_every_output(golden_dir, net):
    fixtures = sorted(golden_dir.glob(f"scagan_{net}_*.npz"))
    assert fixtures, f"no scagan_{net}_*.npz fixtures"
    for path in fixtures:
        arrays, meta = check_golden.load_fixture(path)
        report = check_golden.compare(convert.run_golden(arrays, meta))
        assert set(report) == set(meta["output_names"]), (path.name, sorted(report))
        for name, r in report.items():
            assert r["rel"] < 1e-4, (path.name, name, r)


def _random_state_dict(keys: dict[str, list[int]], seed: int) -> dict[str, np.ndarray]:
    """Random tensors with the official names and shapes; ``enc_style.model.N`` aliases share values."""
    rng = np.random.default_rng(seed)
    names = ["head_0"] + [f"down_{i}" for i in range(5)]
    sd = {}
    for key, shape in keys.items():
        if key.endswith("num_batches_tracked"):
            sd[key] = np.asarray(7, np.int64)
        elif not key.startswith("enc_style.model."):
            sd[key] = rng.standard_normal(shape, dtype=np.float32)
    for key in keys:
        if key.startswith("enc_style.model."):
            n, rest = key[len("enc_style.model.") :].split(".", 1)
            sd[key] = sd[f"enc_style.{names[int(n)]}.{rest}"]
    return sd


@pytest.fixture(scope="module")
def official(golden_dir):
    return json.loads((golden_dir / "scagan_official_keys.json").read_text())


def _n_params(variables) -> int:
    return sum(int(np.size(x)) for x in jax.tree.leaves(variables["params"]))


def _assert_same_state_dict(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert np.shape(a[k]) == np.shape(b[k]), k
        if not k.endswith("num_batches_tracked"):
            np.testing.assert_array_equal(
                np.asarray(a[k], np.float32), np.asarray(b[k], np.float32), err_msg=k
            )


def test_official_isnet_and_critics_convert_exactly(official):
    """Full-size IS-Net (with its PCT-Net) and the four critics: every key used, counts as the card, and the
    exported state dicts have exactly the official names, shapes and values."""
    isnet = _random_state_dict(official["isnet_generator"], 0)
    critics = {
        role: _random_state_dict(official["discriminators"][name], i + 1)
        for i, (role, name) in enumerate(
            [
                ("pctnet_disc_pose", "pct_netD_PB(in=1+18)"),
                ("pctnet_disc_image", "pct_netD_PP(in=1+1)"),
                ("disc_pose", "is_netD_PB(in=3+18)"),
                ("disc_image", "is_netD_PP(in=3+3)"),
            ]
        )
    }
    cfg, players = convert.convert({"isnet": isnet, **critics})
    assert cfg == scagan.VARIANTS["fashion"]
    counts = official["param_counts"]
    assert _n_params(players["gen"]) == counts["isnet_generator_total"]
    pct = {"params": players["gen"]["params"]["edge_generator"]}
    assert _n_params(pct) == counts["pctnet_generator"]
    assert _n_params(players["edge_disc_pose"]) == counts["D_PB_pct"]
    assert _n_params(players["edge_disc_image"]) == counts["D_PP_pct"]
    assert players["disc_pose"]["params"]["encoder"]["Conv2d_0"]["kernel"].shape == (7, 7, 21, 64)
    exported = convert.export(cfg, players)
    _assert_same_state_dict(exported["isnet"], isnet)
    for role, sd in critics.items():
        _assert_same_state_dict(exported[role], sd)


def test_official_pctnet_converts_exactly(official):
    pct = _random_state_dict(official["pctnet_generator"], 3)
    cfg, players = convert.convert({"pctnet": pct})
    assert (cfg.edge_ngf, cfg.edge_blocks, cfg.edge_downsampling, cfg.pose_nc, cfg.edge_nc) == (
        64,
        6,
        2,
        18,
        1,
    )
    assert list(players["gen"]["params"]) == ["edge_generator"]
    assert _n_params(players["gen"]) == official["param_counts"]["pctnet_generator"]
    _assert_same_state_dict(convert.export(cfg, players)["pctnet"], pct)


def test_pctnet_file_must_match_the_one_embedded_in_the_isnet(golden_dir):
    arrays, _ = check_golden.load_fixture(golden_dir / "scagan_isnet_small.npz")
    isnet = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    prefix = convert.PCT_IN_ISNET + "."
    pct = {k[len(prefix) :]: v.copy() for k, v in isnet.items() if k.startswith(prefix)}
    for key in pct:  # the PCT-Net run's statistics, before they drifted during IS-Net training
        if key.endswith(("running_mean", "running_var")):
            pct[key] = pct[key] + 1.0
    _, players = convert.convert({"pctnet": pct, "isnet": isnet})
    stats = players["gen"]["batch_stats"]["edge_generator"]["encoder"]["Norm_0"]["BatchNorm_0"]["mean"]
    np.testing.assert_array_equal(stats, isnet[prefix + "prepro.2.running_mean"])  # the IS-Net file's win
    pct["prepro.1.weight"] = pct["prepro.1.weight"] + 1e-3
    with pytest.raises(ConversionError, match="differ from the PCT-Net embedded"):
        convert.convert({"pctnet": pct, "isnet": isnet})


def test_disagreeing_config_names_the_fields(official):
    pct = _random_state_dict(official["pctnet_generator"], 5)
    wrong = dataclasses.replace(scagan.VARIANTS["fashion"], edge_ngf=32, edge_blocks=9)
    with pytest.raises(
        ConversionError, match="edge_ngf: config 32, weights 64, edge_blocks: config 9, weights 6"
    ):
        convert.convert({"pctnet": pct}, wrong)
    with pytest.raises(ConversionError, match="role takes a PCT-Net"):
        convert.convert({"pctnet": _random_state_dict(official["discriminators"]["is_netD_PP(in=3+3)"], 0)})
    del pct["residual.2.conv_block.5.weight"]
    with pytest.raises(ConversionError, match="residual.2.conv_block.5.weight"):
        convert.convert({"pctnet": pct})


def test_latent_size_is_checked_against_fc(golden_dir):
    arrays, _ = check_golden.load_fixture(golden_dir / "scagan_isnet_small.npz")
    sd = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    base = scagan.for_image_size(
        scagan.Config(), 128, 88
    )  # latent 4x3 = 12 positions; the fixture's fc has 48
    with pytest.raises(ConversionError, match="latent positions"):
        convert.infer_config({"isnet": sd}, base=base)


def test_cli_writes_a_loadable_checkpoint(golden_dir, tmp_path):
    torch = pytest.importorskip("torch")
    from ptx.convert.__main__ import main
    from ptx.convert.common import read_converted

    arrays, _ = check_golden.load_fixture(golden_dir / "scagan_pctnet_small.npz")
    sd = {k[len("param/") :]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("param/")}
    torch.save(sd, tmp_path / "latest_netG.pth")
    assert (
        main(["scagan", "--pctnet", str(tmp_path / "latest_netG.pth"), "--out", str(tmp_path / "out")]) == 0
    )
    method, model_cfg, loaded = read_converted(tmp_path / "out")
    assert method == "scagan" and list(loaded) == ["gen"] and model_cfg["edge_ngf"] == 8
    _, players = convert.convert({"pctnet": {k: v.numpy() for k, v in sd.items()}})
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(players)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert main(["scagan", "--isnet", str(tmp_path / "latest_netG.pth"), "--out", str(tmp_path / "o2")]) == 2


def test_latent_sizes_follow_the_originals_rule_without_a_config():
    for positions, height in ((48, 256), (12, 128), (2, 64)):
        cfg = convert._with_latent_of(scagan.Config(), positions)
        assert cfg == scagan.for_image_size(scagan.Config(), height, round(height * 176 / 256)), positions
    assert convert._with_latent_of(scagan.Config(), 5) == scagan.Config()  # no such size: left to the check
