"""PATN converter: golden parity, the published key lists, config inference, the CLI."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from ptx.convert import patn as convert
from ptx.models import patn
from ptx.tools import check_golden


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
    gen_sd = _zeros(spec["generator"]["keys"])
    cfg, variables = convert.convert_generator(gen_sd)  # every key used, tree == eval_shape(init)
    assert cfg == dataclasses.replace(patn.VARIANTS[dataset], norm=norm)
    n = sum(x.size for x in jax.tree.leaves(variables["params"]))
    assert n == spec["generator"]["n_parameters"]
    assert ("batch_stats" in variables) == (norm == "batch")
    for name, channels in (("netD_PB", 21), ("netD_PP", 6)):
        dcfg, dvars = convert.convert_discriminator(_zeros(spec[name]["keys"]), cfg)
        assert (dcfg.ndf, dcfg.n_blocks_d, dcfg.use_dropout_d) == (64, 3, True)
        assert dvars["params"]["encoder"]["Conv2d_0"]["kernel"].shape == (7, 7, channels, 64)
        assert sum(x.size for x in jax.tree.leaves(dvars["params"])) == spec[name]["n_parameters"]


def test_legacy_instance_norm_running_stats_and_leftovers(golden_dir):
    spec = json.loads((golden_dir / "patn_official_keys.json").read_text())["fashion"]["generator"]
    sd = _zeros(spec["keys"])
    sd["model.stream1_down.2.running_mean"] = np.zeros(64, np.float32)  # torch 0.3.1 checkpoints carry these
    sd["model.stream1_down.2.running_var"] = np.ones(64, np.float32)
    convert.convert_generator(sd)
    sd["model.stray.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="not used"):
        convert.convert_generator(sd)
    del sd["model.stray.weight"], sd["model.att.3.conv_block_stream2.6.weight"]
    with pytest.raises(KeyError, match="att.3.conv_block_stream2.6"):
        convert.convert_generator(sd)


def _to_torch(variables: dict, layout) -> dict[str, np.ndarray]:
    """Inverse of the converter (test helper): ptx variables -> torch names and layouts."""
    sd = {}
    for prefix, path, kind in layout:
        if kind == "instance":  # affine False: no tensors
            continue
        node = variables["params"]
        for p in path:
            node = node[p]
        if kind in ("conv", "convT"):
            perm = (3, 2, 0, 1) if kind == "conv" else (2, 3, 0, 1)
            sd[f"{prefix}.weight"] = np.transpose(np.asarray(node["kernel"]), perm)
            if "bias" in node:
                sd[f"{prefix}.bias"] = np.asarray(node["bias"])
        elif kind == "batch":
            stats = variables["batch_stats"]
            for p in path:
                stats = stats[p]
            sd[f"{prefix}.weight"] = np.asarray(node["BatchNorm_0"]["scale"])
            sd[f"{prefix}.bias"] = np.asarray(node["BatchNorm_0"]["bias"])
            sd[f"{prefix}.running_mean"] = np.asarray(stats["BatchNorm_0"]["mean"])
            sd[f"{prefix}.running_var"] = np.asarray(stats["BatchNorm_0"]["var"])
            sd[f"{prefix}.num_batches_tracked"] = np.zeros((), np.float32)
    return sd


@pytest.mark.parametrize(
    "options",
    [
        dict(norm="instance", ngf=10, n_blocks=3, padding_type="zero", use_dropout=False),
        dict(norm="batch", ngf=6, n_blocks=2, n_downsampling=3, pose_nc=18),
    ],
)
def test_roundtrip_infers_config(options):
    cfg = patn.Config(**options)
    gen = patn.Generator(cfg)
    s = 2**cfg.n_downsampling * 2
    image, pose = np.zeros((1, s, s, 3), np.float32), np.zeros((1, s, s, cfg.pose_nc), np.float32)
    key = jax.random.key(0)
    fast = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}  # init only
    variables = jax.jit(gen.init).lower(key, image, pose).compile(fast)(key, image, pose)
    sd = _to_torch(variables, convert.generator_layout(cfg))
    got_cfg, got = convert.convert_generator(sd)
    assert got_cfg == cfg
    jax.tree.map(np.testing.assert_array_equal, got, variables)


def test_cli_writes_orbax_checkpoint(tmp_path, golden_dir):
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
    import orbax.checkpoint as ocp

    with ocp.StandardCheckpointer() as ckpt:
        restored = ckpt.restore(out / "checkpoint")
    assert set(restored) == {"gen", "disc_image"}
    assert restored["gen"]["params"]["decoder"]["Conv2d_0"]["kernel"].shape == (7, 7, 64, 3)
    meta = json.loads((out / "ptx_convert.json").read_text())
    assert meta["method"] == "patn" and meta["model"]["norm"] == "batch"
