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
from absl import app, flags
from ml_collections import config_flags

from benchmarks import timing
from benchmarks.common import plain_flops

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/<method>_<data>.py[:variant]", lock_config=True
)
_BATCH = flags.DEFINE_integer("batch", 1, "batch size")
_STEPS = flags.DEFINE_integer("steps", 5, "timed calls (after one warm-up call)")
_PLAYER = flags.DEFINE_string("player", "gen", "the generator's player name")
flags.mark_flags_as_required(["config"])


def main(argv: list[str]) -> None:
    del argv
    config = _CONFIG.value
    batch_size = _BATCH.value
    forward, grad, args = timing.generator_fns(config, batch_size, _PLAYER.value)
    params = args[0]

    rows = []
    for name, fn in (("forward", forward), ("forward+backward", grad)):
        start = time.perf_counter()
        compiled = fn.lower(*args).compile()
        compile_s = time.perf_counter() - start
        step_s, cpu_s = timing.timed_mean(lambda c=compiled: c(*args), _STEPS.value)
        rows.append((name, compile_s, step_s, cpu_s, plain_flops(fn, *args)))

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
    torch_s, torch_cpu = timing.timed_mean(ref.generator_step(config, batch_size), _STEPS.value)
    print(
        f"  PyTorch f+b       {torch_s * 1e3:9.1f} ms  CPU {torch_cpu:6.2f} s  ({batch_size / torch_s:.3g} "
        f"images/s)  [{ref.DESCRIPTION}, {torch_reference.wait_policy()}]"
    )


if __name__ == "__main__":
    app.run(main)
