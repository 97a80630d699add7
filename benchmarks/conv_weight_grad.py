"""Convolution weight gradients on this CPU: XLA's own, ptx's (``ptx.nn.layers.conv2d`` with the XLA:CPU
rewrites), and PyTorch's, at the layer shapes the methods' paper configs train (batch 1).

    python -m benchmarks.conv_weight_grad [--reps 5] [--no-torch]

Per shape: milliseconds (median of ``--reps`` after one untimed call, compile excluded) of the gradient of
sum(conv(x, k) * g) w.r.t. the kernel alone, and the GFLOP/s of ptx's. XLA's is ``lax.conv_general_dilated``'s
autodiff (a convolution whose window is the whole map); ptx's is the row-blocked per-tap form
(``_weight_grad_by_row_blocks``); PyTorch's is ``conv2d(...).backward`` with the input not requiring grad, minus
its forward. Written to choose ``_weight_grad_by_taps``' rule from measurements, not guesses.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

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


def _jax_weight_grad_ms(k, cin, cout, s, p, h, w, rewrites: bool, reps: int) -> float:
    x = jax.random.normal(jax.random.key(0), (1, h, w, cin))
    kern = jax.random.normal(jax.random.key(1), (k, k, cin, cout)) * 0.05
    pad = ((p, p), (p, p))
    y = jax.eval_shape(
        lambda a, kk: lax.conv_general_dilated(a, kk, (s, s), pad, dimension_numbers=layers._DN), x, kern
    )
    g = jax.random.normal(jax.random.key(2), y.shape)
    with backend.force_cpu_rewrites(rewrites):
        fn = jax.jit(jax.grad(lambda kk, a, gy: jnp.sum(layers.conv2d(a, kk, (s, s), pad, (1, 1)) * gy)))
        compiled = fn.lower(kern, x, g).compile()
    return _median_ms(lambda: compiled(kern, x, g), reps)


def _torch_weight_grad_ms(k, cin, cout, s, p, h, w, reps: int) -> float:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as benchmarks.torch_reference.get
    import torch

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    x = torch.randn(1, cin, h, w)
    kern = torch.randn(cout, cin, k, k, requires_grad=True)
    g = torch.randn_like(torch.nn.functional.conv2d(x, kern, stride=s, padding=p))

    def backward():
        kern.grad = None
        torch.nn.functional.conv2d(x, kern, stride=s, padding=p).backward(g)

    def forward():
        with torch.no_grad():
            torch.nn.functional.conv2d(x, kern, stride=s, padding=p)

    return _median_ms(backward, reps) - _median_ms(forward, reps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; milliseconds per kernel gradient, batch 1")
    print(f"{'shape':34s} {'XLA':>8s} {'ptx':>8s} {'PyTorch':>8s} {'ptx GFLOP/s':>12s}  where")
    for k, cin, cout, s, p, h, w, where in SHAPES:
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        flops = 2.0 * ho * wo * k * k * cin * cout
        xla = _jax_weight_grad_ms(k, cin, cout, s, p, h, w, False, args.reps)
        ptx = _jax_weight_grad_ms(k, cin, cout, s, p, h, w, True, args.reps)
        pt = float("nan") if args.no_torch else _torch_weight_grad_ms(k, cin, cout, s, p, h, w, args.reps)
        shape = f"{k}x{k}/{s} {cin}->{cout} at {h}x{w}"
        print(f"{shape:34s} {xla:8.1f} {ptx:8.1f} {pt:8.1f} {flops / ptx / 1e6:12.1f}  {where}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
