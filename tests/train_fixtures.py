"""Trainer test helpers: an in-memory grain loader of random batches, a batch recorder, a subprocess runner.

Record ``k`` of the source is global batch ``k`` (deterministic in (seed, k)); each process keeps its rows of
it, so 1 process and N processes see the same global batches. Run as a script to train in a subprocess
(SIGTERM/SIGKILL and ``jax.distributed`` tests):

    python -m tests.train_fixtures --workdir W [--kill-after N --signal TERM] [--process-id i --num-processes n
        --coordinator localhost:PORT --local-devices 4] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import signal
import sys
from typing import Any

import grain
import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIG = "configs/toy_puppets.py"


class RandomPairs:
    """Global batches of random images and keypoints; ``nan_at`` makes batch ``k`` carry infinite keypoints."""

    def __init__(
        self,
        global_batch: int,
        size: tuple[int, int],
        seed: int,
        num_records: int = 10_000,
        nan_at: int | None = None,
    ):
        self.b, self.size, self.seed, self.n, self.nan_at = (
            global_batch,
            tuple(size),
            seed,
            num_records,
            nan_at,
        )

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:  # grain checks that a restored iterator reads the same source by its repr
        return f"RandomPairs(b={self.b}, size={self.size}, seed={self.seed}, n={self.n})"

    def __getitem__(self, k: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, int(k)])
        h, w = self.size
        kps = (rng.uniform(0, 1, (self.b, 18, 2)) * [h - 1, w - 1]).astype(np.float32)
        kps[rng.uniform(size=(self.b, 18)) < 0.1] = -1.0
        if self.nan_at is not None and int(k) == self.nan_at:
            kps[:] = np.inf
        return {
            "source_image": rng.integers(0, 256, (self.b, h, w, 3), dtype=np.uint8),
            "target_image": rng.integers(0, 256, (self.b, h, w, 3), dtype=np.uint8),
            "source_keypoints": kps[::-1].copy(),
            "target_keypoints": kps,
            "name": np.array([f"{self.seed}:{int(k)}:{r}" for r in range(self.b)]),
        }


class TakeRows(grain.transforms.Map):
    """This process's rows of a global batch."""

    def __init__(self, index: int, count: int):
        self.index, self.count = index, count

    def map(self, batch):
        b = len(batch["name"]) // self.count
        return {k: v[self.index * b : (self.index + 1) * b] for k, v in batch.items()}


def make_loader(
    size,
    global_batch,
    *,
    seed,
    shuffle=True,
    num_epochs=None,
    shard_index=0,
    shard_count=1,
    nan_at=None,
    num_records=10_000,
):
    del shuffle  # record k is batch k: runs stay comparable across device and process counts
    source = RandomPairs(global_batch, size, seed, num_records, nan_at)
    sampler = grain.samplers.IndexSampler(
        num_records=len(source),
        shuffle=False,
        seed=seed,
        num_epochs=num_epochs,
        shard_options=grain.sharding.NoSharding(),
    )
    return grain.DataLoader(
        data_source=source, sampler=sampler, operations=[TakeRows(shard_index, shard_count)], worker_count=0
    )


class _RecordingIterator:
    """Forwards a grain iterator (state included) and records which batches were drawn."""

    def __init__(self, inner, recorder: Recorder, serial: int):
        self.inner, self.recorder, self.serial = inner, recorder, serial

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.inner)
        self.recorder.record(self.serial, str(batch["name"][0]))
        return batch

    def get_state(self):
        return self.inner.get_state()

    def set_state(self, state):
        self.inner.set_state(state)

    def start_prefetch(self):
        getattr(self.inner, "start_prefetch", lambda: None)()


class Recorder:
    """Loader factory for ``loop.run``: in-memory batches, a log of the batches each iterator drew (iterator 0
    of every loader is the loop's shape probe), and an optional signal sent to this process after the
    ``kill_after``-th training batch."""

    def __init__(
        self, size, global_batch, *, log_path=None, kill_after=None, sig=signal.SIGTERM, nan_at=None
    ):
        self.size, self.global_batch = size, global_batch
        self.log_path, self.kill_after, self.sig, self.nan_at = log_path, kill_after, sig, nan_at
        self.drawn: list[tuple[int, str]] = []
        self.trained = 0

    def __call__(
        self, *, split, batch_size, seed, shuffle=True, num_epochs=None, shard_index=0, shard_count=1
    ):
        assert batch_size * shard_count == self.global_batch, (batch_size, shard_count, self.global_batch)
        loader = make_loader(
            self.size,
            self.global_batch,
            seed=seed,
            num_epochs=num_epochs,
            shard_index=shard_index,
            shard_count=shard_count,
            nan_at=self.nan_at,
            num_records=10_000 if split == "train" else 3,
        )
        recorder, serial = self, iter(range(10**6))

        class Wrapped:
            def __iter__(self):
                return _RecordingIterator(iter(loader), recorder, next(serial))

        return Wrapped()

    def record(self, serial: int, name: str) -> None:
        if serial == 0:
            return
        self.drawn.append((serial, name))
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(name + "\n")
        self.trained += 1
        if self.kill_after is not None and self.trained == self.kill_after:
            os.kill(os.getpid(), self.sig)


def shared_cache_dir(tmp_path_factory) -> pathlib.Path:
    """A compilation-cache folder shared by the pytest-xdist workers of this session (writes are atomic)."""
    base = tmp_path_factory.getbasetemp()
    base = base.parent if base.name.startswith("popen-gw") else base  # the session's folder under xdist
    path = base / "ptx_train_jax_cache"
    path.mkdir(exist_ok=True)
    return path


@contextlib.contextmanager
def cheap_compiles(cache_dir):
    """XLA's cheapest compile mode and a persistent compilation cache (shared with the subprocesses given
    ``subprocess_env(cache_dir)``), so a program compiled once is reused by every later run; restored after."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc

    names = (
        "jax_disable_most_optimizations",
        "jax_compilation_cache_dir",
        "jax_persistent_cache_min_compile_time_secs",
        "jax_persistent_cache_min_entry_size_bytes",
    )
    old = {n: jax.config.values.get(n) for n in names}
    for n, v in zip(names, (True, str(cache_dir), 0.0, 0)):
        jax.config.update(n, v)
    cc.reset_cache()
    try:
        yield
    finally:
        for n, v in old.items():
            jax.config.update(n, v)
        cc.reset_cache()


def subprocess_env(cache_dir) -> dict[str, str]:
    """Environment for ``python -m tests.train_fixtures`` runs matching ``cheap_compiles(cache_dir)``."""
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
        "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def tiny_config(**overrides: Any):
    """``configs/toy_puppets.py:tiny`` with dotted-key overrides (``{"ckpt.every_steps": 2}``)."""
    sys.path.insert(0, str(REPO))
    from configs import toy_puppets

    config = toy_puppets.get_config("tiny")
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[leaf] = value
    return config


def final_params(workdir) -> dict[str, Any]:
    """The params of the latest checkpoint in ``workdir`` as numpy (whatever mesh wrote them)."""
    from ptx.train import checkpoint

    ckpt = pathlib.Path(workdir) / "checkpoints"
    steps = sorted(int(p.name) for p in ckpt.iterdir() if p.name.isdigit())
    return checkpoint.load_params(ckpt / str(steps[-1]) / "state")["params"]


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--workdir", required=True)
    p.add_argument("--kill-after", type=int)
    p.add_argument("--signal", default="TERM")
    p.add_argument("--log")
    p.add_argument("--process-id", type=int, default=0)
    p.add_argument("--num-processes", type=int, default=1)
    p.add_argument("--coordinator")
    p.add_argument("--local-devices", type=int, default=8)
    p.add_argument("--set", action="append", default=[], help="dotted.key=json value")
    args = p.parse_args(argv)
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.local_devices}"
    import jax

    if args.num_processes > 1:
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    from ptx.train import loop

    overrides = {k: _parse_value(v) for k, _, v in (s.partition("=") for s in args.set)}
    config = tiny_config(**overrides)
    rec = Recorder(
        config.data.image_size,
        config.data.batch_size,
        log_path=args.log,
        kill_after=args.kill_after,
        sig=getattr(signal, "SIG" + args.signal),
    )
    result = loop.run(config, args.workdir, loader_factory=rec)
    print(
        json.dumps(
            {
                "status": result.status,
                "stage": result.stage,
                "stage_step": result.stage_step,
                "global_step": result.global_step,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
