"""Puppets renderer throughput, single process: images/s at 256x176 (fashion) and 128x64 (market).

    python -m benchmarks.puppets [--n 200]

Reports images per wall-clock second and per CPU second of this process (the "per core" figure, less
sensitive to other load on a shared machine), for the render alone, render + pose/identity sampling, and
render + XDoG edges. The target is >= 50 images/s per core at 256x176.
"""

from __future__ import annotations

import argparse
import time

from ptx.data import edges, puppets


def _time(fn, n: int) -> tuple[float, float]:
    fn(0)  # warm-up
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - w0), n / max(time.process_time() - c0, 1e-9)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images per measurement")
    args = parser.parse_args(argv)
    print(f"{'style':8s} {'size':8s} {'what':26s} {'img/s wall':>11s} {'img/s per core':>15s}")
    for style, (h, w) in puppets.STYLES.items():
        ids = [puppets.sample_identity(i) for i in range(args.n)]
        poses = [puppets.sample_pose(i, style, identity=ids[i]) for i in range(args.n)]

        def render(i, style=style, ids=ids, poses=poses):
            return puppets.render(ids[i], poses[i], style)

        def sample_and_render(i, style=style):
            ident = puppets.sample_identity(10_000 + i)
            return puppets.render(ident, puppets.sample_pose(10_000 + i, style, identity=ident), style)

        def render_edges(i, style=style, ids=ids, poses=poses):
            return edges.xdog(puppets.render(ids[i], poses[i], style)["image"])

        for what, fn in (
            ("render", render),
            ("sample + render", sample_and_render),
            ("render + xdog edges", render_edges),
        ):
            wall, cpu = _time(fn, args.n)
            print(f"{style:8s} {h}x{w:<5d} {what:26s} {wall:11.1f} {cpu:15.1f}")


if __name__ == "__main__":
    main()
