"""``python -m ptx.pose --images DIR --out annotations.csv``: keypoints of every photo in DIR, written as the
originals' annotation CSV (header ``name:keypoints_y:keypoints_x``, lines ``name: [ys]: [xs]``).

As the coordinate scripts do, an existing CSV is appended to and photos already listed in it are skipped, so
an interrupted run resumes. ``--show OUT_DIR`` also saves each photo with its skeleton drawn on.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from ptx.data.annotations import ANNOTATION_COLUMNS, IMAGE_EXTENSIONS, read_annotations

HEADER = ":".join(ANNOTATION_COLUMNS)


def csv_line(name: str, keypoints) -> str:
    """One CSV line as the scripts print it: ``'%s: %s: %s' % (name, list of ys, list of xs)``, plain ints."""
    ys = [int(v) for v in keypoints[:, 0]]
    xs = [int(v) for v in keypoints[:, 1]]
    return f"{name}: {ys}: {xs}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ptx.pose", description=__doc__.splitlines()[0])
    ap.add_argument("--images", required=True, help="folder of photos")
    ap.add_argument("--out", required=True, help="annotation CSV to write (appended to if it exists)")
    ap.add_argument(
        "--weights", help="body_pose_model.pth or pose_estimator.h5 (default $PTX_OPENPOSE_WEIGHTS)"
    )
    ap.add_argument("--mode", default="dataset", choices=("dataset", "openpose"), help="reference pipeline")
    ap.add_argument("--show", help="folder for the photos with their skeletons drawn on")
    args = ap.parse_args(argv)

    from ptx.pose.estimator import find_weights, get_estimator

    images = pathlib.Path(args.images)
    if not images.is_dir():
        print(f"--images: {images} is not a folder", file=sys.stderr)
        return 2
    try:
        weights = find_weights(args.weights)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    done = set(read_annotations(out)) if out.is_file() and out.stat().st_size else set()
    names = sorted(p.name for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    todo = [n for n in names if n not in done]
    print(f"{len(names)} photos in {images}, {len(names) - len(todo)} already in {out}; mode {args.mode}")
    estimator = get_estimator(weights, mode=args.mode)
    show = pathlib.Path(args.show) if args.show else None
    if show:
        show.mkdir(parents=True, exist_ok=True)
    new_file = not done and not (out.is_file() and out.stat().st_size)
    with out.open("a", encoding="utf-8") as f:
        if new_file:
            f.write(HEADER + "\n")
        for i, name in enumerate(todo, 1):
            keypoints = estimator(images / name)
            f.write(csv_line(name, keypoints) + "\n")
            f.flush()
            if show:
                from PIL import Image

                from ptx.pose.draw import overlay_skeleton

                Image.fromarray(overlay_skeleton(images / name, keypoints)).save(
                    show / f"{pathlib.Path(name).stem}.png"
                )
            print(f"[{i}/{len(todo)}] {name}: {int((keypoints[:, 0] >= 0).sum())} joints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
