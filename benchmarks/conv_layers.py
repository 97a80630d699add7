"""Convolutions on this CPU, forward, input gradient and weight gradient: XLA's own, ptx's
(``ptx.nn.layers.conv2d`` with its XLA:CPU rewrites) and PyTorch's, at the layer shapes the methods' paper
configs train (batch 1).

    python -m benchmarks.conv_layers [--reps 5] [--no-torch]

Milliseconds per call (median of ``--reps`` after one untimed call, compile excluded). XLA's is
``lax.conv_general_dilated`` and its autodiff; ptx's is the same function traced with the rewrites on (row-blocked
per-tap weight gradients, phase-tap input gradients of wide strided convs, 1x1 convs as matmuls); PyTorch's
gradients are ``backward`` with only the input (or only the kernel) requiring grad, minus the forward. Written
to choose ``ptx.nn.layers``' rewrite rules from measurements.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ptx import backend
from ptx.nn import layers

# (kernel, in, out, stride, padding, input h, w, where it runs)
SHAPES = [
    (3, 128, 64, 1, 1, 256, 176, "SCA-GAN SPADE gamma/beta at full size"),
    (3, 64, 64, 1, 1, 256, 176, "SCA-GAN / PATN full-size convs"),
    (3, 18, 128, 1, 1, 256, 176, "SCA-GAN SPADE shared conv on the pose"),
    (3, 64, 3, 1, 1, 256, 176, "SCA-GAN output conv"),
    (7, 21, 64, 1, 3, 256, 176, "PATN / SCA-GAN 7x7 stem"),
    (3, 64, 128, 2, 1, 256, 176, "encoders' first stride-2 conv"),
    (3, 128, 128, 1, 1, 128, 88, "SCA-GAN / PATN half-size convs"),
    (3, 256, 256, 1, 1, 64, 44, "PATN / SCA-GAN residual blocks"),
    (4, 64, 128, 2, 1, 256, 256, "GFLA / CASD 4x4 stride-2 encoder"),
    (3, 3, 64, 1, 1, 256, 256, "GFLA / CASD / Def-GAN stems"),
    (4, 42, 64, 2, 1, 128, 64, "Def-GAN discriminator stem (market)"),
]


def _median_ms(fn: Callable[[], object], reps: int) -> float:
    jax.block_until_ready(fn())
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


WORKS = ("forward", "d input", "d kernel")


def _jax_ms(k, cin, cout, s, p, h, w, rewrites: bool, reps: int) -> dict[str, float]:
    x = jax.random.normal(jax.random.key(0), (1, h, w, cin))
    kern = jax.random.normal(jax.random.key(1), (k, k, cin, cout)) * 0.05
    pad = ((p, p), (p, p))
    with backend.force_cpu_rewrites(rewrites):

        def conv(a, kk):
            return layers.conv2d(a, kk, (s, s), pad, (1, 1))

        g = jax.random.normal(jax.random.key(2), jax.eval_shape(conv, x, kern).shape)
        fns = {
            "forward": jax.jit(conv),
            "d input": jax.jit(lambda a, kk: jax.grad(lambda aa: jnp.sum(conv(aa, kk) * g))(a)),
            "d kernel": jax.jit(lambda a, kk: jax.grad(lambda q: jnp.sum(conv(a, q) * g))(kk)),
        }
        compiled = {name: fn.lower(x, kern).compile() for name, fn in fns.items()}
    return {name: _median_ms(lambda c=c: c(x, kern), reps) for name, c in compiled.items()}


def _torch_ms(k, cin, cout, s, p, h, w, reps: int) -> dict[str, float]:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as benchmarks.torch_reference.get
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    x = torch.randn(1, cin, h, w)
    kern = torch.randn(cout, cin, k, k)
    g = torch.randn_like(torch.nn.functional.conv2d(x, kern, stride=s, padding=p))

    def forward():
        with torch.no_grad():
            torch.nn.functional.conv2d(x, kern, stride=s, padding=p)

    def backward(leaf):
        leaf.requires_grad_(True)

        def run():
            leaf.grad = None
            torch.nn.functional.conv2d(x, kern, stride=s, padding=p).backward(g)

        ms = _median_ms(run, reps)
        leaf.requires_grad_(False)
        return ms

    fwd = _median_ms(forward, reps)
    return {"forward": fwd, "d input": backward(x) - fwd, "d kernel": backward(kern) - fwd}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; milliseconds per call, batch 1: XLA / ptx / PyTorch")
    print(f"{'shape':32s} " + " ".join(f"{w:>20s}" for w in WORKS) + "  where")
    for k, cin, cout, s, p, h, w, where in SHAPES:
        xla = _jax_ms(k, cin, cout, s, p, h, w, False, args.reps)
        ptx = _jax_ms(k, cin, cout, s, p, h, w, True, args.reps)
        nan = dict.fromkeys(WORKS, float("nan"))
        pt = nan if args.no_torch else _torch_ms(k, cin, cout, s, p, h, w, args.reps)
        cells = " ".join(f"{xla[n]:6.1f} {ptx[n]:6.1f} {pt[n]:6.1f}" for n in WORKS)
        print(f"{f'{k}x{k}/{s} {cin}->{cout} at {h}x{w}':32s} {cells}  {where}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
