"""One-command check of an accelerator (or this CPU): every method's training step and the Pallas kernels.

    python -m benchmarks.device_check                     # paper sizes on GPU/TPU, tiny sizes on CPU
    python -m benchmarks.device_check --size paper --methods gfla,patn --steps 5

Per method (its first ``configs/<method>_*.py``, last stage, the config's batch, synthetic data, random frozen
networks): compile time, step time, images/s, achieved TFLOP/s from XLA's cost analysis and its share of the
chip's peak, and peak device memory. Then each Pallas kernel (``ptx.ops``), compiled natively on GPU/TPU and
interpreted on CPU, against its jnp path: max abs error of the forward and of the gradient, and both timings.
Made to finish in under 5 minutes on one H100/H200 or TPU chip at paper sizes; on CPU (what CI runs) at tiny
sizes with cheap compiles.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import pkgutil
import resource
import time
import warnings
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import method_batch, plain_flops

# Dense peak TFLOP/s per chip (vendor figures; f32 rows for CPU-class work are not listed): bf16 / f32.
PEAKS: dict[str, tuple[float, float]] = {
    "H200": (989.0, 67.0),
    "H100": (989.0, 67.0),
    "A100": (312.0, 19.5),
    "L4": (121.0, 30.3),
    "TPU v4": (275.0, 275.0),
    "TPU v5 lite": (197.0, 197.0),
    "TPU v5e": (197.0, 197.0),
    "TPU v5p": (459.0, 459.0),
    "TPU v6 lite": (918.0, 918.0),
}
# Cheap XLA:CPU compiles for the CPU run (values are checked for finiteness, not speed, there).
FAST_CPU = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@dataclasses.dataclass
class StepRow:
    method: str
    config: str
    stage: str
    batch: int
    size: tuple[int, int]
    compile_s: float
    step_s: float
    flops: float
    peak_bytes: int | None
    finite: bool

    @property
    def images_per_s(self) -> float:
        return self.batch / self.step_s

    @property
    def tflops(self) -> float:
        return self.flops / self.step_s / 1e12


@dataclasses.dataclass
class KernelRow:
    op: str
    mode: str  # "compiled" | "interpreted"
    fwd_err: float
    grad_err: float
    pallas_s: float
    jnp_s: float


def _configs_by_method() -> dict[str, str]:
    import configs

    out: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(configs.__path__), key=lambda m: m.name):
        if info.name == "common" or info.name.startswith("_"):
            continue
        method = importlib.import_module(f"configs.{info.name}").get_config("tiny").method
        out.setdefault(method, info.name)
    return out


def peak_tflops(dtype: str) -> float | None:
    """The chip's dense peak for ``dtype`` (None when unknown, e.g. on CPU)."""
    kind = jax.devices()[0].device_kind
    for name, (bf16, f32) in PEAKS.items():
        if name.lower() in kind.lower():
            return bf16 if dtype == "bfloat16" else f32
    return None


def peak_memory() -> int | None:
    """Peak bytes in use on device 0 (accelerators), else this process's peak resident memory."""
    stats = jax.devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _timed(fn: Callable, steps: int) -> float:
    jax.block_until_ready(fn())
    start = time.perf_counter()
    for _ in range(steps):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / steps


def check_step(method_name: str, config_name: str, variant: str, steps: int, fast: bool) -> StepRow:
    """Compile and time the last stage's training step of ``configs/<config_name>.py:<variant>``."""
    from ptx import registry
    from ptx.train import loop, sharding

    config = importlib.import_module(f"configs.{config_name}").get_config(variant)
    config = config.copy_and_resolve_references()
    with config.unlocked():
        if "vgg_fallback_random" in config:
            config.vgg_fallback_random = True  # timings do not depend on the frozen networks' values
            config.vgg_path = ""
        config.mesh.shape = (1,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        method = registry.get_method(method_name).build(config)
        mesh = sharding.make_mesh(config.mesh)
        spec = loop.stages_from_config(config)[-1]
        host = method_batch(method, config.data, spec.batch_size)
        setup = loop.setup_stage(config, method, mesh, lambda **_: [host], 0, 0, spec)
    state = setup.init()
    batch = sharding.put_batch(sharding.device_batch(host), setup.batch_sharding)
    start = time.perf_counter()
    lowered = setup.train_step.lower(state, setup.frozen, batch)
    compiled = lowered.compile(FAST_CPU) if fast else lowered.compile()
    compile_s = time.perf_counter() - start
    flops = plain_flops(setup.train_step, state, setup.frozen, batch)
    holder = {"state": state}

    def one():
        holder["state"], metrics = compiled(holder["state"], setup.frozen, batch)
        return metrics

    step_s = _timed(one, steps)
    metrics = jax.device_get(one())
    finite = all(np.isfinite(float(v)) for v in metrics.values())
    size = tuple(int(s) for s in config.data.image_size)
    return StepRow(
        method_name,
        f"{config_name}:{variant}",
        spec.stage.name,
        spec.batch_size,
        size,
        compile_s,
        step_s,
        flops,
        peak_memory(),
        finite,
    )


def _kernel_cases(tiny: bool) -> list[tuple[str, Callable[[str], Callable], tuple]]:
    """(name, impl -> fn(*args), args) for each Pallas op at a GFLA-like size (tiny on CPU)."""
    from ptx import ops

    b, h, w, c = (1, 8, 8, 4) if tiny else (8, 64, 64, 256)
    rs = np.random.RandomState(0)
    image = jnp.asarray(rs.randn(b, h, w, c), jnp.float32)
    flow = jnp.asarray(rs.uniform(-3, 3, (b, h, w, 2)), jnp.float32)
    return [
        ("resample", lambda impl: lambda x, f: ops.resample(x, f, impl=impl), (image, flow)),
        (
            "gaussian_resample",
            lambda impl: lambda x, f: ops.gaussian_resample(x, f, 4, 1, 2.0, impl=impl),
            (image, flow),
        ),
        (
            "extract_blocks k3",
            lambda impl: lambda x, f: ops.extract_blocks(x, f, 3, impl=impl),
            (image, flow),
        ),
    ]


def check_kernels(steps: int, tiny: bool) -> list[KernelRow]:
    from ptx.ops._dispatch import interpret_mode

    rows = []
    for name, make, args in _kernel_cases(tiny):
        outs, times = {}, {}
        for impl in ("pallas", "xla"):
            fn = make(impl)
            fwd = jax.jit(fn)
            grad = jax.jit(jax.grad(lambda *a, fn=fn: jnp.sum(fn(*a) ** 2), argnums=(0, 1)))
            outs[impl] = (np.asarray(fwd(*args)), [np.asarray(g) for g in grad(*args)])
            times[impl] = _timed(lambda fwd=fwd, args=args: fwd(*args), steps)
        fwd_err = float(np.max(np.abs(outs["pallas"][0] - outs["xla"][0])))
        grad_err = max(float(np.max(np.abs(a - b))) for a, b in zip(outs["pallas"][1], outs["xla"][1]))
        mode = "interpreted" if interpret_mode() else "compiled"
        rows.append(KernelRow(name, mode, fwd_err, grad_err, times["pallas"], times["xla"]))
    return rows


def _fmt_bytes(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


def report(steps: list[StepRow], kernels: list[KernelRow], dtype: str) -> str:
    peak = peak_tflops(dtype)
    device = jax.devices()[0]
    lines = [
        f"device: {device.device_kind} ({device.platform}), {jax.device_count()} device(s); "
        f"peak {'unknown' if peak is None else f'{peak:.0f} TFLOP/s ({dtype})'}",
        f"{'method':8s} {'config':24s} {'stage':8s} {'batch':>5s} {'size':>9s} {'compile':>9s} {'step':>10s} "
        f"{'img/s':>8s} {'TFLOP/s':>8s} {'% peak':>7s} {'peak mem':>10s} finite",
    ]
    for r in steps:
        share = "-" if peak is None else f"{100 * r.tflops / peak:.1f}"
        lines.append(
            f"{r.method:8s} {r.config:24s} {r.stage:8s} {r.batch:5d} {r.size[0]:>4d}x{r.size[1]:<4d} "
            f"{r.compile_s:8.1f}s {r.step_s * 1e3:8.1f}ms {r.images_per_s:8.2f} {r.tflops:8.3f} {share:>7s} "
            f"{_fmt_bytes(r.peak_bytes):>10s} {'yes' if r.finite else 'NO'}"
        )
    lines.append(f"{'pallas kernel':20s} {'mode':12s} {'fwd max err':>12s} {'grad max err':>12s} "
                 f"{'pallas':>10s} {'jnp':>10s}")  # fmt: skip
    for k in kernels:
        lines.append(
            f"{k.op:20s} {k.mode:12s} {k.fwd_err:12.2e} {k.grad_err:12.2e} {k.pallas_s * 1e3:8.2f}ms "
            f"{k.jnp_s * 1e3:8.2f}ms"
        )
    return "\n".join(lines)


def run(argv: Sequence[str] | None = None) -> tuple[list[StepRow], list[KernelRow]]:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.device_check", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--size", choices=("auto", "tiny", "paper"), default="auto", help="auto: paper off CPU")
    ap.add_argument("--methods", default="", help="comma-separated method names (default: every registered)")
    ap.add_argument("--steps", type=int, default=0, help="timed steps per method (default: 5, CPU: 1)")
    ap.add_argument("--dtype", default="float32", help="the dtype whose peak the %% column uses")
    args = ap.parse_args(argv)
    on_cpu = jax.default_backend() == "cpu"
    variant = {"auto": "tiny" if on_cpu else "paper", "tiny": "tiny", "paper": "paper"}[args.size]
    steps = args.steps or (1 if on_cpu else 5)
    by_method = _configs_by_method()
    wanted = [m for m in args.methods.split(",") if m] or sorted(by_method)
    unknown = sorted(set(wanted) - set(by_method))
    if unknown:
        raise SystemExit(f"error: no config for methods {unknown}; known: {sorted(by_method)}")
    rows = []
    for m in wanted:
        print(f"[device_check] {m}: compiling configs/{by_method[m]}.py:{variant} ...", flush=True)
        rows.append(check_step(m, by_method[m], variant, steps, fast=on_cpu))
    kernels = check_kernels(steps, tiny=variant == "tiny")
    print(report(rows, kernels, args.dtype), flush=True)
    return rows, kernels


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    run()
