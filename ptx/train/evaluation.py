"""Prediction over the mesh and the bridge to ``ptx.evaluate.evaluators`` (periodic and final evals)."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from ptx.methods.protocol import Method, PlayerVariables
from ptx.train import sharding

PredictFn = Callable[[PlayerVariables, dict[str, np.ndarray]], dict[str, np.ndarray]]


@functools.cache
def _jitted_predict(method: Method, mesh) -> Callable:
    """One compiled predict per (method, mesh) and batch shape; variables keep the shardings they have."""
    return jax.jit(method.predict, out_shardings=sharding.replicated(mesh))


def make_predict(method: Method, mesh) -> PredictFn:
    """``predict(variables, batch) -> outputs`` of the whole global batch, on the host of every process.

    ``batch`` is this process's slice (its rows of the global batch, as loaders give them).
    """
    fn = _jitted_predict(method, mesh)
    batch_sh = sharding.batch_sharding(mesh)

    def predict(variables: PlayerVariables, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        out = fn(variables, sharding.put_batch(sharding.device_batch(batch), batch_sh))
        return {k: np.asarray(v) for k, v in jax.device_get(out).items()}

    return predict


def _gather(batch: dict[str, Any]) -> dict[str, Any]:
    """The global batch on every process (evaluators compute dataset-level metrics such as FID)."""
    if jax.process_count() == 1:
        return batch
    local = sharding.device_batch(batch)
    return {k: np.asarray(v) for k, v in multihost_utils.process_allgather(local, tiled=True).items()}


def run_evals(
    config, method: Method, mesh, variables: PlayerVariables, loader_factory, evals: dict | None = None
) -> dict[str, float]:
    """``evals`` (default: all of ``config.evals``) over ``config.eval_split`` (at most ``config.eval_batches`` batches; 0 = all).

    The evaluators see global batches and the outputs for them, identical on every process.
    """
    try:
        from ptx.evaluate import evaluators
    except ImportError as e:
        raise ImportError(
            f"config.evals is set but ptx.evaluate.evaluators is not importable ({e}); "
            "clear config.evals to train without evaluation"
        ) from e
    n_proc, index = jax.process_count(), jax.process_index()
    loader = loader_factory(
        split=config.get("eval_split", "test"),
        batch_size=int(config.data.batch_size) // n_proc,
        seed=int(config.seed),
        shuffle=False,
        num_epochs=1,
        shard_index=index,
        shard_count=n_proc,
    )
    predict = make_predict(method, mesh)
    limit = int(config.get("eval_batches", 0)) or None

    def batches() -> Iterator[dict[str, Any]]:
        for batch in itertools.islice(iter(loader), limit):
            yield _gather(batch)

    def predict_fn(batch: dict[str, Any]) -> dict[str, np.ndarray]:
        local = sharding.device_batch(batch)
        b = next(iter(local.values())).shape[0] // n_proc
        return predict(variables, {k: v[index * b : (index + 1) * b] for k, v in local.items()})

    values = evaluators.evaluate(predict_fn, batches(), config.evals if evals is None else evals)
    return {k: float(v) for k, v in dict(values).items()}
