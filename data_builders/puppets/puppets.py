"""The built-in ``puppets`` dataset: the same rendered person in several poses, pairs within a person.

Configs ``<style>_<size>``: style ``fashion`` (256x176, plain light background) or ``market`` (128x64,
cluttered background); size ``tiny`` / ``small`` / ``default`` (see :data:`SIZES`). Train and test people
are disjoint (their identity seeds come from separate ranges); every ordered pair of two different poses of
one person is a pair. Each image carries the renderer's parsing map (LIP labels) and the XDoG edge map of the
stored JPEG (:func:`ptx.data.edges.xdog_edges`).
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from .. import _common

# size name -> (train people, test people, poses per person)
SIZES = {"tiny": (6, 3, 4), "small": (48, 12, 6), "default": (1500, 150, 8)}
_SPLIT_SEED_BASE = {"train": 1_000_000, "test": 2_000_000}  # disjoint identity seed ranges


@dataclasses.dataclass(eq=False)
class PuppetsConfig(tfds.core.BuilderConfig):
    style: str = "fashion"
    num_train: int = 6
    num_test: int = 3
    poses: int = 4


def _configs() -> list[PuppetsConfig]:
    return [
        PuppetsConfig(
            name=f"{style}_{size}",
            description=f"{style} puppets ({n_train} train / {n_test} test people, {poses} poses each)",
            style=style,
            num_train=n_train,
            num_test=n_test,
            poses=poses,
        )
        for style in ("fashion", "market")
        for size, (n_train, n_test, poses) in SIZES.items()
    ]


def identity_seed(split: str, person: int) -> int:
    return _SPLIT_SEED_BASE[split] + person


def pose_seed(split: str, person: int, pose: int) -> int:
    return identity_seed(split, person) * 64 + pose


class Puppets(_common.PoseBuilder):
    """Procedurally rendered people in several poses each (the built-in pose-transfer dataset)."""

    name = "puppets"
    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        **_common.PoseBuilder.RELEASE_NOTES,
        "1.1.0": "Edges are xdog_edges of the stored JPEG (were of the render before JPEG: 0.1-1% of pixels).",
    }
    BUILDER_CONFIGS = _configs()
    DEFAULT_CONFIG_NAME = "fashion_tiny"

    @property
    def frame(self) -> tuple[int, int]:
        return _common.FRAMES[self.builder_config.style]

    def _collect(self, dl_manager: Any) -> dict[str, tuple[list[dict[str, Any]], dict[str, list[int]]]]:
        cfg = self.builder_config
        self._has_edge = self._has_parsing = True
        out = {}
        for split, people in (("train", cfg.num_train), ("test", cfg.num_test)):
            entries, src, dst = [], [], []
            for person in range(people):
                first = len(entries)
                for pose in range(cfg.poses):
                    entries.append(self._entry(split, person, pose))
                for a in range(first, len(entries)):
                    for b in range(first, len(entries)):
                        if a != b:
                            src.append(a)
                            dst.append(b)
            out[split] = (entries, {"from": src, "to": dst})
        return out

    def _entry(self, split: str, person: int, pose: int) -> dict[str, Any]:
        style = self.builder_config.style
        frame = self.frame

        def load() -> dict[str, Any]:
            from ptx.data import edges, puppets

            identity = puppets.sample_identity(identity_seed(split, person))
            keypoints = puppets.sample_pose(pose_seed(split, person, pose), style, identity=identity)
            r = puppets.render(identity, keypoints, style=style)
            image = np.asarray(r["image"], np.uint8)
            if image.shape != (*frame, 3):
                raise ValueError(
                    f"puppets.render gave an image of shape {image.shape}; expected {(*frame, 3)}"
                )
            jpeg = _common.encode_jpeg(image)
            # Edges of the stored photo (not of the render before JPEG), so they equal what the sampler
            # computes from that photo with the same function.
            stored = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
            return {
                "image": jpeg,
                "keypoints": r["keypoints"],
                "edge": _common.encode_png(edges.xdog_edges(stored)),
                "parsing": _common.encode_png(r["parsing"]),
            }

        return {
            "name": f"puppet-{split}-{person:05d}-{pose:02d}.jpg",
            "identity": f"{split}-{person:05d}",
            "load": load,
        }
