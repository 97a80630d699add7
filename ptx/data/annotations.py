"""Readers for the files users of the original pose-transfer code already have.

* Annotation CSVs (``fasion-annotation-train.csv``, ``market-annotation-test.csv``, ...): ``:``-separated,
  header ``name:keypoints_y:keypoints_x``, each keypoint field a JSON list of 18 integers (COCO-18 order),
  ``-1`` where a joint is missing. -> ``{name: float32 (18, 2) (y, x)}``.
* Pair CSVs (``fasion-pairs-train.csv``, ...): comma-separated with a header holding ``from`` and ``to``
  (other columns ignored, as the originals do). -> ``[(from, to), ...]``.
* ``train.lst`` / ``test.lst`` of DeepFashion In-shop, with the file names that the originals'
  ``generate_fashion_datasets`` script derives from the ``img_highres`` tree (:func:`highres_name`).

Bad input raises :class:`AnnotationError` naming the file, the line and what was expected. Where the
originals silently skip an item, the readers count it in a :class:`Skipped` tally instead.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import os
import pathlib

import numpy as np

from ptx.data.keypoints import NAMES, is_present, parse_keypoints_yx

ANNOTATION_COLUMNS = ("name", "keypoints_y", "keypoints_x")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm")


class DataFileError(ValueError):
    """An input file that cannot be used; the message names the file (and line) and what was expected."""


class AnnotationError(DataFileError):
    """A CSV or list file of the originals' formats that cannot be used."""


@dataclasses.dataclass
class Skipped:
    """Counts items skipped on purpose (the originals skip them silently), with a few examples each."""

    counts: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    examples: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def add(self, kind: str, example: str, n: int = 1) -> None:
        self.counts[kind] += n
        kept = self.examples.setdefault(kind, [])
        if len(kept) < 3:
            kept.append(example)

    def summary(self) -> str:
        return "; ".join(
            f"{n} x {kind} (e.g. {', '.join(self.examples[kind])})" for kind, n in sorted(self.counts.items())
        )


def _read_lines(path: pathlib.Path, what: str) -> list[str]:
    if not path.is_file():
        raise AnnotationError(f"{what} not found: expected the file {path}")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not a UTF-8 text file ({e})") from None


def read_annotations(
    path: str | os.PathLike, *, frame: tuple[int, int] | None = None, frame_hint: str = ""
) -> dict[str, np.ndarray]:
    """Reads an annotation CSV -> ``{image name: float32 (18, 2) (y, x)}``, -1 for missing joints.

    A joint with either coordinate -1 counts as missing (both set to -1), as the originals' heatmaps do. With
    ``frame`` (h, w), a present joint outside [0, h) x [0, w) is an error (``frame_hint`` is appended to it).
    """
    path = pathlib.Path(path)
    lines = _read_lines(path, "annotation CSV")
    if not lines:
        raise AnnotationError(f"{path}: empty file; expected the header 'name:keypoints_y:keypoints_x'")
    header = [h.strip() for h in lines[0].split(":")]
    missing = [c for c in ANNOTATION_COLUMNS if c not in header]
    if missing:
        raise AnnotationError(
            f"{path} line 1: header {lines[0]!r} lacks column(s) {missing}; expected "
            f"'name:keypoints_y:keypoints_x' (':'-separated, as the originals write it)"
        )
    col = {c: header.index(c) for c in ANNOTATION_COLUMNS}
    out: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{path} line {lineno}"
        fields = line.split(":")
        if len(fields) != len(header):
            raise AnnotationError(
                f"{where}: expected {len(header)} ':'-separated fields ({':'.join(header)}), got {len(fields)}"
            )
        name = fields[col["name"]].strip()
        if not name:
            raise AnnotationError(f"{where}: empty image name")
        try:
            kps = parse_keypoints_yx(fields[col["keypoints_y"]], fields[col["keypoints_x"]], where=where)
        except ValueError as e:
            raise AnnotationError(str(e)) from None
        if frame is not None:
            _check_in_frame(kps, frame, where, frame_hint)
        if name in out and not np.array_equal(out[name], kps):
            raise AnnotationError(f"{where}: image {name!r} is annotated twice with different keypoints")
        out[name] = kps
    return out


def _check_in_frame(kps: np.ndarray, frame: tuple[int, int], where: str, hint: str) -> None:
    present = is_present(kps)
    outside = present & (
        (kps[:, 0] < 0) | (kps[:, 0] >= frame[0]) | (kps[:, 1] < 0) | (kps[:, 1] >= frame[1])
    )
    if outside.any():
        j = int(np.argmax(outside))
        raise AnnotationError(
            f"{where}: joint {j} ({NAMES[j]}) at (y, x) = ({kps[j, 0]:g}, {kps[j, 1]:g}) lies outside the "
            f"{frame[0]}x{frame[1]} keypoint frame (y in 0..{frame[0] - 1}, x in 0..{frame[1] - 1}){hint}"
        )


def read_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Reads a pair CSV (comma-separated, columns ``from`` and ``to`` found by name) -> ``[(from, to)]``."""
    path = pathlib.Path(path)
    lines = _read_lines(path, "pair CSV")
    rows = list(csv.reader(lines))
    if not rows:
        raise AnnotationError(f"{path}: empty file; expected a header with columns 'from' and 'to'")
    header = [h.strip() for h in rows[0]]
    if "from" not in header or "to" not in header:
        raise AnnotationError(
            f"{path} line 1: header {lines[0]!r} lacks column 'from' or 'to'; expected a comma-separated "
            f"header naming both (e.g. ',from,to' as the originals write it)"
        )
    i_from, i_to = header.index("from"), header.index("to")
    pairs = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or not any(f.strip() for f in row):
            continue
        where = f"{path} line {lineno}"
        if len(row) != len(header):
            raise AnnotationError(
                f"{where}: expected {len(header)} comma-separated fields ({','.join(header)}), got {len(row)}"
            )
        src, dst = row[i_from].strip(), row[i_to].strip()
        if not src or not dst:
            raise AnnotationError(f"{where}: empty image name in column 'from' or 'to'")
        pairs.append((src, dst))
    return pairs


def read_lst(path: str | os.PathLike, skipped: Skipped | None = None) -> list[str]:
    """Reads DeepFashion's ``train.lst``/``test.lst``: one image name per line; like the originals, only
    names ending in ``.jpg`` are kept (others are counted in ``skipped``)."""
    path = pathlib.Path(path)
    names = []
    for lineno, line in enumerate(_read_lines(path, "image list"), start=1):
        name = line.strip()
        if name.endswith(".jpg"):
            names.append(name)
        elif name and skipped is not None:
            skipped.add(f"lines of {path.name} not ending in .jpg", f"line {lineno}: {name[:40]!r}")
    return names


def highres_name(relative_path: str | os.PathLike) -> str:
    """The flat file name the originals give an ``img_highres`` image, from its path below ``img_highres``.

    ``WOMEN/Blouses_Shirts/id_00000001/02_1_front.jpg`` -> ``fashionWOMENBlouses_Shirtsid0000000102_1front.jpg``:
    prefix ``fashion``, then gender and category as they are, the id without underscores, and the file name
    with only its first underscore kept.
    """
    parts = pathlib.PurePosixPath(pathlib.Path(relative_path).as_posix()).parts
    if len(parts) != 4:
        raise AnnotationError(
            f"img_highres/{'/'.join(parts)}: expected the layout img_highres/<gender>/<category>/<id>/<file>"
        )
    gender, category, ident, fname = parts
    head, *rest = fname.split("_")
    return "fashion" + gender + category + ident.replace("_", "") + head + "_" + "".join(rest)


def index_highres_tree(root: str | os.PathLike) -> dict[str, pathlib.Path]:
    """Maps the originals' flat names to the image files of an ``img_highres`` tree."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise AnnotationError(f"image folder not found: expected the directory {root}")
    index: dict[str, pathlib.Path] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            rel = path.relative_to(root)
            if len(rel.parts) == 4:
                index[highres_name(rel)] = path
    return index


def edge_file_name(image_name: str) -> str:
    """SCA-GAN's edge file for an image: ``.jpg`` -> ``.png`` and the word ``fashion`` removed."""
    return image_name.replace(".jpg", ".png").replace("fashion", "")


def identity_of(image_name: str) -> str:
    """Person identity from an image name: Market's id prefix, or DeepFashion's ``id000...`` item id."""
    idx = image_name.rfind("id0")
    if image_name.startswith("fashion") and idx >= 0:
        return image_name[:idx] + image_name[idx : idx + 10]
    return image_name.split("_")[0]
