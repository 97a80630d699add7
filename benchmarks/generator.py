"""Generator forward and forward+backward time, the figure the original codes' CPU timings quote.

    python -m benchmarks.generator --config configs/gfla_fashion.py [--batch 1] [--steps 5]
    python -m benchmarks.generator --config configs/patn_fashion.py

The reference cards time each original generator on this CPU as: batch 1, the paper's input size, train mode,
scalar loss ``mean|image|``, gradients for every generator parameter (GFLA 1.86 s, PATN 2.79 s, CASD 3.5 s).
This measures the same work for a ptx method: ``predict(...)["image"]`` of the player ``gen`` (random weights,
drawn on the host so the model's initialisers need no compile), the loss ``mean|image|`` and its gradient with
respect to ``gen``'s params, jitted once. When torch imports and ``benchmarks.torch_reference.<method>`` offers
``generator_step(config, batch_size)``, the same work in PyTorch is timed beside it.
"""

from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
from absl import app, flags
from ml_collections import config_flags

from benchmarks.common import compiled_flops, method_batch

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/<method>_<data>.py[:variant]", lock_config=True
)
_BATCH = flags.DEFINE_integer("batch", 1, "batch size")
_STEPS = flags.DEFINE_integer("steps", 5, "timed calls (after one warm-up call)")
_PLAYER = flags.DEFINE_string("player", "gen", "the generator's player name")
flags.mark_flags_as_required(["config"])


def _timed(fn, steps: int) -> tuple[float, float]:
    """(wall, process CPU) seconds per call. CPU time stays meaningful when other jobs share the cores."""
    jax.block_until_ready(fn())  # warm-up
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps


def main(argv: list[str]) -> None:
    del argv
    from ptx import api, registry

    config = _CONFIG.value
    batch_size, player = _BATCH.value, _PLAYER.value
    with config.unlocked():
        config.data.batch_size = batch_size
        if "vgg_fallback_random" in config:
            config.vgg_fallback_random = True
    method = registry.get_method(config.method).build(config)
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
    params = variables[player]["params"]

    rows = []
    for name, fn in (("forward", forward), ("forward+backward", grad)):
        start = time.perf_counter()
        compiled = fn.lower(params, variables, batch).compile()
        compile_s = time.perf_counter() - start
        step_s, cpu_s = _timed(lambda c=compiled: c(params, variables, batch), _STEPS.value)
        rows.append((name, compile_s, step_s, cpu_s, compiled_flops(compiled)))

    h, w = config.data.image_size
    n_params = sum(x.size for x in jax.tree.leaves(params))
    print(
        f"{config.method} generator ({n_params / 1e6:.2f} M params): batch {batch_size} at {h}x{w}, "
        f"{jax.devices()[0].platform}, dtype {config.model.get('dtype', 'float32')}"
    )
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times grow with load)")
    for name, compile_s, step_s, cpu_s, flops in rows:
        print(
            f"  {name:17s} {step_s * 1e3:9.1f} ms  CPU {cpu_s:6.2f} s  ({batch_size / step_s:.3g} images/s)  "
            f"{flops / step_s / 1e9:6.1f} GFLOP/s of {flops / 1e9:.1f} GFLOP  [compile {compile_s:.1f} s]"
        )
    try:
        from benchmarks import torch_reference

        ref = torch_reference.get(config.method)
    except ImportError:
        ref = None
    if ref is None or not hasattr(ref, "generator_step"):
        print("  PyTorch           (torch not installed or no torch reference for this method)")
        return
    torch_s, torch_cpu = _timed(ref.generator_step(config, batch_size), _STEPS.value)
    print(
        f"  PyTorch f+b       {torch_s * 1e3:9.1f} ms  CPU {torch_cpu:6.2f} s  ({batch_size / torch_s:.3g} "
        f"images/s)  [{ref.DESCRIPTION}, {torch_reference.wait_policy()}]"
    )


if __name__ == "__main__":
    app.run(main)
