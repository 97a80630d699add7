"""Score a folder of generated images with an original paper's protocol.

    python -m ptx.evaluate --generated results/ --real test_256/ --protocol gfla \\
        --inception pt_inception-2015-12-05-6726825d.pth --lpips-trunk alexnet-owt-7be5be79.pth \\
        --fid-real train_256/
    python -m ptx.evaluate --generated patn_results/ --protocol patn --annotations market-annotation-test.csv \\
        --inception pt_inception-2015-12-05-6726825d.pth

Result strips of PATN/pSSIM (5 panels) and Def-GAN (3 panels) carry their own targets; single images (GFLA)
are paired with ``--real`` by name. Prints a table like the papers' and writes JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator

import numpy as np

from ptx.evaluate import evaluators, images, protocols


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ptx.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--generated", required=True, help="folder of generated images or result strips")
    p.add_argument("--real", help="folder of ground-truth images (needed for single-image results)")
    p.add_argument("--protocol", default="gfla", choices=sorted(protocols.PROTOCOLS))
    p.add_argument("--dataset", choices=["fashion", "market"], help="default: from the image size")
    p.add_argument("--panels", type=int, help="panels per result image (default: the protocol's)")
    p.add_argument("--metrics", help="comma-separated subset of the protocol's metrics")
    p.add_argument(
        "--skimage", choices=["legacy", "modern"], help="SSIM as skimage <0.15 (13 taps) or >=0.15"
    )
    p.add_argument("--annotations", help="annotation CSV with target keypoints (mask-SSIM, mask-IS, pSSIM)")
    p.add_argument("--inception", help="pt_inception-2015-12-05-6726825d.pth (FID, IS; see --fid-variant)")
    p.add_argument("--lpips-trunk", help="alexnet-owt-7be5be79.pth or vgg16-397923af.pth (LPIPS)")
    p.add_argument("--lpips-lin", help="lpips/weights/v0.1/<net>.pth (default: from an installed lpips)")
    p.add_argument("--fid-real", help="real image folder for FID statistics (GFLA: the training set)")
    p.add_argument(
        "--fid-variant",
        choices=["fid", "torchvision"],
        default="fid",
        help="pytorch-fid's FID Inception (default) or torchvision's ImageNet one (GFLA's script)",
    )
    p.add_argument("--cache-dir", help="where real FID statistics are cached (default ~/.cache/ptx/fid)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", help="JSON file (default: <generated>/ptx_metrics_<protocol>.json)")
    p.add_argument("--debug", action="store_true", help="tracebacks for input errors")
    return p


def _infer_dataset(panel: np.ndarray) -> str:
    h, w = panel.shape[:2]
    return "market" if (h, w) == (128, 64) or h <= 160 else "fashion"


def _configure(evals: dict, args) -> dict:
    if args.metrics:
        wanted = [m.strip() for m in args.metrics.split(",") if m.strip()]
        unknown = sorted(set(wanted) - set(evals))
        if unknown:
            raise SystemExit(f"error: {unknown} not in protocol {args.protocol!r} (has {sorted(evals)})")
        evals = {k: evals[k] for k in wanted}
    for entry in evals.values():
        if entry["type"] in ("fid", "is"):
            entry["inception"] = args.inception
        if entry["type"] == "fid":
            entry["real_dir"] = args.fid_real
            entry["variant"] = args.fid_variant
            entry["cache_dir"] = args.cache_dir
        if entry["type"] == "lpips":
            entry["trunk"], entry["lin"] = args.lpips_trunk, args.lpips_lin
    return evals


def _pairs(
    files, args, panels, which, keypoints
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    t_idx, g_idx = which
    gen, tgt, kps = [], [], []
    for f in files:
        img = images.read_image(f)
        parts = images.split_panels(img, panels, f) if panels > 1 else [img]
        g = parts[g_idx]
        t = parts[t_idx] if t_idx is not None else images.read_image(images.find_target(args.real, f))
        if t.shape != g.shape:
            raise ValueError(f"{f}: generated {g.shape} and target {t.shape} differ in size")
        gen.append(g)
        tgt.append(t)
        if keypoints is not None:
            name = images.target_name(f)
            if name not in keypoints:
                raise KeyError(f"{f}: target {name!r} not in {args.annotations}")
            kps.append(keypoints[name])
        if len(gen) == args.batch_size:
            yield np.stack(gen), np.stack(tgt), np.stack(kps) if kps else None
            gen, tgt, kps = [], [], []
    if gen:
        yield np.stack(gen), np.stack(tgt), np.stack(kps) if kps else None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ptx.errors import run_reporting_user_errors

    return run_reporting_user_errors(lambda: _evaluate(args), debug=args.debug)


def _evaluate(args) -> int:
    files = images.list_images(args.generated)
    panels, which = protocols.panels(args.protocol)
    panels = args.panels or panels
    if which[0] is None and not args.real:
        raise SystemExit(
            f"error: protocol {args.protocol!r} scores single images: pass --real with the targets"
        )
    first = images.read_image(files[0])
    first = images.split_panels(first, panels, files[0])[which[1]] if panels > 1 else first
    dataset = args.dataset or _infer_dataset(first)
    evals = _configure(protocols.get(args.protocol, dataset, args.skimage), args)
    needs_kp = any(e["type"] in ("mask_ssim", "pssim") or e.get("mask") for e in evals.values())
    keypoints = None
    if needs_kp:
        if not args.annotations:
            raise SystemExit(
                "error: mask-SSIM / mask-IS / pSSIM need --annotations (e.g. market-annotation-test.csv)"
            )
        from ptx.data.annotations import read_annotations

        keypoints = read_annotations(args.annotations)
    try:
        metrics = {name: evaluators.build_metric(entry) for name, entry in evals.items()}
    except evaluators.MissingWeights as e:
        raise SystemExit(f"error: {e} (or leave the metric out with --metrics)") from None
    results = evaluators.run_metrics(metrics, _pairs(files, args, panels, which, keypoints))
    record = {
        "protocol": args.protocol,
        "dataset": dataset,
        "images": len(files),
        "skimage": args.skimage or protocols.PROTOCOLS[args.protocol][3],
        "generated": os.path.abspath(args.generated),
        "metrics": results,
    }
    print(_table(os.path.basename(os.path.normpath(args.generated)), results, record))
    out = args.out or os.path.join(args.generated, f"ptx_metrics_{args.protocol}.json")
    with open(out, "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {out}")
    return 0


def _table(row: str, results: dict[str, float], record: dict) -> str:
    names = list(results)
    head = ["method"] + [n.upper().replace("_", "-") for n in names]
    cells = [row] + [f"{results[n]:.4f}" for n in names]
    widths = [max(len(a), len(b)) for a, b in zip(head, cells)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    title = f"{record['protocol']} protocol, {record['dataset']}, {record['images']} images, skimage {record['skimage']}"
    return "\n".join([title, line(head), sep, line(cells)])


if __name__ == "__main__":
    sys.exit(main())
