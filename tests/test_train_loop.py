"""The trainer in this process (8 simulated devices): mesh equivalence, one compilation per stage, no
device-to-host copies between logging steps, stage carry-over with a frozen player, non-finite losses."""

import collections
import json
import pathlib

import jax
import numpy as np
import pytest
from train_fixtures import Recorder, final_params, tiny_config

from configs import common
from ptx.methods import toy
from ptx.train import loop

ONE_STAGE = {
    "stages": [common.stage("full", 3, ["gen", "disc"])],
    "model.width": 8,
    "log.every_steps": 2,
    "ckpt.every_steps": 2,
}


@pytest.fixture(scope="module", autouse=True)
def fast_compiles():
    """XLA's cheapest compile mode: these tests run tiny programs a few times."""
    old = jax.config.values.get("jax_disable_most_optimizations", False)
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)


def _run(workdir, recorder=None, **overrides):
    config = tiny_config(**overrides)
    rec = recorder or Recorder(config.data.image_size, config.data.batch_size)
    return loop.run(config, workdir, loader_factory=rec), rec


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same 3 steps on 1 device, 8 devices (data parallel) and 8 devices with FSDP parameters."""
    out = {}
    for name, extra in {"one": {"mesh.shape": (1,)}, "data": {}, "fsdp": {"sharding.params": "fsdp"}}.items():
        workdir = tmp_path_factory.mktemp(name)
        result, rec = _run(workdir, **ONE_STAGE, **extra)
        out[name] = (result, final_params(workdir), rec, workdir)
    return out


def test_same_params_on_1_device_8_devices_and_fsdp(runs):
    ref = runs["one"][1]
    for name in ("data", "fsdp"):
        got = runs[name][1]
        jax.tree.map(
            lambda a, b, n=name: np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6, err_msg=n), ref, got
        )
    assert runs["one"][2].drawn == runs["data"][2].drawn == runs["fsdp"][2].drawn
    assert runs["data"][0].status == "finished" and runs["data"][0].global_step == 3


def test_fsdp_shards_some_leaves():
    from ptx.train import sharding

    config = tiny_config(**ONE_STAGE, **{"sharding.params": "fsdp"})
    mesh = sharding.make_mesh(config.mesh)
    spec = sharding.leaf_spec("params/disc/Conv2d_1/kernel", (4, 4, 8, 16), mesh, config.sharding)
    assert "data" in tuple(spec)


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    """Two stages (warmup: gen; full: disc only, gen frozen), counting how often each loss is traced."""
    traces = collections.Counter()
    original = toy.ToyMethod.loss

    def counting(self, stage, player, *args):
        traces[(stage, player)] += 1
        return original(self, stage, player, *args)

    toy.ToyMethod.loss = counting
    try:
        workdir = tmp_path_factory.mktemp("staged")
        overrides = {
            "stages": [
                common.stage("warmup", 4, ["gen"]),
                common.stage("full", 4, ["gen", "disc"], freeze=["gen"]),
            ],
            "log.every_steps": 3,
            "log.image_every_steps": 4,
            "ckpt.every_steps": 3,
            "ckpt.keep": 5,
            "log.transfer_guard": "disallow_explicit",
        }
        result, rec = _run(workdir, **overrides)
    finally:
        toy.ToyMethod.loss = original
    return workdir, result, rec, traces


def test_each_stage_compiles_once_and_never_syncs_between_log_steps(staged):
    workdir, result, rec, traces = staged
    # 8 steps ran with the device-to-host guard on the quiet steps; each loss was traced once per stage.
    assert result.status == "finished" and result.global_step == 8
    assert traces == {("warmup", "gen"): 1, ("full", "disc"): 1}
    assert [name.split(":")[1] for _, name in rec.drawn] == ["0", "1", "2", "3"] * 2


def test_stage_carry_over_and_frozen_player(staged):
    workdir = staged[0]
    ckpts = workdir / "checkpoints"
    from ptx.train import checkpoint

    end_warmup = checkpoint.load_params(ckpts / "4" / "state")["params"]
    end_full = final_params(workdir)
    assert "disc" not in end_warmup and "disc" in end_full
    jax.tree.map(np.testing.assert_array_equal, end_warmup["gen"], end_full["gen"])


def test_logs_images_and_metrics_written(staged):
    workdir = pathlib.Path(staged[0])
    pngs = sorted(p.name for p in (workdir / "images").glob("*.png"))
    assert pngs == ["samples_full_00000008.png", "samples_warmup_00000004.png"]
    from PIL import Image

    grid = np.asarray(Image.open(workdir / "images" / pngs[0]))
    assert grid.shape == (4 * 32, 4 * 16, 3)  # num_images rows of source | pose | output | target
    assert list((workdir / "tb").glob("events.out.tfevents.*"))
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["global_step"] == 8 and np.isfinite(metrics["train"]["disc/loss"])


def test_non_finite_loss_stops_with_step_and_term(tmp_path):
    config = tiny_config(**{**ONE_STAGE, "stages": [common.stage("full", 6, ["gen", "disc"])]})
    rec = Recorder(config.data.image_size, config.data.batch_size, nan_at=3)  # the 4th batch
    with pytest.raises(loop.NonFiniteLossError, match=r"stage 'full' at step 4: .*gen/l1=nan") as err:
        loop.run(config, tmp_path, loader_factory=rec)
    assert "last good checkpoint is step 2" in str(err.value)
    from ptx.train import checkpoint

    ckpt = checkpoint.Checkpointer(tmp_path / "checkpoints")
    assert ckpt.latest_step() == 2
    ckpt.close()
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(final_params(tmp_path)))


def test_eval_mode_on_checkpoint_and_on_converted_weights(runs, tmp_path):
    """``--mode eval`` scores the workdir's latest checkpoint; with none, ``config.init_from`` weights
    ({player: variables}, as ``python -m ptx.convert`` writes them) carried into a fresh init: same numbers."""
    from ptx.train import checkpoint

    workdir = runs["data"][3]
    config = tiny_config(**ONE_STAGE, **{"evals": common.ConfigDict({"l1": {"type": "l1"}})})
    rec = Recorder(config.data.image_size, config.data.batch_size)
    from_ckpt = loop.evaluate(config, workdir, loader_factory=rec)
    state = checkpoint.load_params(sorted((workdir / "checkpoints").glob("[0-9]*"))[-1] / "state")
    checkpoint.save_params(
        tmp_path / "converted", {p: {"params": v, **state["state"][p]} for p, v in state["params"].items()}
    )
    config.init_from = str(tmp_path / "converted")
    from_weights = loop.evaluate(config, tmp_path / "eval", loader_factory=rec)
    assert set(from_ckpt) == {"l1"} and from_ckpt == pytest.approx(from_weights, rel=1e-6)
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["eval"] == from_weights
