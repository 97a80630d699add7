"""Builders from a manual directory holding the files users of the original code already have."""

from __future__ import annotations

import pathlib
from typing import Any

from ptx.data.annotations import (
    IMAGE_EXTENSIONS,
    DataFileError,
    identity_of,
    read_annotations,
    read_pairs,
)

from . import _common

SPLITS = ("train", "test")


class ManualPoseBuilder(_common.PoseBuilder):
    """Images, annotation CSVs and pair CSVs of one of the originals' datasets, read from ``manual_dir``.

    ``keypoint_frame`` (h, w): the frame the annotation CSVs' pixels refer to, when it is not the dataset's
    usual one (``SHAPES[0]``); it must have the aspect of one of ``SHAPES``. A joint outside the frame stops
    the build with the file and line (the sign of CSVs made for another frame). Only building reads it: a
    built dataset records its frame in the metadata.
    """

    CSV_PREFIXES: tuple[str, ...] = ()
    FRAME_HINT = ""  # added to the out-of-frame error: which other frame the CSVs may be in

    def __init__(self, *, keypoint_frame: tuple[int, int] | None = None, **kwargs: Any):
        if keypoint_frame is not None:
            keypoint_frame = (int(keypoint_frame[0]), int(keypoint_frame[1]))
            if min(keypoint_frame) < 1 or not _common.has_aspect(keypoint_frame, self.SHAPES):
                shapes = " or ".join(f"{h}x{w}" for h, w in self.SHAPES)
                raise ValueError(
                    f"{self.name}: keypoint_frame {keypoint_frame[0]}x{keypoint_frame[1]} does not have the "
                    f"aspect of the dataset's images ({shapes})"
                )
        self._keypoint_frame = keypoint_frame
        super().__init__(**kwargs)

    @property
    def frame(self) -> tuple[int, int]:
        return self._keypoint_frame or self.SHAPES[0]

    def _find_csv(self, manual: pathlib.Path, kind: str, split: str) -> pathlib.Path:
        candidates = [manual / f"{prefix}{kind}-{split}.csv" for prefix in self.CSV_PREFIXES]
        found = [p for p in candidates if p.is_file()]
        if not found:
            names = ", ".join(p.name for p in candidates)
            raise DataFileError(
                f"{kind} CSV for split {split!r} not found in {manual}: expected one of {names}"
            )
        if len(found) > 1:
            print(
                f"[{self.name}] using {found[0].name}; also present and ignored: {[p.name for p in found[1:]]}"
            )
        return found[0]

    def _image_index(self, manual: pathlib.Path, split: str) -> tuple[dict[str, pathlib.Path], str]:
        """{image name: file} of a split and a description of where they were looked for."""
        folder = manual / split
        if not folder.is_dir():
            raise DataFileError(
                f"image folder for split {split!r} not found: expected the directory {folder}"
            )
        return flat_index(folder), str(folder)

    def _edge_file(self, manual: pathlib.Path, split: str, name: str) -> pathlib.Path | None:
        return None

    def _parsing_file(self, manual: pathlib.Path, name: str) -> pathlib.Path | None:
        folder = manual / "semantic_merge3"
        if not folder.is_dir():
            return None
        return folder / (name.rsplit(".", 1)[0] + ".png")

    def _collect(self, dl_manager: Any) -> dict[str, tuple[list[dict[str, Any]], dict[str, list[int]]]]:
        manual = pathlib.Path(dl_manager.manual_dir)
        if not manual.is_dir():
            raise DataFileError(f"manual directory not found: {manual}\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        out = {}
        for split in SPLITS:
            out[split] = self._collect_split(manual, split)
        return out

    def _collect_split(
        self, manual: pathlib.Path, split: str
    ) -> tuple[list[dict[str, Any]], dict[str, list[int]]]:
        ann_path = self._find_csv(manual, "annotation", split)
        pairs_path = self._find_csv(manual, "pairs", split)
        annotations = read_annotations(ann_path, frame=self.frame, frame_hint=self.FRAME_HINT)
        pairs = read_pairs(pairs_path)
        images, where = self._image_index(manual, split)
        for row, pair in enumerate(pairs, start=2):
            for name in pair:
                if name not in annotations:
                    raise DataFileError(
                        f"{pairs_path} line {row}: pair {pair} names the image {name!r}, which has no row in "
                        f"{ann_path}"
                    )
                if name not in images:
                    raise DataFileError(
                        f"{pairs_path} line {row}: pair {pair} names the image {name!r}, which is not in {where}"
                    )
        skipped = self.skipped(split)
        entries = []
        for name, kps in annotations.items():
            if name not in images:
                skipped.add("annotated images not in the image folder and in no pair", name)
                continue
            entries.append(self._entry(manual, split, name, images[name], kps))
        self._has_edge = self._has_edge or any(e["edge_file"] is not None for e in entries)
        self._has_parsing = self._has_parsing or any(e["parsing_file"] is not None for e in entries)
        index = {e["name"]: i for i, e in enumerate(entries)}
        return entries, _common.pair_table(pairs, index, pairs_path, skipped)

    def _entry(self, manual, split, name, image_file, keypoints) -> dict[str, Any]:
        shapes = self.SHAPES
        edge_file = self._edge_file(manual, split, name)
        parsing_file = self._parsing_file(manual, name)
        skipped = self.skipped(split)

        def load() -> dict[str, Any]:
            out = {"image": _common.read_person_image(image_file, shapes), "keypoints": keypoints}
            if edge_file is not None:
                out["edge"] = _common.read_edge(edge_file, shapes)
            if parsing_file is not None:
                out["parsing"] = _common.read_parsing(parsing_file, shapes, skipped)
            return out

        return {
            "name": name,
            "identity": identity_of(name),
            "load": load,
            "edge_file": edge_file,
            "parsing_file": parsing_file,
        }


def flat_index(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    return {
        p.name: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    }
