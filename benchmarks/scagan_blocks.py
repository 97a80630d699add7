"""Per-block CPU cost of SCA-GAN's IS-Net at the paper size, ptx beside the PyTorch reference.

    python -m benchmarks.scagan_blocks [--reps 2] [--blocks up_3,up_2] [--no-torch]

Each block is jitted alone at the input shape it sees in the 256x176 batch-1 generator (the 8x6x512 style map,
the 256x176 edge and pose maps), with random weights. Per block: CPU seconds (``time.process_time``, best of
``--reps`` after one untimed call, compile excluded) of the forward and of forward+backward (the gradient of
sum(out) w.r.t. the params and the block input), and XLA's temp bytes of the compiled forward+backward. Written
to find which blocks make ptx's generator slower and heavier than the same network in PyTorch.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ptx.models import scagan
from ptx.nn.spade import SPADE

CFG = scagan.Config()
H, W = CFG.image_size
STYLE = (CFG.latent_size[0], CFG.latent_size[1], CFG.style_widths[-1])


def _block_shapes() -> list[tuple[str, int, int, tuple[int, int]]]:
    """(name, fin, fout, size) of each DeBlk as the decoder runs it."""
    out, fin, size, ups = [], 8 * CFG.nf, CFG.latent_size, iter(CFG.up_sizes)
    for name, mult, up in scagan.DECODER_BLOCKS:
        out.append((name, fin, mult * CFG.nf, size))
        fin = mult * CFG.nf
        if up:
            size = next(ups)
    return out


def _cpu_time(fn, reps: int) -> float:
    jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(reps):
        start = time.process_time()
        jax.block_until_ready(fn())
        best = min(best, time.process_time() - start)
    return best


def ptx_block(module, inputs: tuple, reps: int) -> tuple[float, float, int]:
    """(forward CPU s, forward+backward CPU s, forward+backward temp bytes) of a flax module."""
    params = module.init(jax.random.key(0), *inputs)

    def fwd(p, x, *rest):
        return module.apply(p, x, *rest)

    def loss(p, x, *rest):
        return jnp.sum(module.apply(p, x, *rest))

    fwd_c = jax.jit(fwd).lower(params, *inputs).compile()
    grad_c = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(params, *inputs).compile()
    temp = grad_c.memory_analysis().temp_size_in_bytes
    return (
        _cpu_time(lambda: fwd_c(params, *inputs), reps),
        _cpu_time(lambda: grad_c(params, *inputs), reps),
        temp,
    )


def torch_block(module, inputs: tuple, reps: int) -> tuple[float, float]:
    import torch

    def fwd():
        with torch.no_grad():
            return module(*inputs)

    def fwd_bwd():
        module.zero_grad(set_to_none=True)
        x = inputs[0].detach().requires_grad_(True)
        module(x, *inputs[1:]).sum().backward()

    def timed(fn):
        fn()
        best = float("inf")
        for _ in range(reps):
            start = time.process_time()
            fn()
            best = min(best, time.process_time() - start)
        return best

    return timed(fwd), timed(fwd_bwd)


def cases() -> list[tuple[str, Callable, Callable]]:
    """(name, ptx (module, inputs), torch (module, inputs)) builders, NHWC and NCHW of the same shapes."""
    rng = np.random.default_rng(0)
    style = rng.standard_normal((1, *STYLE), np.float32)
    edge = rng.standard_normal((1, H, W, 1), np.float32)
    pose = rng.standard_normal((1, H, W, CFG.pose_nc), np.float32)
    out = []

    def nchw(a):
        import torch

        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))

    image = rng.standard_normal((1, H, W, 3), np.float32)

    def style_ptx():
        return scagan.StyleEncoder(CFG.style_widths), (image,)

    def style_torch():
        from benchmarks.torch_reference import scagan as ts

        return ts.StyleEncoder(CFG.style_widths, 3), (nchw(image),)

    out.append(("style_encoder", style_ptx, style_torch))
    for name, fin, fout, size in _block_shapes():
        x = rng.standard_normal((1, *size, fin), np.float32)

        def block_ptx(x=x, fout=fout):
            return scagan.ContentStyleBlock(fout, CFG.spade_hidden), (x, style, edge, pose)

        def block_torch(x=x, fin=fin, fout=fout):
            from benchmarks.torch_reference import scagan as ts

            m = ts.DeBlock(fin, fout, STYLE[-1], 1, CFG.pose_nc, CFG.spade_hidden, 0.0)
            return m, (nchw(x), nchw(style), nchw(edge), nchw(pose))

        out.append((name, block_ptx, block_torch))
        for cond_name, cond in (("style", style), ("edge", edge), ("pose", pose)):
            c = fin if cond_name == "style" else min(fin, fout)
            xs = rng.standard_normal((1, *size, c), np.float32)

            def spade_ptx(xs=xs, cond=cond):
                return SPADE(CFG.spade_hidden), (xs, cond)

            def spade_torch(xs=xs, cond=cond, c=c):
                from benchmarks.torch_reference import scagan as ts

                return ts.SPADE(c, cond.shape[-1], CFG.spade_hidden), (nchw(xs), nchw(cond))

            out.append((f"{name}.spade_{cond_name}", spade_ptx, spade_torch))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--blocks", default="", help="comma-separated name prefixes (default: all)")
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args()
    wanted = [b for b in args.blocks.split(",") if b]
    if not args.no_torch:
        import torch

        torch.set_num_threads(2)
    print("| block | ptx fwd s | torch fwd s | ptx fwd+bwd s | torch fwd+bwd s | ptx fwd+bwd temp MB |")
    print("|---|---|---|---|---|---|")
    for name, make_ptx, make_torch in cases():
        if wanted and not any(name.startswith(w) for w in wanted):
            continue
        f, fb, temp = ptx_block(*make_ptx(), args.reps)
        tf = tfb = float("nan")
        if not args.no_torch:
            tf, tfb = torch_block(*make_torch(), args.reps)
        print(f"| {name} | {f:.3f} | {tf:.3f} | {fb:.3f} | {tfb:.3f} | {temp / 2**20:.0f} |", flush=True)


if __name__ == "__main__":
    main()
