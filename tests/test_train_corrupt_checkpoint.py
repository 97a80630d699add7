"""A run whose newest checkpoint cannot be read resumes from the previous one: the bad one is moved aside (never
deleted) with the reason beside it, one warning names it, and training ends where an unbroken run ends."""

import pathlib
import shutil

import jax
import numpy as np
import pytest
from train_fixtures import Recorder, cheap_compiles, final_params, shared_cache_dir, tiny_config

from ptx.train import loop

# Two stages of 3 steps; checkpoints at steps 2, 3 (stage end), 4 and 6; the newest three are kept.
OVERRIDES = {"ckpt.every_steps": 2, "ckpt.keep": 3, "log.every_steps": 3, "log.tensorboard": False}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    path = shared_cache_dir(tmp_path_factory)
    with cheap_compiles(path):
        yield path


def _run(workdir):
    config = tiny_config(**OVERRIDES)
    return loop.run(config, workdir, loader_factory=Recorder(config.data.image_size, config.data.batch_size))


@pytest.fixture(scope="module")
def finished(cache, tmp_path_factory):
    """An unbroken run's workdir and final params."""
    workdir = tmp_path_factory.mktemp("unbroken")
    assert _run(workdir).status == "finished"
    return workdir, final_params(workdir)


def _largest_file(root: pathlib.Path) -> pathlib.Path:
    return max((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _truncate(step_dir: pathlib.Path) -> None:
    f = _largest_file(step_dir / "state")
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _flip_bytes(step_dir: pathlib.Path) -> None:
    f = _largest_file(step_dir / "state")
    data = bytearray(f.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    f.write_bytes(bytes(data))


def _delete_item(step_dir: pathlib.Path) -> None:
    shutil.rmtree(step_dir / "state")


def _garble_meta(step_dir: pathlib.Path) -> None:
    for f in (step_dir / "meta").rglob("*"):
        if f.is_file():
            f.write_bytes(b"\x00\xff garbage")


@pytest.mark.parametrize("corrupt", [_truncate, _flip_bytes, _delete_item, _garble_meta], ids=lambda f: f.__name__[1:])
def test_resume_walks_back_past_a_corrupt_checkpoint(finished, tmp_path, corrupt, caplog):
    src, want = finished
    workdir = tmp_path / "run"
    shutil.copytree(src, workdir)
    ckpt = workdir / "checkpoints"
    corrupt(ckpt / "6")
    # The newest checkpoint is the finished run's last one: re-running restores it. It cannot be read, so the
    # run falls back to step 4 and trains steps 5 and 6 again, ending where the unbroken run ended.
    result = _run(workdir)
    assert result.status == "finished" and result.global_step == 6
    aside = ckpt / "6.corrupt"
    assert aside.is_dir() and "checkpoint 6" in (aside / "WHY.txt").read_text()
    assert any("checkpoint 6" in r.getMessage() and "moved aside" in r.getMessage() for r in caplog.records)
    got = final_params(workdir)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), got, want)
    assert (ckpt / "6").is_dir()  # re-written by the resumed run
