"""The trainer in this process (8 simulated devices): mesh equivalence, one compilation per stage, no
device-to-host copies between logging steps, stage carry-over with a frozen player, non-finite losses."""

import collections
import json

import jax
import numpy as np
import pytest
from train_fixtures import Recorder, cheap_compiles, final_params, shared_cache_dir, tiny_config

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
def fast_compiles(tmp_path_factory):
    """Cheapest XLA compiles, and a compilation cache so that identical programs compile once."""
    with cheap_compiles(shared_cache_dir(tmp_path_factory)):
        yield


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


def test_same_params_on_1_device_8_devices_and_fsdp_then_eval_mode(runs, tmp_path):
    # One test, not several sharing the fixture: pytest-xdist would build the fixture in each worker.
    ref = runs["one"][1]
    for name in ("data", "fsdp"):
        got = runs[name][1]
        jax.tree.map(
            lambda a, b, n=name: np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6, err_msg=n), ref, got
        )
    assert runs["one"][2].drawn == runs["data"][2].drawn == runs["fsdp"][2].drawn
    assert runs["data"][0].status == "finished" and runs["data"][0].global_step == 3
    _check_eval_mode(runs["data"][3], tmp_path)


def _check_eval_mode(workdir, tmp_path):
    """``--mode eval`` scores the workdir's latest checkpoint; with none, ``config.init_from`` weights
    ({player: variables}, as ``python -m ptx.convert`` writes them) carried into a fresh init: same numbers."""
    from ptx.train import checkpoint

    config = tiny_config(**ONE_STAGE, **{"evals": common.ConfigDict({"l1": {"type": "l1"}})})
    rec = Recorder(config.data.image_size, config.data.batch_size)
    from_ckpt = loop.evaluate(config, workdir, loader_factory=rec)
    state = checkpoint.load_params(sorted((workdir / "checkpoints").glob("[0-9]*"))[-1] / "state")
    variables = {p: {"params": v, **state["state"][p]} for p, v in state["params"].items()}
    checkpoint.save_params(tmp_path / "converted", variables)
    config.init_from = str(tmp_path / "converted")
    from_weights = loop.evaluate(config, tmp_path / "eval", loader_factory=rec)
    assert set(from_ckpt) == {"l1"} and from_ckpt == pytest.approx(from_weights, rel=1e-6)
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["eval"] == from_weights


def test_fsdp_shards_some_leaves():
    from ptx.train import sharding

    config = tiny_config(**ONE_STAGE, **{"sharding.params": "fsdp"})
    mesh = sharding.make_mesh(config.mesh)
    spec = sharding.leaf_spec("params/disc/Conv2d_1/kernel", (4, 4, 8, 16), mesh, config.sharding)
    assert "data" in tuple(spec)


def test_two_stages_compile_once_carry_over_freeze_and_log(tmp_path):
    """warmup (gen, 3 steps) then full (disc trained, gen frozen, 4 steps), counting loss traces, with the
    device-to-host transfer guard on every step that logs nothing."""
    traces = collections.Counter()
    original = toy.ToyMethod.loss

    def counting(self, stage, player, *args):
        traces[(stage, player)] += 1
        return original(self, stage, player, *args)

    overrides = {
        "stages": [
            common.stage("warmup", 3, ["gen"]),
            common.stage("full", 4, ["gen", "disc"], freeze=["gen"]),
        ],
        "log.every_steps": 3,
        "log.image_every_steps": 4,
        "ckpt.every_steps": 3,
        "ckpt.keep": 5,
        "log.transfer_guard": "disallow_explicit",
    }
    toy.ToyMethod.loss = counting
    try:
        result, rec = _run(tmp_path, **overrides)
    finally:
        toy.ToyMethod.loss = original

    # Compiled once per stage (each loss traced once), no sync between logging steps (the guard raised not).
    assert result.status == "finished" and result.global_step == 7
    assert traces == {("warmup", "gen"): 1, ("full", "disc"): 1}
    assert [name.split(":")[1] for _, name in rec.drawn] == ["0", "1", "2", "0", "1", "2", "3"]

    # Stage full started from warmup's final generator (carried) and kept it (frozen); disc is new.
    from ptx.train import checkpoint

    end_warmup = checkpoint.load_params(tmp_path / "checkpoints" / "3" / "state")["params"]
    end_full = final_params(tmp_path)
    assert "disc" not in end_warmup and "disc" in end_full
    jax.tree.map(np.testing.assert_array_equal, end_warmup["gen"], end_full["gen"])

    # Image grid (PNG + TensorBoard), metrics.json.
    pngs = sorted(p.name for p in (tmp_path / "images").glob("*.png"))
    assert pngs == ["samples_full_00000007.png"]
    from PIL import Image

    grid = np.asarray(Image.open(tmp_path / "images" / pngs[0]))
    assert grid.shape == (4 * 32, 4 * 16, 3)  # num_images rows of source | pose | output | target
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["global_step"] == 7 and np.isfinite(metrics["train"]["disc/loss"])


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
