"""Pose estimation speed at 256 x 176 (DeepFashion's frame): one scale (``openpose`` mode) and the dataset
scripts' four scales (``dataset`` mode), beside our PyTorch copy of pytorch-openpose's body network on the
same network inputs when torch is installed.

    python -m benchmarks.pose [--width-divisor 1] [--repeats 3] [--size 256x176]

Random weights (speed does not depend on them; the post-processing does a little, through the number of peaks).
Columns: end to end (photo -> keypoints, ptx), the network alone (ptx, jitted, one program per size bucket),
and the network alone in PyTorch (``benchmarks.torch_reference.openpose``) with the same weights.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import jax
import numpy as np

from benchmarks import torch_reference
from ptx.convert import openpose as convert_openpose
from ptx.models.openpose import pipeline
from ptx.models.openpose.network import BodyPoseNet, Config
from ptx.pose.estimator import PoseEstimator


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def narrow(divisor: int) -> Config:
    """The released architecture with every hidden width divided by ``divisor`` (the goldens use 8)."""
    base = Config()
    return dataclasses.replace(
        base,
        stem_widths=tuple(w // divisor for w in base.stem_widths),
        stage1_widths=tuple(w // divisor for w in base.stage1_widths),
        stage_widths=tuple(w // divisor for w in base.stage_widths),
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width-divisor", type=int, default=1, help="1 = the released model")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", default="256x176", help="photo size HxW")
    args = ap.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    cfg = narrow(args.width_divisor)
    variables = BodyPoseNet(cfg).init(jax.random.key(0), np.zeros((1, 64, 64, 3), np.float32))
    photo = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    torch_mod = torch_reference.get("openpose")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}; load average {os.getloadavg()[0]:.1f}")
    for mode in ("openpose", "dataset"):
        est = PoseEstimator(cfg, variables, mode=mode)
        inputs = pipeline.network_inputs(photo[..., ::-1], mode)
        t0 = time.perf_counter()
        est(photo)
        first = time.perf_counter() - t0
        e2e = _best(lambda est=est: est(photo), args.repeats)
        net = _best(lambda est=est, inputs=inputs: [est.network(i.image) for i in inputs], args.repeats)
        line = (
            f"{mode:8s} {len(inputs)} scale(s) {h}x{w}: first call {first:6.1f} s | end to end "
            f"{1 / e2e:6.2f} images/s | network {1 / net:6.2f} images/s"
        )
        if torch_mod is not None:
            import torch

            torch.set_num_threads(os.cpu_count() or 1)
            model = torch_mod.BodyPoseModel(dataclasses.replace(cfg, heatmap_relu=mode == "openpose"))
            torch_mod.load_flat(
                model, convert_openpose.export(cfg, {"body": jax.device_get(variables)})["body"]
            )
            torch_net = _best(
                lambda model=model, inputs=inputs: [torch_mod.run_nhwc(model, i.image) for i in inputs],
                args.repeats,
            )
            line += f" | PyTorch network {1 / torch_net:6.2f} images/s"
        print(line)


if __name__ == "__main__":
    main()
