"""PATN converter: golden parity, the published key lists, config inference, the CLI."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from ptx.convert import common
from ptx.convert import patn as convert
from ptx.models import patn
from ptx.tools import check_golden
from ptx.train import checkpoint


def _zeros(keys) -> dict[str, np.ndarray]:
    return {k: np.zeros(shape, np.float32) for k, shape, _ in keys}


def test_check_golden_all_patn_fixtures(golden_dir):
    fixtures = sorted(golden_dir.glob("patn_*.npz"))
    assert fixtures, "no patn_*.npz fixtures"
    for path in fixtures:
        arrays, meta = check_golden.load_fixture(path)
        report = check_golden.compare(convert.run_golden(arrays, meta))
        assert "output/image" in report
        for name, r in report.items():
            assert r["rel"] < 1e-4, (path.name, name, r)


@pytest.mark.parametrize("dataset,norm", [("fashion", "instance"), ("market", "batch")])
def test_official_keys_convert_exactly(golden_dir, dataset, norm):
    spec = json.loads((golden_dir / "patn_official_keys.json").read_text())[dataset]
    files = {"generator": "generator", "disc_pose": "netD_PB", "disc_image": "netD_PP"}
    cfg, players = convert.convert({role: _zeros(spec[part]["keys"]) for role, part in files.items()})
    assert cfg == dataclasses.replace(patn.VARIANTS[dataset], norm=norm)  # every key used, shapes as init's
    variables = players["gen"]
    assert sum(x.size for x in jax.tree.leaves(variables["params"])) == spec["generator"]["n_parameters"]
    assert ("batch_stats" in variables) == (norm == "batch")
    assert (cfg.ndf, cfg.n_blocks_d, cfg.use_dropout_d) == (64, 3, True)
    for player, part, channels in (("disc_pose", "netD_PB", 21), ("disc_image", "netD_PP", 6)):
        dvars = players[player]
        assert dvars["params"]["encoder"]["Conv2d_0"]["kernel"].shape == (7, 7, channels, 64)
        assert sum(x.size for x in jax.tree.leaves(dvars["params"])) == spec[part]["n_parameters"]
    swapped = {"generator": _zeros(spec["generator"]["keys"]), "disc_pose": _zeros(spec["netD_PP"]["keys"])}
    with pytest.raises(common.ConversionError, match="takes 6 channels; expected 21") as e:
        convert.convert(swapped)
    assert e.value.role == "disc_pose"


def _random_players(cfg: patn.Config, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        player: jax.tree.map(
            lambda s: rng.uniform(0.5, 1.5, s.shape).astype(np.float32), convert.abstract_variables(cfg, role)
        )
        for role, player in convert.ROLES.items()
    }


def test_legacy_instance_norm_running_stats_and_leftovers():
    cfg = patn.Config(ngf=4, n_blocks=2, ndf=4, n_blocks_d=1)
    sd = convert.export(cfg, _random_players(cfg))["generator"]
    sd["model.stream1_down.2.running_mean"] = np.zeros(4, np.float32)  # torch 0.3.1 checkpoints carry these
    sd["model.stream1_down.2.running_var"] = np.ones(4, np.float32)
    convert.convert({"generator": {f"module.{k}": v for k, v in sd.items()}})  # DataParallel names too
    sd["model.stray.weight"] = np.zeros(3, np.float32)
    with pytest.raises(common.ConversionError, match="unused .1.: model.stray.weight"):
        convert.convert({"generator": sd})
    del sd["model.stray.weight"], sd["model.att.1.conv_block_stream2.6.weight"]
    with pytest.raises(common.ConversionError, match="missing .1.: model.att.1.conv_block_stream2.6.weight"):
        convert.convert({"generator": sd})
    sd["model.att.1.conv_block_stream2.6.weight"] = np.zeros((4, 3, 3, 3), np.float32)
    with pytest.raises(common.ConversionError, match="shape_errors .1.: model.att.1.conv_block_stream2.6"):
        convert.convert({"generator": sd})


@pytest.mark.parametrize(
    "options",
    [
        dict(norm="instance", ngf=10, n_blocks=3, padding_type="zero", use_dropout=False),
        dict(norm="batch", ngf=6, n_blocks=2, n_downsampling=3, pose_nc=18, n_blocks_d=0, n_downsampling_d=3),
        dict(norm="instance", ngf=4, n_blocks=1, padding_type="replicate", ndf=5, use_dropout_d=False),
    ],
)
def test_roundtrip_infers_config(options):
    cfg = patn.Config(**options)
    players = _random_players(cfg)
    state_dicts = convert.export(cfg, players)
    got_cfg, got = convert.convert(state_dicts)
    if cfg.padding_type == "replicate":  # replicate leaves reflect's keys: the user says which (--set)
        assert got_cfg.padding_type == "reflect"
        got_cfg, got = convert.convert(state_dicts, dataclasses.replace(got_cfg, padding_type="replicate"))
    assert got_cfg == cfg
    jax.tree.map(np.testing.assert_array_equal, got, players)


def test_cli_writes_the_common_layout(tmp_path, golden_dir):
    torch = pytest.importorskip("torch")
    spec = json.loads((golden_dir / "patn_official_keys.json").read_text())["market"]
    for name, part in (("G.pth", "generator"), ("D_PP.pth", "netD_PP")):
        torch.save({k: torch.zeros(s) for k, s, _ in spec[part]["keys"]}, tmp_path / name)
    out = tmp_path / "ckpt"
    argv = [
        "--generator",
        str(tmp_path / "G.pth"),
        "--disc-image",
        str(tmp_path / "D_PP.pth"),
        "--out",
        str(out),
    ]
    assert convert.cli(argv) == 0
    restored = checkpoint.load_params(out)  # what config.init_from reads
    assert set(restored) == {"gen", "disc_image"}
    assert restored["gen"]["params"]["decoder"]["Conv2d_0"]["kernel"].shape == (7, 7, 64, 3)
    method, model, players = common.read_converted(out)
    assert method == "patn" and model["norm"] == "batch" and set(players) == {"gen", "disc_image"}
