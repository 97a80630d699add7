"""ptx against PyTorch on this CPU, both measured in one process, interleaved and repeated.

    python -m benchmarks.compare --methods gfla,patn --rounds 3 --train-batch 2
    python -m benchmarks.compare --tiny --rounds 2           # every method, tiny configs

Why one process and interleaving: on a shared 2-core machine the load changes from minute to minute, so timings
of ptx and PyTorch taken in separate runs (or one after the other) compare two different machines. Here each
work row is compiled / built once, warmed up once per side, then timed as ptx, PyTorch, ptx, PyTorch, ... for
``--rounds`` rounds; the ratio of process-CPU seconds is taken per round (the two calls saw nearly the same
load) and reported as its median with its min-max spread. Work rows per method (its first
``configs/<method>_*.py``, paper variant unless ``--tiny``):

* generator forward+backward at batch 1: the gradient of mean|image| for every generator parameter (the work
  the originals' CPU timings quote), against ``benchmarks.torch_reference.<method>.generator_step``;
* a full training step of the last stage (every player's losses and updates) at ``--train-batch``, against
  ``torch_reference``.

Achieved GFLOP/s are XLA's cost-analysis FLOPs of the ptx program over its median wall and CPU seconds, shown
as a share of a measured f32 matmul rate (``benchmarks.timing.matmul_ceiling``, best of the probes at start
and end). Methods without a PyTorch reference get ptx-only rows.
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import gc
import importlib
import math
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax

from benchmarks import timing

NO_REFERENCE = "no PyTorch reference"


@dataclasses.dataclass
class Row:
    """One work row: per-round (wall, CPU) seconds of each side; ``torch_*`` empty without a reference."""

    method: str
    work: str
    batch: int
    size: tuple[int, int]
    flops: float
    compile_s: float
    ptx_wall: list[float]
    ptx_cpu: list[float]
    torch_wall: list[float] = dataclasses.field(default_factory=list)
    torch_cpu: list[float] = dataclasses.field(default_factory=list)
    note: str = ""

    @property
    def has_torch(self) -> bool:
        return bool(self.torch_cpu)

    @property
    def ratios(self) -> list[float]:
        """ptx / PyTorch CPU seconds, per round (below 1: ptx used less CPU)."""
        return [p / t for p, t in zip(self.ptx_cpu, self.torch_cpu, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios) if self.has_torch else math.nan

    @property
    def spread(self) -> tuple[float, float]:
        r = self.ratios
        return (min(r), max(r)) if r else (math.nan, math.nan)

    @property
    def gflops_wall(self) -> float:
        return self.flops / statistics.median(self.ptx_wall) / 1e9

    @property
    def gflops_cpu(self) -> float:
        return self.flops / statistics.median(self.ptx_cpu) / 1e9


@dataclasses.dataclass
class Report:
    command: str
    rows: list[Row]
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float]
    ceiling_start: tuple[float, float]  # GFLOP per wall second, per CPU second
    ceiling_end: tuple[float, float]
    torch_threads: str

    @property
    def ceiling(self) -> tuple[float, float]:
        """The best matmul rates seen: the machine's ceiling, not the load of the moment."""
        wall, cpu = zip(self.ceiling_start, self.ceiling_end, strict=True)
        return max(wall), max(cpu)


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.compare", description=__doc__.split("\n")[0])
    p.add_argument("--methods", default="", help="comma-separated (default: every method with a config)")
    p.add_argument("--rounds", type=int, default=3, help="timed (ptx, PyTorch) pairs per row")
    p.add_argument("--train-batch", type=int, default=2, help="batch size of the training-step row")
    p.add_argument("--tiny", action="store_true", help="tiny configs (tests), not paper sizes")
    p.add_argument("--skip-step", action="store_true", help="only the generator rows")
    args = p.parse_args(list(argv))
    if args.rounds < 1 or args.train_batch < 1:
        p.error("--rounds and --train-batch must be at least 1")
    return args


def _interleave(ptx_call: Callable[[], Any], torch_call: Callable[[], Any] | None, rounds: int) -> tuple:
    """Warm each side once, then ``rounds`` times: time ptx, time PyTorch. Returns the four per-round lists."""
    jax.block_until_ready(ptx_call())
    if torch_call is not None:
        torch_call()
    pw, pc, tw, tc = [], [], [], []
    for _ in range(rounds):
        wall, cpu = timing.timed(ptx_call)
        pw.append(wall)
        pc.append(cpu)
        if torch_call is not None:
            wall, cpu = timing.timed(torch_call)
            tw.append(wall)
            tc.append(cpu)
    return pw, pc, tw, tc


def _config(method: str, config_name: str, tiny: bool):
    config = importlib.import_module(f"configs.{config_name}").get_config("tiny" if tiny else "paper")
    config = config.copy_and_resolve_references()
    with config.unlocked():
        if "vgg_path" in config:
            config.vgg_path = ""  # random VGG: no weights file needed, same work
        config.mesh.shape = (1,)  # one device, as the PyTorch side (tests force several virtual CPU devices)
    if config.method != method:
        raise ValueError(f"configs/{config_name}.py is method {config.method!r}, not {method!r}")
    return config


def _rows_for(method: str, config_name: str, args: argparse.Namespace) -> list[Row]:
    from benchmarks import torch_reference

    ref = torch_reference.get(method)
    rows = []
    works = [("gen", 1)] + ([] if args.skip_step else [("step", args.train_batch)])
    for kind, batch in works:
        config = _config(method, config_name, args.tiny)
        size = tuple(int(v) for v in config.data.image_size)
        if kind == "gen":
            work = timing.generator_work(config, batch)
            torch_call = ref.generator_step(config, batch) if ref and hasattr(ref, "generator_step") else None
            label = "generator f+b"
        else:
            work, ts = timing.train_step_work(config, batch)
            torch_call = ref.torch_reference(config, batch, stage=ts.stage) if ref else None
            label = f"train step {ts.stage!r}"
        pw, pc, tw, tc = _interleave(work.call, torch_call, args.rounds)
        note = "" if torch_call is not None else NO_REFERENCE
        rows.append(Row(method, label, batch, size, work.flops, work.compile_s, pw, pc, tw, tc, note))
        r = rows[-1]
        print(
            f"  [{method} {label} batch {batch}: compile {work.compile_s:.1f} s, median CPU s ptx "
            f"{_s(pc)} PyTorch {_s(tc)}, ratio {r.ratio:.3f}]",
            file=sys.stderr,
        )  # a record that survives if a later row dies (paper sizes on a shared machine can run out of memory)
        work = torch_call = ts = None
        _release_memory()
    return rows


def _release_memory() -> None:
    """Free this row's programs and models before the next paper-sized one: collect, then hand glibc's freed
    heap back to the system (torch's and XLA's freed buffers otherwise stay in this process's RSS)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc


def _torch_threads() -> str:
    from benchmarks import torch_reference

    try:
        import torch
    except ImportError:
        return "torch not installed"
    return f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY {torch_reference.wait_policy()}"


def run(argv: Sequence[str]) -> Report:
    """Measure every requested row (see the module doc) and return them with the run's circumstances."""
    from benchmarks.device_check import _configs_by_method

    args = _parse(argv)
    command = shlex.join(["python", "-m", "benchmarks.compare", *argv])
    by_method = _configs_by_method()
    methods = [m for m in args.methods.split(",") if m] or list(by_method)
    unknown = [m for m in methods if m not in by_method]
    if unknown:
        raise SystemExit(f"no config for {unknown}; methods with one: {', '.join(by_method)}")
    load_start = os.getloadavg()
    ceiling_start = timing.matmul_ceiling()
    rows = []
    for m in methods:
        rows += _rows_for(m, by_method[m], args)
    ceiling_end = timing.matmul_ceiling()
    return Report(command, rows, load_start, os.getloadavg(), ceiling_start, ceiling_end, _torch_threads())


def _s(values: list[float]) -> str:
    """A median in seconds to 3 significant digits (tiny configs take milliseconds, paper ones seconds)."""
    return f"{statistics.median(values):.3g}" if values else "-"


def format_report(report: Report) -> str:
    """The tables as text: one per method, then the matmul ceiling and the load around the run."""
    ceil_wall, ceil_cpu = report.ceiling
    n = len(report.rows[0].ptx_cpu) if report.rows else 0
    lines = [
        f"$ {report.command}",
        f"jax {jax.__version__} on {jax.devices()[0].platform} ({os.cpu_count()} cores); {report.torch_threads}",
        f"load average at start {' '.join(f'{x:.2f}' for x in report.load_start)}",
        f"f32 matmul ceiling: {ceil_wall:.1f} GFLOP/s wall, {ceil_cpu:.1f} GFLOP per CPU-s "
        f"(start {report.ceiling_start[0]:.1f} / {report.ceiling_start[1]:.1f}, "
        f"end {report.ceiling_end[0]:.1f} / {report.ceiling_end[1]:.1f})",
        f"medians of {n} interleaved rounds; seconds per call; ratio = ptx CPU-s / PyTorch CPU-s [min-max]",
    ]
    head = (
        f"  {'work':24s} {'batch':>5s} {'ptx wall':>8s} {'ptx CPU':>8s} {'pt wall':>8s} {'pt CPU':>8s}  "
        f"{'CPU ratio':>18s}  {'GFLOP':>7s} {'GFLOP/s wall':>15s} {'GFLOP/CPU-s':>15s}"
    )
    for method in dict.fromkeys(r.method for r in report.rows):
        rows = [r for r in report.rows if r.method == method]
        h, w = rows[0].size
        lines += ["", f"{method} ({h}x{w})", head]
        for r in rows:
            if r.has_torch:
                lo, hi = r.spread
                ratio = f"{r.ratio:5.2f} [{lo:.2f}-{hi:.2f}]"
            else:
                ratio = r.note
            lines.append(
                f"  {r.work:24s} {r.batch:5d} {_s(r.ptx_wall):>8s} {_s(r.ptx_cpu):>8s} {_s(r.torch_wall):>8s} "
                f"{_s(r.torch_cpu):>8s}  {ratio:>18s}  {r.flops / 1e9:7.1f} "
                f"{r.gflops_wall:6.1f} ({r.gflops_wall / ceil_wall:4.0%}) "
                f"{r.gflops_cpu:6.1f} ({r.gflops_cpu / ceil_cpu:4.0%})"
            )
    lines += ["", f"load average at end {' '.join(f'{x:.2f}' for x in report.load_end)}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> Report:
    """Run and print; returns the report for callers (the test) that check its numbers."""
    start = time.perf_counter()
    report = run(sys.argv[1:] if argv is None else argv)
    print(format_report(report))
    print(f"({time.perf_counter() - start:.0f} s in all)")
    return report


if __name__ == "__main__":
    main()
