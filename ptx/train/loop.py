"""``run(config, workdir)``: every stage of a method, resumable, sharded, logged.

Per stage: build the loader (this process's slice of each global batch), get the state's shapes with
``eval_shape``, lay them out over the mesh, materialise the state already sharded (fresh, carried from the
previous stage, or restored), jit the step once with donated state, then loop. The host reads device values
only at logging, image, eval and checkpoint steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import pathlib
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from ptx import registry
from ptx.methods.protocol import Method, Stage
from ptx.train import checkpoint, evaluation, optim, sharding, summary
from ptx.train import logging as tlog
from ptx.train import state as tstate
from ptx.train.step import make_train_step

# (split, batch_size, seed, shuffle, num_epochs, shard_index, shard_count) -> iterable of numpy batches whose
# iterator has grain's get_state/set_state (a grain.DataLoader).
LoaderFactory = Callable[..., Iterable[dict[str, Any]]]


class NonFiniteLossError(FloatingPointError):
    """A loss or metric went NaN/inf; the message names the stage, the step and the terms."""


class _UnreadableCheckpoint(Exception):
    """Restoring checkpoint ``step`` failed; the run moves it aside and resumes from the one before."""

    def __init__(self, step: int, cause: BaseException):
        super().__init__(
            f"checkpoint {step}: {type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
        )
        self.step = step


def _restore(ckpt: checkpoint.Checkpointer, step: int, setup: StageSetup, data_iter):
    try:
        return ckpt.restore(step, setup.abstract, setup.shardings, data_iter)
    except Exception as e:  # noqa: BLE001 - any failure to read a checkpoint means: try the previous one
        raise _UnreadableCheckpoint(step, e) from e


# Resume gives up after this many unreadable checkpoints in a row (a systematic problem, not a torn file).
MAX_UNREADABLE = 3


@dataclasses.dataclass
class RunResult:
    status: str  # "finished" | "preempted"
    stage: str
    stage_step: int
    global_step: int
    metrics: dict[str, float]


def pipeline_loader_factory(data_cfg, method: Method | None = None) -> LoaderFactory:
    """The real input pipeline (``ptx.data.pipeline.make_loader``) bound to ``config.data``, with the method's
    per-pair host transform and pair filter for the requested split."""

    def make(**kwargs):
        from ptx.data import pipeline

        if method is not None:
            kwargs.setdefault("host_transform", method.host_transform(kwargs["split"]))
            kwargs.setdefault("pair_filter", method.pair_filter(kwargs["split"]))
        return pipeline.make_loader(data_cfg, worker_count=data_cfg.get("worker_count", 0), **kwargs)

    make.data_config = data_cfg  # the end-of-run summary asks the same pipeline for parsing maps too
    make.with_data_config = lambda changed: pipeline_loader_factory(changed, method)
    return make


@dataclasses.dataclass(frozen=True)
class StageSpec:
    """A stage as the trainer runs it: the Stage, its frozen players, its global batch size and optimizers'
    settings (the stage's own, else the config's top-level ``data.batch_size`` / ``optim``)."""

    stage: Stage
    frozen: tuple[str, ...]
    batch_size: int
    optim: Any  # {player: optimizer ConfigDict}


def stages_from_config(config) -> list[StageSpec]:
    """``config.stages`` as StageSpecs; names must be unique, steps and batch sizes sensible."""
    out, seen = [], set()
    if not config.stages:
        raise ValueError("config.stages is empty: list at least one {name, num_steps, players}")
    for i, s in enumerate(config.stages):
        where = f"config.stages[{i}] ({s.get('name', '?')!r})"
        if s.name in seen:
            raise ValueError(f"{where}: stage name {s.name!r} repeats")
        if s.num_steps < 0:
            raise ValueError(f"{where}: num_steps {s.num_steps} < 0")
        seen.add(s.name)
        batch_size = int(s.get("batch_size", 0) or config.data.batch_size)
        if batch_size <= 0:
            raise ValueError(
                f"{where}: batch size {batch_size} must be positive (stage batch_size or data.batch_size)"
            )
        optim = {**dict(config.optim), **dict(s.get("optim", None) or {})}
        stage = Stage(s.name, int(s.num_steps), tuple(s.players))
        out.append(StageSpec(stage, tuple(s.get("freeze", ())), batch_size, optim))
    return out


class _StopFlag:
    """Set by SIGTERM (preemption): the loop saves a checkpoint after the current step and returns."""

    def __init__(self):
        self.set = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread() and jax.process_count() == 1:
            self._old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        logging.warning("SIGTERM received: saving a checkpoint after this step, then exiting")
        self.set = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


@dataclasses.dataclass
class StageSetup:
    """What one stage needs: its loader, the layout of its state, its jitted functions."""

    stage: Stage
    index: int
    offset: int  # global steps done before this stage
    batch_size: int  # global
    loader: Iterable
    example: dict[str, np.ndarray]  # a host batch (for shapes and image grids)
    abstract: Any
    shardings: Any
    init: Callable[[], tstate.TrainState]
    train_step: Any  # jitted (state, frozen, batch) -> (state, metrics), state donated
    frozen: Any  # the method's frozen networks on the devices, replicated
    batch_sharding: Any
    factory: LoaderFactory

    def step(self, state: tstate.TrainState, batch: dict[str, Any]):
        return self.train_step(state, self.frozen, batch)


def _zeros_batch(shapes: dict[str, jax.ShapeDtypeStruct]) -> dict[str, jax.Array]:
    return {k: jnp.zeros(s.shape, s.dtype) for k, s in shapes.items()}


def setup_stage(
    config,
    method: Method,
    mesh,
    factory: LoaderFactory,
    index: int,
    offset: int,
    spec: StageSpec,
) -> StageSetup:
    stage = spec.stage
    n_proc = jax.process_count()
    global_batch = spec.batch_size
    data_size = mesh.shape.get("data", 1)
    if global_batch % n_proc or global_batch % data_size:
        raise ValueError(
            f"stage {stage.name!r}: batch size {global_batch} must divide by the process count {n_proc} and "
            f"the mesh's data axis {data_size}"
        )
    loader = factory(
        split="train",
        batch_size=global_batch // n_proc,
        seed=int(config.seed) + index,
        shuffle=True,
        num_epochs=None,
        shard_index=jax.process_index(),
        shard_count=n_proc,
    )
    example = sharding.device_batch(next(iter(loader)))
    shapes = sharding.global_batch_shapes(example)
    txs = optim.make_optimizers(spec.optim, [p for p in stage.players if p not in spec.frozen])
    seed = int(config.seed)

    def init():
        rng = jax.random.fold_in(jax.random.PRNGKey(seed), index)
        init_rng, train_rng = jax.random.split(rng)
        variables = method.init(init_rng, _zeros_batch(shapes), stage.name)
        return tstate.create(train_rng, variables, txs)

    abstract = jax.eval_shape(init)
    shardings = sharding.state_shardings(abstract, mesh, config.sharding)
    batch_sh = sharding.batch_sharding(mesh)
    frozen = jax.device_put(method.frozen(stage.name), sharding.replicated(mesh))
    step_fn = make_train_step(method, stage, txs)
    train_step = jax.jit(
        step_fn,
        in_shardings=(shardings, sharding.replicated(mesh), batch_sh),
        out_shardings=(shardings, sharding.replicated(mesh)),
        donate_argnums=0,
    )
    return StageSetup(
        stage,
        index,
        offset,
        global_batch,
        loader,
        example,
        abstract,
        shardings,
        jax.jit(init, out_shardings=shardings),
        train_step,
        frozen,
        batch_sh,
        factory,
    )


def _carry(setup: StageSetup, st: tstate.TrainState, source: dict[str, Any], what: str) -> tstate.TrainState:
    """Copy matching leaves of ``source`` ({player: variables}) into the fresh state's params and state."""
    fresh = {p: {"params": st.params[p], **st.state[p]} for p in st.params}
    tree, carried, total = tstate.carry_matching(source, fresh)
    logging.info("stage %s: carried %d of %d variable leaves from %s", setup.stage.name, carried, total, what)
    params = {p: v["params"] for p, v in tree.items()}
    others = {p: {k: c for k, c in v.items() if k != "params"} for p, v in tree.items()}
    params = jax.device_put(params, setup.shardings.params)
    others = jax.device_put(others, setup.shardings.state)
    return st.replace(params=params, state=others)


def _init_from(path: str) -> dict[str, Any]:
    """Converted weights: ``{player: params}`` or ``{player: {collection: tree}}`` -> ``{player: variables}``."""
    tree = checkpoint.load_params(path)
    return {p: (v if "params" in v else {"params": v}) for p, v in tree.items()}


def _check_finite(
    stage: str,
    first_step: int,
    history: list[dict[str, float]],
    ckpt_step: int | None,
    ckpt_dir: pathlib.Path,
) -> None:
    for j, metrics in enumerate(history):
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if bad:
            terms = ", ".join(f"{k}={v}" for k, v in sorted(bad.items()))
            where = f"step {ckpt_step} in {ckpt_dir}" if ckpt_step is not None else "none was written"
            raise NonFiniteLossError(
                f"non-finite loss in stage {stage!r} at step {first_step + j + 1}: {terms}. Stopped; the last good "
                f"checkpoint is {where}."
            )


def _guard(level: str, quiet: bool):
    """Forbid device-to-host copies on steps that should not sync (a debugging switch, ``config.log``)."""
    return jax.transfer_guard_device_to_host(level) if level and quiet else contextlib.nullcontext()


def _every(n: int, step: int) -> bool:
    return n > 0 and step % n == 0


def run(config, workdir: str | pathlib.Path, *, loader_factory: LoaderFactory | None = None) -> RunResult:
    """Train every stage of ``config``; resume from the workdir's latest checkpoint if there is one."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    method = registry.get_method(config.method).build(config)
    mesh = sharding.make_mesh(config.mesh)
    factory = loader_factory or pipeline_loader_factory(config.data, method)
    stages = stages_from_config(config)
    offsets = np.cumsum([0] + [s.stage.num_steps for s in stages]).tolist()
    ckpt = checkpoint.Checkpointer(
        workdir / "checkpoints", keep=config.ckpt.keep, async_save=config.ckpt.async_save
    )
    writer = tlog.MetricWriter(workdir, tensorboard=config.log.get("tensorboard", True))
    logging.info("mesh %s over %d devices, %d process(es)", dict(mesh.shape), mesh.size, jax.process_count())

    try:
        for attempt in range(MAX_UNREADABLE + 1):
            try:
                return _run_from_latest(config, workdir, method, mesh, factory, stages, offsets, ckpt, writer)
            except _UnreadableCheckpoint as e:
                if attempt == MAX_UNREADABLE:
                    raise RuntimeError(
                        f"{MAX_UNREADABLE + 1} checkpoints in a row under {ckpt.directory} could not be "
                        f"restored; the last: {e}"
                    ) from e
                moved = ckpt.quarantine(e.step, str(e))
                logging.warning("%s; moved aside to %s, resuming from the previous checkpoint", e, moved)
        raise AssertionError("unreachable")
    finally:
        ckpt.close()
        writer.close()


def _latest_meta(ckpt: checkpoint.Checkpointer) -> tuple[int | None, dict | None]:
    latest = ckpt.latest_step()
    if latest is None:
        return None, None
    try:
        return latest, ckpt.meta(latest)
    except Exception as e:  # noqa: BLE001
        raise _UnreadableCheckpoint(latest, e) from e


def _run_from_latest(config, workdir, method, mesh, factory, stages, offsets, ckpt, writer) -> RunResult:
    """Every stage from the latest checkpoint on (or from scratch); raises _UnreadableCheckpoint before any
    training when the checkpoint it resumes from cannot be read."""
    latest, meta = _latest_meta(ckpt)
    start_index = 0
    if meta is not None:
        start_index = int(meta["stage_index"])
        if start_index >= len(stages) or stages[start_index].stage.name != meta["stage"]:
            raise ValueError(
                f"checkpoint {latest} in {ckpt.directory} is from stage {meta['stage']!r} (index "
                f"{start_index}), which this config's stages {[s.stage.name for s in stages]} lack"
            )
        logging.info(
            "resuming from checkpoint %d (stage %s, step %d)", latest, meta["stage"], meta["stage_step"]
        )

    previous: dict[str, Any] | None = None
    result = None
    with _StopFlag() as stop:
        for index, spec in enumerate(stages):
            stage = spec.stage
            if index < start_index:
                continue
            setup = setup_stage(config, method, mesh, factory, index, offsets[index], spec)
            resume = meta is not None and index == start_index
            if resume and int(meta["stage_step"]) >= stage.num_steps:
                st = _restore(ckpt, latest, setup, None)
                logging.info("stage %s already finished", stage.name)
                previous = st.variables()
                continue
            result = _run_stage(
                config,
                setup,
                method,
                ckpt,
                writer,
                stop,
                previous,
                (latest, meta) if resume else None,
            )
            if result.status != "finished":
                return result
            previous = result.final_variables
        if result is None:
            last = stages[-1].stage
            result = _Outcome("finished", last.name, last.num_steps, offsets[-1], {}, None)
        metrics = {"train": result.metrics, "stage": result.stage, "global_step": result.global_step}
        if config.get("evals"):
            variables = previous if previous is not None else result.final_variables
            metrics["eval"] = evaluation.run_evals(config, method, mesh, variables, factory)
            writer.scalars(result.global_step, {f"eval/{k}": v for k, v in metrics["eval"].items()})
        tlog.write_json(workdir / "metrics.json", metrics)
        final = previous if previous is not None else result.final_variables
        summary.finish(config, workdir, method, final, factory, writer, result.global_step)
        return RunResult(result.status, result.stage, result.stage_step, result.global_step, result.metrics)


@dataclasses.dataclass
class _Outcome(RunResult):
    final_variables: Any = None


def _run_stage(
    config,
    setup: StageSetup,
    method: Method,
    ckpt: checkpoint.Checkpointer,
    writer: tlog.MetricWriter,
    stop: _StopFlag,
    previous,
    resume,
) -> _Outcome:
    """One stage from its start (fresh, carried or from ``init_from``) or from ``resume = (step, meta)``."""
    stage, n = setup.stage, setup.stage.num_steps
    data_iter = iter(setup.loader)
    if resume is not None:
        step0, meta = resume
        st = _restore(ckpt, step0, setup, data_iter)
        start = int(meta["stage_step"])
    else:
        st = setup.init()
        start = 0
        if previous is not None:
            st = _carry(setup, st, previous, "the previous stage")
        elif config.get("init_from"):
            st = _carry(setup, st, _init_from(config.init_from), config.init_from)
    logging.info("stage %s: steps %d..%d, players %s", stage.name, start, n, stage.players)

    log_cfg = config.log
    predict = None
    progress = tlog.Progress(n, start, stage.name)
    pending: list[dict[str, jax.Array]] = []
    pending_start = start
    last_saved = ckpt.latest_step()
    logged: dict[str, float] = {}

    def flush() -> dict[str, float]:
        nonlocal pending, pending_start
        if not pending:
            return {}
        history = [{k: float(v) for k, v in m.items()} for m in jax.device_get(pending)]
        _check_finite(stage.name, pending_start, history, last_saved, ckpt.directory)
        means = {k: float(np.mean([h[k] for h in history])) for k in history[0]}
        pending_start += len(pending)
        pending = []
        return means

    def save(done: int) -> int:
        ckpt.save(
            setup.offset + done,
            st,
            data_iter,
            {
                "stage": stage.name,
                "stage_index": setup.index,
                "stage_step": done,
                "global_step": setup.offset + done,
            },
        )
        return setup.offset + done

    for i in range(start, n):
        done = i + 1
        is_log = _every(log_cfg.every_steps, done) or done == n
        is_image = _every(log_cfg.image_every_steps, done)
        is_ckpt = _every(config.ckpt.every_steps, done) or done == n
        due = {
            k: e for k, e in dict(config.get("evals", {})).items() if _every(e.get("every_steps", 0), done)
        }
        is_eval = bool(due)
        quiet = not (is_log or is_image or is_ckpt or is_eval or stop.set)
        with _guard(log_cfg.get("transfer_guard", ""), quiet):
            batch = sharding.device_batch(next(data_iter))
            st, metrics = setup.step(st, sharding.put_batch(batch, setup.batch_sharding))
            pending.append(metrics)
        if is_log:
            logged = flush()
            rates = progress.report(done)
            writer.scalars(
                setup.offset + done,
                {f"train/{k}": v for k, v in logged.items()}
                | {f"progress/{k}": v for k, v in rates.items()}
                | {"stage": setup.index},
                echo=False,
            )
            logging.info("%s", progress.line(done, rates, logged))
        if is_image:
            predict = predict or evaluation.make_predict(method, setup.batch_sharding.mesh)
            out = predict(st.variables(), setup.example)["image"]
            writer.image(
                setup.offset + done,
                f"samples/{stage.name}",
                tlog.image_grid(setup.example, out, log_cfg.num_images),
            )
        if is_eval:
            mesh = setup.batch_sharding.mesh
            values = evaluation.run_evals(config, method, mesh, st.variables(), setup.factory, due)
            writer.scalars(setup.offset + done, {f"eval/{k}": v for k, v in values.items()})
        if jax.process_count() > 1 and ckpt.manager.reached_preemption(setup.offset + done):
            stop.set = True  # all processes agree on this step (jax's preemption sync)
        if stop.set:
            flush()
            save(done)
            ckpt.wait()
            logging.warning("preempted: saved stage %s step %d; exiting", stage.name, done)
            return _Outcome("preempted", stage.name, done, setup.offset + done, logged)
        if is_ckpt:
            flush()  # never checkpoint a non-finite state
            last_saved = save(done)
    writer.flush()
    return _Outcome("finished", stage.name, n, setup.offset + n, logged, st.variables())


def evaluate(config, workdir: str | pathlib.Path, *, loader_factory: LoaderFactory | None = None) -> dict:
    """``config.evals`` on the workdir's latest checkpoint (else ``config.init_from``); writes metrics.json."""
    workdir = pathlib.Path(workdir)
    if not config.get("evals"):
        raise ValueError("config.evals is empty: nothing to evaluate")
    method = registry.get_method(config.method).build(config)
    mesh = sharding.make_mesh(config.mesh)
    factory = loader_factory or pipeline_loader_factory(config.data, method)
    stages = stages_from_config(config)
    offsets = np.cumsum([0] + [s.stage.num_steps for s in stages]).tolist()
    ckpt = checkpoint.Checkpointer(workdir / "checkpoints", keep=config.ckpt.keep, async_save=False)
    try:
        latest = ckpt.latest_step()
        if latest is not None:
            index = int(ckpt.meta(latest)["stage_index"])
            setup = setup_stage(config, method, mesh, factory, index, offsets[index], stages[index])
            variables = ckpt.restore(latest, setup.abstract, setup.shardings, None).variables()
            source = f"checkpoint {latest}"
        elif config.get("init_from"):
            index = len(stages) - 1
            setup = setup_stage(config, method, mesh, factory, index, offsets[index], stages[index])
            variables = _carry(
                setup, setup.init(), _init_from(config.init_from), config.init_from
            ).variables()
            source = config.init_from
        else:
            raise FileNotFoundError(
                f"no checkpoint under {ckpt.directory} and no config.init_from to evaluate"
            )
    finally:
        ckpt.close()
    values = evaluation.run_evals(config, method, mesh, variables, factory)
    tlog.write_json(workdir / "metrics.json", {"eval": values, "weights": source})
    return values
