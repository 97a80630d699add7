"""DeepFashion In-shop (pose transfer) from the files users of PATN / GFLA / SCA-GAN / CASD already have."""

from __future__ import annotations

import pathlib

from ptx.data.annotations import DataFileError, edge_file_name, index_highres_tree, read_lst

from .. import _common, _manual


class DeepfashionPose(_manual.ManualPoseBuilder):
    """DeepFashion In-shop person images with COCO-18 keypoints and the originals' train/test pairs."""

    name = "deepfashion_pose"
    SHAPES = _common.SHAPES["fashion"]
    # PATN/ADGAN name them fasion-resize-*, GFLA fasion-* (sic); the first one found is used.
    CSV_PREFIXES = ("fasion-", "fashion-", "fasion-resize-", "fashion-resize-")
    FRAME_HINT = (
        "; if the CSVs are in 256x256 pixels (as CASD's square images may have them), build with "
        "--keypoint_frame 256x256"
    )
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put in the manual directory (e.g. GFLA's dataset/fashion, PATN's fashion_data or CASD's dataset/fashion):
  fasion-annotation-{train,test}.csv and fasion-pairs-{train,test}.csv (also accepted: fashion-*,
    fasion-resize-*, fashion-resize-*); their pixels are in the 256x176 frame unless you build with
    --keypoint_frame 256x256
  train/ and test/ with the flat-named images (256x176, the full-resolution copies GFLA's and CASD's scripts
    make, or CASD's 256x256 resizes), or train_resize/ and test_resize/ (CASD's 256x256 resizes),
    or instead img_highres/<gender>/<category>/<id>/<file>.jpg plus train.lst and test.lst
  optional: trainE/diff/ (SCA-GAN edge maps, also for test images; testE/diff/ is used first when present)
  optional: semantic_merge3/ (CASD parsing maps: <image name>.png holding LIP labels 0..19, 256x176 or
    256x256; other labels are kept as 'no label' and counted)
"""

    def _image_index(self, manual: pathlib.Path, split: str) -> tuple[dict[str, pathlib.Path], str]:
        if (manual / split).is_dir():
            return super()._image_index(manual, split)
        resized = manual / f"{split}_resize"  # CASD's 256x256 copies (tool/resize_fashion.py)
        if resized.is_dir():
            return _manual.flat_index(resized), str(resized)
        tree = manual / "img_highres"
        if not tree.is_dir():
            raise DataFileError(
                f"images for split {split!r} not found: expected the directory {manual / split} (or {resized}) "
                f"or the raw tree {tree} with {manual / (split + '.lst')}"
            )
        listed = set(read_lst(manual / f"{split}.lst", self.skipped(split)))
        index = {name: path for name, path in index_highres_tree(tree).items() if name in listed}
        return index, f"{tree} (images listed in {split}.lst)"

    def _edge_file(self, manual: pathlib.Path, split: str, name: str) -> pathlib.Path | None:
        # SCA-GAN reads <phase>E/diff/ and rewrites testE to trainE: trainE/diff holds test edges too.
        folders = [manual / f"{split}E" / "diff", manual / "trainE" / "diff"]
        existing = [f for f in folders if f.is_dir()]
        if not existing:
            return None
        for folder in existing:
            if (folder / edge_file_name(name)).is_file():
                return folder / edge_file_name(name)
        return existing[0] / edge_file_name(name)  # missing: reading it gives the error naming the file
