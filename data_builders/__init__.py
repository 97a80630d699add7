"""TFDS builders of ptx: ``puppets`` (built in), ``deepfashion_pose`` and ``market1501_pose`` (manual files).

Importing this package registers the builders with TFDS. Build one with :func:`build` or the command line
``python -m data_builders NAME --data_dir DIR [--manual_dir DIR] [--config CONFIG]``.
None of this imports TensorFlow.
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow_datasets as tfds

from ptx.data import progress
from ptx.data.annotations import DataFileError

from . import _common
from .deepfashion_pose import DeepfashionPose
from .market1501_pose import Market1501Pose
from .puppets import Puppets

BUILDERS = {b.name: b for b in (Puppets, DeepfashionPose, Market1501Pose)}

__all__ = ["BUILDERS", "DeepfashionPose", "Market1501Pose", "Puppets", "build", "get_builder"]


def get_builder(
    name: str,
    *,
    data_dir: str | os.PathLike,
    config: str | None = None,
    keypoint_frame: tuple[int, int] | None = None,
) -> tfds.core.DatasetBuilder:
    """The builder of dataset ``name`` (config ``config``) whose files live under ``data_dir``.

    ``keypoint_frame`` (h, w): the frame of the annotation CSVs' pixels when building a manual dataset whose
    CSVs are not in its usual frame (DeepFashion: 256x256 instead of 256x176); see ``data_builders._common``.
    """
    if name not in BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(BUILDERS)}")
    cls = BUILDERS[name]
    kwargs: dict[str, Any] = {
        "data_dir": os.fspath(os.path.expanduser(data_dir)),
        "file_format": "array_record",
    }
    if config:
        known = [c.name for c in cls.BUILDER_CONFIGS]
        if config not in known:
            raise ValueError(f"dataset {name!r} has no config {config!r}; known: {known or 'none'}")
        kwargs["config"] = config
    if keypoint_frame is not None:
        if not hasattr(cls, "FRAME_HINT"):
            raise ValueError(
                f"dataset {name!r} has a fixed keypoint frame; keypoint_frame is for manual datasets"
            )
        kwargs["keypoint_frame"] = tuple(keypoint_frame)
    return cls(**kwargs)


def build(
    name: str,
    *,
    data_dir: str | os.PathLike,
    config: str | None = None,
    manual_dir: str | os.PathLike | None = None,
    keypoint_frame: tuple[int, int] | None = None,
) -> tfds.core.DatasetBuilder:
    """Builds (if not built yet) and returns the builder. ``manual_dir`` holds the originals' files."""
    builder = get_builder(name, data_dir=data_dir, config=config, keypoint_frame=keypoint_frame)
    if keypoint_frame is not None and builder.is_prepared():
        built = tuple(builder.info.metadata["frame"])
        if built != tuple(keypoint_frame):
            raise DataFileError(
                f"{builder.data_dir} was built with the keypoint frame {built[0]}x{built[1]}, not "
                f"{keypoint_frame[0]}x{keypoint_frame[1]}: remove it or build into another --data_dir"
            )
    fingerprint = _common.source_fingerprint(manual_dir) if manual_dir else None
    if builder.is_prepared():
        recorded = builder.info.metadata.get("source_fingerprint")
        if fingerprint and recorded and recorded != fingerprint:
            raise DataFileError(
                f"{builder.data_dir} was built from other versions of the files in {manual_dir} (files were "
                "added, removed or changed since): remove that folder to rebuild, or build into another --data_dir"
            )
        return builder
    builder.source_fingerprint = fingerprint
    dl_config = tfds.download.DownloadConfig(
        manual_dir=os.fspath(os.path.expanduser(manual_dir)) if manual_dir else None
    )
    with progress.tfds_bars_off():  # one plain bar per split instead (ptx.data.progress)
        builder.download_and_prepare(download_config=dl_config)
    _common.remove_incomplete(builder)
    return builder
