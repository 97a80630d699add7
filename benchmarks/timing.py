"""The ptx side of the CPU benchmarks, built once and shared by ``generator``, ``train_step`` and ``compare``.

Each builder returns a ``Work``: a compiled executable and a no-argument ``call`` that runs it once on inputs it
holds (the train step threads its donated state through), so a timing loop can never trigger a recompile and
every caller times exactly the same program.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks.common import method_batch, plain_flops


@dataclasses.dataclass
class Work:
    """One compiled ptx program and the call that runs it; ``flops`` from XLA's cost analysis of the plain
    program (``benchmarks.common.plain_flops``)."""

    name: str
    call: Callable[[], Any]
    flops: float
    compile_s: float


def for_timing(config, batch_size: int) -> None:
    """Set the batch size and random frozen networks (timings do not depend on the VGG weights' values)."""
    with config.unlocked():
        config.data.batch_size = batch_size
        if "vgg_fallback_random" in config:
            config.vgg_fallback_random = True
        # CASD's batch statistics per group of spade_group samples: a smaller batch is one (partial) group.
        group = int(config.get("model", {}).get("spade_group", 0) or 0)
        if group and batch_size % group:
            config.model.spade_group = 0


def _compile(fn, *args) -> tuple[Any, float]:
    start = time.perf_counter()
    compiled = fn.lower(*args).compile()
    return compiled, time.perf_counter() - start


def generator_fns(config, batch_size: int, player: str | None = None) -> tuple[Callable, Callable, tuple]:
    """(jitted forward, jitted grad of mean|image| w.r.t. the generator's params, their args).

    The work the originals' CPU timings quote: ``predict(...)["image"]`` of the generator at ``batch_size``,
    random weights drawn on the host (``ptx.api._random_variables``) so the model's initialisers need no compile.
    """
    from ptx import api, registry

    for_timing(config, batch_size)
    method = registry.get_method(config.method).build(config)
    player = player or getattr(method, "generator", "gen")
    stage = config.stages[-1].name
    host = method_batch(method, config.data, batch_size)
    shapes = jax.eval_shape(lambda k: method.init(k, host, stage), jax.random.key(0))
    variables = jax.device_put(api._random_variables(shapes))
    batch = jax.device_put(host)

    def image(params, variables, batch):
        gen = {**variables[player], "params": params}
        return method.predict({**variables, player: gen}, batch)["image"]

    forward = jax.jit(image)
    grad = jax.jit(jax.grad(lambda p, v, b: jnp.mean(jnp.abs(image(p, v, b)))))
    return forward, grad, (variables[player]["params"], variables, batch)


def generator_work(config, batch_size: int = 1, player: str | None = None) -> Work:
    """The generator's forward+backward (``generator_fns``' grad), compiled."""
    _, grad, args = generator_fns(config, batch_size, player)
    compiled, compile_s = _compile(grad, *args)
    return Work("generator f+b", lambda: compiled(*args), plain_flops(grad, *args), compile_s)


@dataclasses.dataclass
class TrainSetup:
    """What ``train_step_work`` builds, for callers that print more (mesh size, stage name)."""

    setup: Any  # ptx.train.loop.StageSetup
    state: Any
    batch: dict[str, jax.Array]
    mesh: Any
    stage: str


def train_setup(config, batch_size: int, stage: str | None = None) -> TrainSetup:
    """The trainer's own step (``ptx.train.loop.setup_stage``: sharding, donation, jit) on one synthetic batch.

    The state holds random variables drawn on the host, not the method's initialisers: those are a separate
    jitted program that XLA on CPU takes minutes to compile, and step times do not depend on the values.
    """
    from ptx import api, registry
    from ptx.train import loop, optim, sharding
    from ptx.train import state as tstate

    for_timing(config, batch_size)
    method = registry.get_method(config.method).build(config)
    mesh = sharding.make_mesh(config.mesh)
    stages = loop.stages_from_config(config)
    index = len(stages) - 1 if stage is None else [s.stage.name for s in stages].index(stage)
    spec = dataclasses.replace(stages[index], batch_size=batch_size)
    host = method_batch(method, config.data, batch_size // jax.process_count())
    setup = loop.setup_stage(config, method, mesh, lambda **_: [host], index, 0, spec)
    name = spec.stage.name
    shapes = jax.eval_shape(lambda k: method.init(k, setup.example, name), jax.random.key(0))
    txs = optim.make_optimizers(spec.optim, [p for p in spec.stage.players if p not in spec.frozen])
    state = tstate.create(jax.random.PRNGKey(int(config.seed)), api._random_variables(shapes), txs)
    state = jax.device_put(state, setup.shardings)
    batch = sharding.put_batch(sharding.device_batch(host), setup.batch_sharding)
    return TrainSetup(setup, state, batch, mesh, name)


def train_step_work(config, batch_size: int, stage: str | None = None) -> tuple[Work, TrainSetup]:
    """One full training step (every player's loss and update) of ``stage`` (default the last), compiled."""
    ts = train_setup(config, batch_size, stage)
    compiled, compile_s = _compile(ts.setup.train_step, ts.state, ts.setup.frozen, ts.batch)
    holder = {"state": ts.state}
    ts.state = None  # donated by the first call; the holder carries the live state

    def call():
        holder["state"], metrics = compiled(holder["state"], ts.setup.frozen, ts.batch)
        return holder["state"], metrics

    flops = plain_flops(ts.setup.train_step, holder["state"], ts.setup.frozen, ts.batch)
    return Work(f"train step {ts.stage!r}", call, flops, compile_s), ts


def timed(call: Callable[[], Any]) -> tuple[float, float]:
    """(wall, process CPU) seconds of one blocking call. CPU time stays meaningful when other jobs share the
    cores; it counts every thread of this process (jax's and torch's pools alike)."""
    start, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(call())
    return time.perf_counter() - start, time.process_time() - cpu


def timed_mean(call: Callable[[], Any], steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds per call over ``steps`` calls after one untimed warm-up call."""
    jax.block_until_ready(call())
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        out = call()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps


def matmul_ceiling(n: int = 2048, calls: int = 3) -> tuple[float, float]:
    """The machine's f32 matmul rate as (GFLOP per wall second, GFLOP per CPU second), best of ``calls``: a
    yardstick for how much of the CPU a model's step uses (convolutions rarely beat a plain large matmul)."""
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    mm = jax.jit(jnp.matmul).lower(a, b).compile()
    jax.block_until_ready(mm(a, b))
    flops = 2.0 * n**3
    walls, cpus = zip(*(timed(lambda: mm(a, b)) for _ in range(calls)), strict=True)
    return flops / min(walls) / 1e9, flops / max(min(cpus), 1e-9) / 1e9
