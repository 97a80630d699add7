"""Custom ops at the fashion generators' real feature sizes: jnp path vs the nearest PyTorch CPU equivalent.

    python -m benchmarks.ops [--iters 3] [--batches 1 8] [--only local_attention ...]

For each op and batch size: time per call of the jitted forward and forward+backward (median of ``--iters``
calls after one warm-up; compile excluded), and the achieved bytes/s and FLOP/s computed from XLA's cost
analysis of the compiled executable divided by the measured time. When torch imports, the nearest PyTorch
formulation runs beside it (``grid_sample`` for resampling, ``grid_sample``+``unfold``+softmax for local
attention, nearest ``grid_sample`` per part for the Def-GAN warp). CPU timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ptx import ops
from ptx.ops import affine

try:  # optional: the [convert] extra
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover
    torch = None


# ----------------------------------------------------------------------------------------------------------
# Cases: (name, batch) -> inputs; sizes from the GFLA fashion generator at 256x256 and Def-GAN fashion.


def _rand(key, shape, scale=1.0):
    return jax.random.normal(jax.random.PRNGKey(key), shape, jnp.float32) * scale


def local_attention_case(b, hw, c, k):
    src, flow = _rand(0, (b, hw, hw, c)), _rand(1, (b, hw, hw, 2), 3.0)
    logits = _rand(2, (b, hw, hw, k * k))
    fn = lambda s, f, a: ops.local_attention(s, f, jax.nn.softmax(a, -1), k)  # noqa: E731
    return fn, (src, flow, logits)


def extract_case(b, hw, c, k):
    src, flow = _rand(0, (b, hw, hw, c)), _rand(1, (b, hw, hw, 2), 3.0)
    return (lambda s, f: ops.extract_blocks(s, f, k)), (src, flow)


def gaussian_case(b, hw, c):
    img, flow = _rand(0, (b, hw, hw, c)), _rand(1, (b, hw, hw, 2), 3.0)
    return (lambda x, f: ops.gaussian_resample(x, f, 4, 1, 2.0)), (img, flow)


def resample_case(b, hw, c):
    img, flow = _rand(0, (b, hw, hw, c)), _rand(1, (b, hw, hw, 2), 3.0)
    return ops.resample, (img, flow)


def warp_case(b, hw, c):
    rng = np.random.default_rng(0)
    tr = np.tile(np.array([1.0, 0.05, 3.0, -0.05, 1.0, -2.0, 0, 0], np.float32), (b, 10, 1))
    tr[..., 2] += rng.uniform(-20, 20, (b, 10)).astype(np.float32)
    masks = jnp.asarray(rng.uniform(size=(b, 10, 256, 256)) > 0.5, jnp.float32)
    fn = lambda x: affine.affine_warp(x, jnp.asarray(tr), masks, init_image_size=(256, 256))  # noqa: E731
    return fn, (_rand(0, (b, hw, hw, c)),), (tr, np.asarray(masks))


# ----------------------------------------------------------------------------------------------------------
# Torch equivalents (NCHW).


def _torch_grid(flow, hs, ws):
    """Pixel flow (B,h,w,2) -> normalised align_corners=True grid for grid_sample."""
    b, h, w, _ = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    gx = (xs + flow[..., 0]) / max(ws - 1, 1) * 2 - 1
    gy = (ys + flow[..., 1]) / max(hs - 1, 1) * 2 - 1
    return torch.stack([gx, gy], -1)


def torch_local_attention(src, flow, logits, k):
    """Warp with grid_sample, unfold k x k neighbourhoods, softmax-weighted mean (nearest torch formulation)."""
    b, c, h, w = src.shape
    warped = F.grid_sample(src, _torch_grid(flow, h, w), padding_mode="border", align_corners=True)
    patches = F.unfold(warped, k, padding=k // 2).view(b, c, k * k, h, w)
    attn = torch.softmax(logits, 1).unsqueeze(1)
    return (patches * attn).mean(2)


def torch_resample(img, flow):
    return F.grid_sample(img, _torch_grid(flow, *img.shape[-2:]), padding_mode="border", align_corners=True)


def torch_warp(x, tr, masks):
    """Def-GAN warp as 10 nearest grid_samples (zeros padding), masked, max over parts."""
    b, c, h, w = x.shape
    s = 256 // h
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
    )
    outs = []
    for t in range(tr.shape[1]):
        a = tr[:, t]
        xi = a[:, 0, None, None] * xs + a[:, 1, None, None] * ys + a[:, 2, None, None] / s
        yi = a[:, 3, None, None] * xs + a[:, 4, None, None] * ys + a[:, 5, None, None] / s
        grid = torch.stack([xi / (w - 1) * 2 - 1, yi / (h - 1) * 2 - 1], -1)
        warped = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=True)
        outs.append(warped * masks[:, t : t + 1, ::s, ::s])
    return torch.stack(outs, 0).max(0).values


# ----------------------------------------------------------------------------------------------------------
# Timing.


def _median_time(fn: Callable, iters: int) -> float:
    fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cost(compiled) -> tuple[float, float]:
    cost = compiled.cost_analysis()
    if isinstance(cost, list | tuple):
        cost = cost[0] if cost else {}
    cost = cost or {}
    return float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0))


def time_jax(fn: Callable, args: tuple, iters: int) -> dict[str, float]:
    """Forward and forward+backward (gradient of sum(out^2) w.r.t. every float input) of ``fn``."""
    out = {}
    loss = lambda *a: jnp.sum(fn(*a) ** 2)  # noqa: E731
    variants = {"fwd": jax.jit(fn), "fwd+bwd": jax.jit(jax.grad(loss, argnums=tuple(range(len(args)))))}
    for name, jitted in variants.items():
        compiled = jitted.lower(*args).compile()
        flops, nbytes = _cost(compiled)
        t = _median_time(lambda c=compiled: jax.block_until_ready(c(*args)), iters)
        out[name] = t
        out[name + "_flops"] = flops / t
        out[name + "_bytes"] = nbytes / t
    return out


def time_torch(fn: Callable, args: tuple, iters: int, n_diff: int | None = None) -> dict[str, float]:
    """Like :func:`time_jax`; gradients for the first ``n_diff`` inputs (all by default)."""
    n_diff = len(args) if n_diff is None else n_diff
    targs = [torch.from_numpy(np.array(a)).requires_grad_(i < n_diff) for i, a in enumerate(args)]

    def fwd():
        with torch.no_grad():
            fn(*targs)

    def fwd_bwd():
        for a in targs:
            a.grad = None
        (fn(*targs) ** 2).sum().backward()

    return {"fwd": _median_time(fwd, iters), "fwd+bwd": _median_time(fwd_bwd, iters)}


def _nchw(a):
    return np.ascontiguousarray(np.transpose(np.asarray(a), (0, 3, 1, 2)))


def cases(batches):
    """(label, jax fn, jax args, torch fn, torch args (numpy) or None)."""
    for b in batches:
        for hw, c, k in ((32, 256, 3), (64, 128, 5)):
            fn, (s, f, a) = local_attention_case(b, hw, c, k)
            yield (
                f"local_attention k={k} {hw}x{hw}x{c} B={b}", fn, (s, f, a),
                lambda s, f, a, k=k: torch_local_attention(s, f, a, k),
                (_nchw(s), np.asarray(f), _nchw(a)),
            )  # fmt: skip
        fn, args = extract_case(b, 32, 256, 3)
        yield f"extract_blocks k=3 32x32x256 B={b}", fn, args, None, None
        for name, hw, c in (("relu3_1", 64, 256), ("relu4_1", 32, 512)):
            fn, (x, f) = gaussian_case(b, hw, c)
            yield (
                f"gaussian_resample K=4 {name} {hw}x{hw}x{c} B={b}", fn, (x, f), torch_resample,
                (_nchw(x), np.asarray(f)),
            )  # fmt: skip
        fn, (x, f) = resample_case(b, 64, 128)
        yield f"resample 64x64x128 B={b}", fn, (x, f), torch_resample, (_nchw(x), np.asarray(f))
    for hw, c in ((256, 64), (64, 256)):
        b = 2  # Def-GAN fashion batch size
        fn, (x,), (tr, masks) = warp_case(b, hw, c)
        yield f"affine_warp T=10 max {hw}x{hw}x{c} B={b}", fn, (x,), torch_warp, (_nchw(x), tr, masks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ops", description=__doc__)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--only", nargs="*", default=None, help="substrings of case labels to run")
    args = parser.parse_args(argv)
    print(
        f"backend {jax.default_backend()}, {jax.device_count()} device(s); torch: {torch.__version__ if torch else 'not installed'}"
    )
    print(f"{'case':48s} {'jax fwd':>9s} {'GFLOP/s':>8s} {'GB/s':>6s} {'jax f+b':>9s} {'GFLOP/s':>8s} {'GB/s':>6s}"
          f" {'torch fwd':>10s} {'torch f+b':>10s}")  # fmt: skip
    for label, fn, jargs, tfn, targs in cases(args.batches):
        if args.only and not any(s in label for s in args.only):
            continue
        r = time_jax(fn, jargs, args.iters)
        line = (
            f"{label:48s} {r['fwd'] * 1e3:7.1f}ms {r['fwd_flops'] / 1e9:8.2f} {r['fwd_bytes'] / 1e9:6.2f}"
            f" {r['fwd+bwd'] * 1e3:7.1f}ms {r['fwd+bwd_flops'] / 1e9:8.2f} {r['fwd+bwd_bytes'] / 1e9:6.2f}"
        )
        if torch is not None and tfn is not None:
            t = time_torch(tfn, targs, args.iters, n_diff=1 if "affine_warp" in label else None)
            line += f" {t['fwd'] * 1e3:8.1f}ms {t['fwd+bwd'] * 1e3:8.1f}ms"
        print(line, flush=True)


if __name__ == "__main__":
    main()
