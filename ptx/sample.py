"""Command line sampling: one image, or an animation over a folder of poses.

    python -m ptx.sample --model gfla_fashion --checkpoint DIR --src photo.jpg --src-pose photo.json \
        --pose pose.json --out out.png
    python -m ptx.sample --model gfla_fashion --checkpoint DIR --src photo.jpg --src-pose photo.json \
        --poses poses_dir/ --out anim.gif

Poses: OpenPose JSON (COCO-18 or BODY-25), ``.csv`` files with one annotation row, ``.npy`` 18x2 (y, x) arrays
(in the source photo's pixel frame unless ``--pose-frame model``), or a photo of someone in the target pose.
``--src-pose auto`` estimates the source keypoints (OpenPose weights from ``$PTX_OPENPOSE_WEIGHTS``). Input
errors print one line ``error: ...`` and exit 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import types

import numpy as np

POSE_SUFFIXES = (".json", ".csv", ".npy")


def _pose_arg(path: str):
    if path == "auto":
        return path
    p = pathlib.Path(path)
    return np.load(p) if p.suffix == ".npy" else p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ptx.sample", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gfla_fashion", help="config name (see ptx.list_models())")
    ap.add_argument("--checkpoint", required=True, help="training workdir, ptx.convert output, or 'random'")
    ap.add_argument("--src", required=True, help="source photo")
    ap.add_argument(
        "--src-pose", required=True, help="keypoints of the source photo, or 'auto' to estimate them"
    )
    ap.add_argument("--src-parsing", help="parsing map of the source photo (LIP ids; methods that need one)")
    ap.add_argument("--variant", default="paper", help="config variant the weights were trained with")
    ap.add_argument("--debug", action="store_true", help="tracebacks for input errors")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--pose", help="target pose file")
    group.add_argument("--poses", help="folder of target pose files (sorted by name) -> animation")
    ap.add_argument("--out", required=True, help="output .png/.jpg, or .gif/.mp4 with --poses")
    ap.add_argument(
        "--output-frame",
        choices=("model", "photo"),
        default="model",
        help="return the model-frame image or paste it back into the photo",
    )
    ap.add_argument("--pose-frame", choices=("photo", "model"), default="photo")
    ap.add_argument("--fps", type=float, default=10.0)
    args = ap.parse_args(argv)
    from ptx.errors import run_reporting_user_errors

    return run_reporting_user_errors(lambda: _run(ap, args), debug=args.debug)


def _run(ap, args) -> int:
    from PIL import Image

    from ptx import api

    sampler = api.load(args.model, args.checkpoint, variant=args.variant)
    src_pose = _pose_arg(args.src_pose)
    out = pathlib.Path(args.out)
    if args.pose:
        image = sampler(
            args.src,
            _pose_arg(args.pose),
            src_pose=src_pose,
            output=args.output_frame,
            pose_frame=args.pose_frame,
            src_parsing=args.src_parsing,
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(out)
    else:
        files = sorted(p for p in pathlib.Path(args.poses).iterdir() if p.suffix.lower() in POSE_SUFFIXES)
        if not files:
            ap.error(f"--poses {args.poses}: no pose files ({', '.join(POSE_SUFFIXES)})")
        sampler.animate(
            args.src,
            [_pose_arg(str(f)) for f in files],
            src_pose=src_pose,
            path=out,
            fps=args.fps,
            pose_frame=args.pose_frame,
            src_parsing=args.src_parsing,
        )
    print(f"wrote {out}")
    return 0


class _CallableModule(types.ModuleType):
    """``import ptx.sample`` makes ``ptx.sample`` this module; calling it still means ``ptx.api.sample``."""

    def __call__(self, *args, **kwargs):
        from ptx import api

        return api.sample(*args, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
else:
    sys.modules[__name__].__class__ = _CallableModule
