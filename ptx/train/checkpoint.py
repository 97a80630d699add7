"""Orbax checkpoints of the train state, the grain iterator state and where the run stands.

Each checkpoint step directory holds ``state/`` (the sharded TrainState), ``data_iter/`` (one JSON per process,
written by ``grain.checkpoint.CheckpointHandler``) and ``meta/`` (stage name and index, step within the stage).
Orbax writes a step into a temporary directory and renames it only once every item is complete, so a crash or a
SIGKILL during a save leaves the previous checkpoint as the latest one.
"""

from __future__ import annotations

import pathlib
from typing import Any

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
    """The run's CheckpointManager: async saves, keep-N, restore of the latest step."""

    def __init__(self, directory: str | pathlib.Path, *, keep: int = 3, async_save: bool = True):
        self.directory = pathlib.Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            enable_async_checkpointing=async_save,
            create=True,
            cleanup_tmp_directories=True,  # a save killed mid-write leaves a tmp folder: removed on restart
        )
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_names=("state", "data_iter", "meta"),
            item_handlers={"data_iter": grain.checkpoint.CheckpointHandler()},
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def meta(self, step: int) -> dict[str, Any]:
        """Where the run stood at ``step``: {stage, stage_index, stage_step, global_step}."""
        return dict(self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])

    def save(self, step: int, state: Any, data_iter: Any, meta: dict[str, Any]) -> None:
        """Start saving (returns before the write finishes when async); forced whatever the cadence."""
        items = {"state": ocp.args.StandardSave(state), "meta": ocp.args.JsonSave(meta)}
        if data_iter is not None:
            items["data_iter"] = grain.checkpoint.CheckpointSave(data_iter)
        self.manager.save(step, args=ocp.args.Composite(**items), force=True)

    def restore(self, step: int, abstract_state: Any, shardings: Any, data_iter: Any) -> Any:
        """The state at ``step`` laid out by ``shardings`` (any mesh); ``data_iter`` is moved to its position."""
        target = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_state, shardings
        )
        items = {"state": ocp.args.StandardRestore(target)}
        if data_iter is not None:
            items["data_iter"] = grain.checkpoint.CheckpointRestore(data_iter)
        return self.manager.restore(step, args=ocp.args.Composite(**items))["state"]

    def quarantine(self, step: int, reason: str) -> pathlib.Path:
        """Move checkpoint ``step`` aside (``<step>.corrupt``, never deleted) so the previous one is the latest.

        The user keeps the files to inspect; Orbax no longer lists the step (its name is not a number).
        """
        self.manager.wait_until_finished()
        src = self.directory / str(step)
        dst = self.directory / f"{step}.corrupt"
        n = 1
        while dst.exists():
            n += 1
            dst = self.directory / f"{step}.corrupt{n}"
        if jax.process_index() == 0 and src.exists():
            src.rename(dst)
            (dst / "WHY.txt").write_text(reason + "\n")
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"ptx_quarantine_{step}")
        self.manager.reload()
        return dst

    def wait(self) -> None:
        """Block until the pending async save is committed."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def save_params(path: str | pathlib.Path, params: dict[str, Any]) -> None:
    """Write ``{player: params}`` (what ``config.init_from`` reads; used by ``python -m ptx.convert``)."""
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(pathlib.Path(path).absolute(), params)


def load_params(path: str | pathlib.Path) -> dict[str, Any]:
    """Read a ``{player: params}`` (or ``{player: {collection: tree}}``) Orbax directory as numpy arrays."""
    path = pathlib.Path(path).absolute()
    if not path.is_dir():
        raise FileNotFoundError(
            f"config.init_from: {path} is not a directory (expected an Orbax checkpoint of "
            "{player: params} written by `python -m ptx.convert`)"
        )
    with ocp.PyTreeCheckpointer() as ckptr:
        meta = ckptr.metadata(path)
        tree = meta.item_metadata.tree if hasattr(meta, "item_metadata") else meta
        restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        return ckptr.restore(path, args=ocp.args.PyTreeRestore(restore_args=restore_args))
