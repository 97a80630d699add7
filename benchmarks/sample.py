"""Inference speed of ``ptx.load`` samplers: first-call compile time, batch-1 latency, batch-32 throughput.

    python -m benchmarks.sample [--models gfla_fashion:demo,gfla_fashion:paper] [--repeats 3]

Random weights (speed does not depend on them). FLOP/s from XLA's cost analysis of the compiled predict.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from ptx import api


def _inputs(size, n, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, (n, *size, 3), dtype=np.uint8)
    kps = np.stack([rng.uniform(0.1, 0.9, (18, 2)) * np.array(size) for _ in range(n)]).astype(np.float32)
    return images, kps


def _flops(sampler, batch) -> float:
    compiled = sampler._predict.lower(sampler.variables, batch, None).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", 0.0)) if cost else 0.0


def bench(model: str, variant: str, repeats: int) -> None:
    sampler = api.load(model, "random", variant=variant, batch_size=32)
    size = sampler.image_size
    for n in (1, 32):
        images, kps = _inputs(size, n)
        t0 = time.perf_counter()
        sampler.generate(images, kps, kps[::-1].copy())
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            sampler.generate(images, kps, kps[::-1].copy())
            times.append(time.perf_counter() - t0)
        best = min(times)
        flops = _flops(sampler, sampler._batch(images, kps, kps))
        label = "latency" if n == 1 else "throughput"
        print(
            f"{model}:{variant:6s} {size[0]}x{size[1]} batch {n:2d} {label:10s} first call {first:7.2f} s | "
            f"{best * 1000:9.1f} ms/call | {n / best:7.2f} images/s | {flops / best / 1e9:6.1f} GFLOP/s"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="gfla_fashion:demo,gfla_fashion:paper")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {len(jax.devices())} device(s)")
    for item in args.models.split(","):
        model, _, variant = item.partition(":")
        bench(model, variant or "paper", args.repeats)


if __name__ == "__main__":
    main()
