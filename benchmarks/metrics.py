"""Throughput of the evaluation networks: FID Inception features and LPIPS, ptx (JAX) beside the references.

    python -m benchmarks.metrics [--batch 8] [--iters 3] [--size 256 176] [--torch-threads 2]

Images/s of the jitted forward (compile excluded, median of ``--iters`` calls after a warm-up) and the achieved
FLOP/s from XLA's cost analysis of the compiled executable. Random weights (nothing is downloaded): the
timings do not depend on the values. When pytorch-fid 0.3.0 / lpips 0.1.4 import (``pip install -e '.[reference]'``:
they need torch and torchvision), they run on the same images with torch's CPU threads set to ``--torch-threads``. CPU timings
on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import compiled_flops
from ptx.evaluate import lpips as lpips_lib
from ptx.nn import inception


def _median_time(fn: Callable[[], object], iters: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _flops(jitted, *args) -> float:
    return compiled_flops(jitted.lower(*args).compile())


def _row(name: str, n: int, seconds: float, flops: float | None = None) -> str:
    rate = f"{n / seconds:8.2f} img/s"
    extra = f"  {flops / seconds / 1e9:7.1f} GFLOP/s" if flops else ""
    return f"{name:<34} {seconds * 1e3:9.1f} ms/call  {rate}{extra}"


def bench_fid(images: np.ndarray, iters: int) -> list[str]:
    model = inception.InceptionV3()
    variables = model.init(jax.random.key(0), jnp.zeros((1, 299, 299, 3)))

    @jax.jit
    def features(v, x):
        return model.apply(v, inception.preprocess(x))["pool3"]

    x = jnp.asarray(images)
    flops = _flops(features, variables, x)
    t = _median_time(lambda: features(variables, x).block_until_ready(), iters)
    return [_row(f"ptx FID features (B={len(images)})", len(images), t, flops)]


def bench_lpips(images: np.ndarray, iters: int) -> list[str]:
    rows = []
    x0 = jnp.asarray(images, jnp.float32) / 127.5 - 1
    x1 = jnp.flip(x0, axis=0)
    for net in ("alex", "vgg"):
        model = lpips_lib.LPIPS(net)
        params = model.init(jax.random.key(0), x0[:1], x1[:1])["params"]
        fn = jax.jit(lambda p, a, b, m=model: m.apply({"params": p}, a, b))
        flops = _flops(fn, params, x0, x1)
        t = _median_time(lambda fn=fn, p=params: fn(p, x0, x1).block_until_ready(), iters)
        rows.append(_row(f"ptx LPIPS-{net} (pairs, B={len(images)})", len(images), t, flops))
    return rows


def bench_torch(images: np.ndarray, iters: int, threads: int) -> list[str]:
    try:
        import torch
    except ImportError:
        return ["torch not installed: no reference timings (pip install -e '.[reference]')"]
    torch.set_num_threads(threads)
    rows = []
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    try:
        from pytorch_fid import inception as pf

        # fid_inception_v3 would download its weights: hand it a random state dict of the right layout.
        shapes = {k: v.shape for k, v in pf._inception_v3(num_classes=1008, aux_logits=False,
                                                          init_weights=False).state_dict().items()}  # fmt: skip
        pf.load_state_dict_from_url = lambda *a, **k: {n: torch.randn(s) * 0.01 for n, s in shapes.items()}
        net = pf.InceptionV3([3]).eval()
        with torch.no_grad():
            t = _median_time(lambda: net(x), iters)
        rows.append(_row(f"pytorch-fid 0.3.0 (B={len(images)})", len(images), t))
    except Exception as e:  # noqa: BLE001 - report why the reference did not run
        rows.append(f"pytorch-fid not runnable here: {type(e).__name__}: {e}")
    try:
        import lpips

        for net_name in ("alex", "vgg"):
            model = lpips.LPIPS(net=net_name, version="0.1", pnet_rand=True, verbose=False).eval()
            a, b = 2 * x - 1, torch.flip(2 * x - 1, dims=[0])
            with torch.no_grad():
                t = _median_time(lambda m=model, a=a, b=b: m(a, b), iters)
            rows.append(_row(f"lpips 0.1.4 {net_name} (B={len(images)})", len(images), t))
    except Exception as e:  # noqa: BLE001
        rows.append(f"lpips not runnable here: {type(e).__name__}: {e}")
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--size", type=int, nargs=2, default=(256, 176), metavar=("H", "W"))
    p.add_argument("--torch-threads", type=int, default=2)
    args = p.parse_args(argv)
    images = np.random.RandomState(0).randint(0, 256, (args.batch, *args.size, 3)).astype(np.uint8)
    print(
        f"images {args.batch}x{args.size[0]}x{args.size[1]}, jax {jax.__version__} on {jax.devices()[0].platform}"
    )
    for row in bench_fid(images, args.iters) + bench_lpips(images, args.iters):
        print(row)
    for row in bench_torch(images, args.iters, args.torch_threads):
        print(row)


if __name__ == "__main__":
    main()
