"""Interrupted runs end where an uninterrupted one does: SIGTERM (preemption), SIGKILL during a save, and the
same training in 2 processes joined with jax.distributed. Each run is a subprocess (tests/train_fixtures.py);
they share a persistent compilation cache, so only the first compiles."""

import json
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
from train_fixtures import (
    Recorder,
    cheap_compiles,
    final_params,
    shared_cache_dir,
    subprocess_env,
    tiny_config,
)

from ptx.train import loop

REPO = pathlib.Path(__file__).resolve().parents[1]
# Two stages of 3 steps (warmup: gen; full: gen + disc); checkpoints every 2 steps and at stage ends.
OVERRIDES = {"ckpt.every_steps": 2, "ckpt.keep": 2, "log.every_steps": 3, "log.tensorboard": False}
SETTINGS = [arg for k, v in OVERRIDES.items() for arg in ("--set", f"{k}={json.dumps(v)}")]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One compilation cache for this process and the subprocesses: only the first run compiles."""
    path = shared_cache_dir(tmp_path_factory)
    with cheap_compiles(path):
        yield path


@pytest.fixture(scope="module")
def env(cache):
    return subprocess_env(cache)


def _train(env, workdir, *args, expect_rc=0):
    cmd = [
        sys.executable,
        "-m",
        "tests.train_fixtures",
        "--workdir",
        str(workdir),
        "--log",
        str(pathlib.Path(workdir) / "batches.txt"),
        *SETTINGS,
        *args,
    ]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == expect_rc, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1]) if expect_rc == 0 else None


def _batches(workdir):
    return (pathlib.Path(workdir) / "batches.txt").read_text().split()


def _assert_same_params(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7), a, b)


@pytest.fixture(scope="module")
def reference(cache, tmp_path_factory):
    """The uninterrupted run, in this process (same config and compile options as the subprocesses)."""
    workdir = tmp_path_factory.mktemp("uninterrupted")
    config = tiny_config(**OVERRIDES)
    rec = Recorder(config.data.image_size, config.data.batch_size, log_path=workdir / "batches.txt")
    assert loop.run(config, workdir, loader_factory=rec).status == "finished"
    return final_params(workdir), _batches(workdir)


def _check_sigkill_mid_save_then_sigterm_then_restart(env, reference, tmp_path):
    params, batches = reference
    # 1. SIGKILL right after the async save of global step 5 started (when the 6th batch is drawn).
    _train(env, tmp_path, "--kill-after", "6", "--signal", "KILL", expect_rc=-9)
    ckpts = tmp_path / "checkpoints"
    complete = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
    partial = [p.name for p in ckpts.iterdir() if "tmp" in p.name]
    print(f"after SIGKILL: complete checkpoints {complete}, partial {partial}")
    assert complete and complete[-1] in (3, 5)  # 3 = end of stage warmup; 5 if the save beat the kill
    # 2. Resume from the last complete checkpoint; SIGTERM (preemption) after one more step: save and exit 0.
    second = _train(env, tmp_path, "--kill-after", "1", "--signal", "TERM")
    assert second["status"] == "preempted" and second["global_step"] == complete[-1] + 1
    # 3. Restart and finish.
    third = _train(env, tmp_path)
    assert (third["status"], third["global_step"]) == ("finished", 6)
    drawn = _batches(tmp_path)
    # Batches after the last complete checkpoint were drawn again by the resumed run, each exactly once after.
    assert drawn[:6] == batches[:6] and drawn[6:] == batches[complete[-1] :]
    _assert_same_params(final_params(tmp_path), params)
    # The killed save's temporary folder is gone after the successful runs.
    assert not [p.name for p in ckpts.iterdir() if "tmp" in p.name]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _check_two_processes(env, reference, tmp_path):
    port = _free_port()
    procs = []
    for i in range(2):
        cmd = [
            sys.executable,
            "-m",
            "tests.train_fixtures",
            "--workdir",
            str(tmp_path),
            "--log",
            str(tmp_path / f"batches_{i}.txt"),
            *SETTINGS,
            "--process-id",
            str(i),
            "--num-processes",
            "2",
            "--coordinator",
            f"localhost:{port}",
            "--local-devices",
            "4",
        ]
        procs.append(
            subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    params, batches = reference
    keys = [b.split(":")[:2] for b in batches]
    for i in range(2):
        drawn = (tmp_path / f"batches_{i}.txt").read_text().split()
        assert [d.split(":")[:2] for d in drawn] == keys
        assert all(d.split(":")[2] == str(4 * i) for d in drawn)  # process i holds rows 4i..4i+3
    _assert_same_params(final_params(tmp_path), params)


def test_interrupted_and_two_process_runs_match_uninterrupted(env, reference, tmp_path):
    # One test, not two sharing the reference fixture: pytest-xdist would build it in each worker.
    _check_sigkill_mid_save_then_sigterm_then_restart(env, reference, tmp_path / "interrupted")
    _check_two_processes(env, reference, tmp_path / "two_processes")
