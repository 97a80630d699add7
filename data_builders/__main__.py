"""``python -m data_builders NAME --data_dir DIR [--manual_dir DIR] [--config CONFIG]``: build a dataset."""

from __future__ import annotations

import argparse
import sys

from ptx.data.annotations import DataFileError

from . import BUILDERS, build


def _frame(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 256x256, got {text!r}") from None
    return h, w


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m data_builders", description=__doc__)
    parser.add_argument("name", choices=sorted(BUILDERS))
    parser.add_argument("--data_dir", required=True, help="where the built dataset goes")
    parser.add_argument(
        "--manual_dir", help="folder with the originals' files (deepfashion_pose, market1501_pose)"
    )
    parser.add_argument("--config", help="builder config, e.g. fashion_small for puppets")
    parser.add_argument(
        "--keypoint_frame",
        type=_frame,
        help="HxW the annotation CSVs' pixels refer to, when not the dataset's usual frame (e.g. 256x256 for "
        "DeepFashion CSVs made on CASD's square images; default 256x176)",
    )
    args = parser.parse_args(argv)
    if args.name != "puppets" and not args.manual_dir:
        parser.error(
            f"{args.name} is built from your files: give --manual_dir\n{BUILDERS[args.name].MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )
    try:
        builder = build(
            args.name,
            data_dir=args.data_dir,
            config=args.config,
            manual_dir=args.manual_dir,
            keypoint_frame=args.keypoint_frame,
        )
    except (DataFileError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    meta = builder.info.metadata
    for split, info in builder.info.splits.items():
        print(
            f"{builder.name}/{split}: {info.num_examples} images, {len(meta['pairs'][split]['from'])} pairs"
        )
    frame = "x".join(map(str, meta["frame"]))
    print(
        f"keypoint frame: {frame}; edges: {meta['has_edge']}, parsing: {meta['has_parsing']}; built in "
        f"{builder.data_dir}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
