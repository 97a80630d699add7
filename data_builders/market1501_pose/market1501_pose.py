"""Market-1501 (pose transfer) from the files users of PATN / GFLA / Def-GAN already have."""

from __future__ import annotations

import pathlib

from ptx.data.annotations import DataFileError

from .. import _common, _manual


class Market1501Pose(_manual.ManualPoseBuilder):
    """Market-1501 person images (128x64) with COCO-18 keypoints and the originals' train/test pairs."""

    name = "market1501_pose"
    SHAPES = _common.SHAPES["market"]
    CSV_PREFIXES = ("market-",)
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put in the manual directory (e.g. GFLA's dataset/market or PATN's market_data):
  market-annotation-{train,test}.csv and market-pairs-{train,test}.csv
  train/ and test/ with the images (or Market-1501's own bounding_box_train/ and bounding_box_test/)
  optional: trainE/diff/ (edge maps <image name>.png), semantic_merge3/ (parsing maps)
"""

    def _image_index(self, manual: pathlib.Path, split: str) -> tuple[dict[str, pathlib.Path], str]:
        for folder in (manual / split, manual / f"bounding_box_{split}"):
            if folder.is_dir():
                return _manual.flat_index(folder), str(folder)
        raise DataFileError(
            f"image folder for split {split!r} not found: expected {manual / split} or {manual / f'bounding_box_{split}'}"
        )

    def _edge_file(self, manual: pathlib.Path, split: str, name: str) -> pathlib.Path | None:
        for folder in (manual / f"{split}E" / "diff", manual / "trainE" / "diff"):
            if folder.is_dir():
                return folder / (name.rsplit(".", 1)[0] + ".png")
        return None
