"""Train-step throughput of a method config: compile time, step time, steps/s, images/s, achieved FLOP/s.

    python -m benchmarks.train_step --config configs/gfla_fashion.py:demo [--batch 8] [--steps 10] [--stage full]
    python -m benchmarks.train_step --config configs/toy_puppets.py:tiny --config.model.dtype=bfloat16

The step is the trainer's own (``ptx.train.loop.setup_stage``: same sharding, donation and jit), fed one
synthetic batch of the config's shapes, so no dataset is needed. FLOPs come from XLA's cost analysis of the
compiled step, which describes one device's partition of the program; achieved FLOP/s multiplies it by the
device count (replicated work included). When torch imports and ``benchmarks/torch_reference/<method>.py``
exists, the time per step of its ``torch_reference(config, batch_size, stage=...)`` (the same optimizer step
re-implemented in PyTorch, checked against the original's goldens, on a batch held by the callable) is printed
beside ours.
"""

from __future__ import annotations

import importlib.util
import os

import jax
from absl import app, flags
from ml_collections import config_flags

from benchmarks import timing

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/<method>_<data>.py[:variant]", lock_config=True
)
_BATCH = flags.DEFINE_integer("batch", None, "global batch size (default: config.data.batch_size)")
_STEPS = flags.DEFINE_integer("steps", 10, "timed steps (after one warm-up step)")
_STAGE = flags.DEFINE_string("stage", None, "stage to time (default: the last one)")
flags.mark_flags_as_required(["config"])


def _torch_time(config, batch_size: int, steps: int, stage: str) -> tuple[float, float, str] | None:
    """(wall and CPU seconds per step, thread settings) of ``benchmarks.torch_reference.<method>``, or None without one."""
    from benchmarks import torch_reference

    ref = torch_reference.get(config.method)
    if ref is None:
        return None
    import torch

    step_s, cpu_s = timing.timed_mean(ref.torch_reference(config, batch_size, stage=stage), steps)
    threads = f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY {torch_reference.wait_policy()}"
    return step_s, cpu_s, threads


def main(argv: list[str]) -> None:
    del argv
    config = _CONFIG.value
    batch_size = _BATCH.value or int(config.data.batch_size)
    work, ts = timing.train_step_work(config, batch_size, _STAGE.value)
    compile_s, flops, mesh = work.compile_s, work.flops, ts.mesh
    step_s, cpu_s = timing.timed_mean(work.call, _STEPS.value)

    h, w = config.data.image_size
    print(
        f"{config.method} stage {ts.stage!r}: batch {batch_size} at {h}x{w}, "
        f"{mesh.size} {jax.devices()[0].platform} device(s), dtype {config.model.get('dtype', 'float32')}"
    )
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times grow with load)")
    print(f"  compile      {compile_s:8.2f} s")
    print(
        f"  step         {step_s * 1e3:8.1f} ms   CPU {cpu_s:7.2f} s   ({1 / step_s:.3g} steps/s, "
        f"{batch_size / step_s:.3g} images/s)"
    )
    total = flops * mesh.size
    print(
        f"  FLOPs/step   {flops:10.3e} per device   achieved {total / step_s / 1e9:.3g} GFLOP/s (all devices)"
    )
    torch_result = _torch_time(config, batch_size, _STEPS.value, ts.stage)
    if torch_result is not None:
        torch_s, torch_cpu, threads = torch_result
        print(
            f"  PyTorch      {torch_s * 1e3:8.1f} ms   CPU {torch_cpu:7.2f} s   ({batch_size / torch_s:.3g} images/s)  "
            f"[PyTorch re-implementation checked against the original's goldens, CPU, {threads}]"
        )
    elif importlib.util.find_spec("torch") is None:
        print("  PyTorch      (torch not installed)")
    else:
        print(f"  PyTorch      (no benchmarks/torch_reference/{config.method}.py)")


if __name__ == "__main__":
    app.run(main)
