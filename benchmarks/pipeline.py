"""Input pipeline throughput: pairs/s from a built puppets dataset, with 0 and 2 grain worker processes.

    python -m benchmarks.pipeline [--config fashion_small] [--batch_size 16] [--batches 40] [--data_dir DIR]

Builds the puppets dataset into ``--data_dir`` first if absent (default: a folder under the system temp dir,
kept between runs). Each pair = two JPEG decodes (+ resize when --image_size differs from 256x176) and the
keypoint transform; batches are numpy arrays ready for device transfer. Target: >= 200 pairs/s on 2 cores.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time

from ptx.data import pipeline


def measure(cfg, *, batch_size: int, batches: int, worker_count: int) -> tuple[float, float]:
    """(pairs/s wall clock, CPU seconds of this process per pair; the latter excludes worker processes)."""
    loader = pipeline.make_loader(
        cfg, split="train", batch_size=batch_size, seed=0, worker_count=worker_count
    )
    it = iter(loader)
    for _ in range(max(2, worker_count * 2)):  # start the workers, fill their buffers
        next(it)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        batch = next(it)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert batch["source_image"].shape[0] == batch_size
    del it, loader, batch  # stop the worker processes now rather than at interpreter exit
    gc.collect()
    return batches * batch_size / elapsed, cpu / (batches * batch_size)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pipeline", description=__doc__)
    parser.add_argument("--config", default="fashion_small")
    parser.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "ptx_bench_datasets"))
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--image_size", type=int, nargs=2, default=None, help="h w (default: dataset frame)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--flip", action="store_true")
    args = parser.parse_args(argv)

    cfg = pipeline.default_data_config(
        "puppets", args.config, data_dir=args.data_dir, image_size=args.image_size, flip=args.flip
    )
    pipeline.pair_source(cfg, "train")  # builds the dataset on first use
    size = (
        "x".join(map(str, args.image_size)) if args.image_size else "frame (256x176 fashion, 128x64 market)"
    )
    print(f"puppets/{args.config}, image size {size}, batch {args.batch_size}, {os.cpu_count()} CPU cores")
    for workers in args.workers:
        rate, cpu = measure(cfg, batch_size=args.batch_size, batches=args.batches, worker_count=workers)
        line = f"worker_count={workers}: {rate:8.1f} pairs/s  ({2 * rate:8.1f} images/s)"
        if workers == 0:  # all work is in this process: CPU time per pair bounds what idle cores can do
            line += f"; {1e3 * cpu:.2f} CPU ms/pair (ceiling on 2 idle cores: {2 / cpu:.0f} pairs/s)"
        print(line)


if __name__ == "__main__":
    main()
