"""Human parsing maps: the 20 LIP labels, their left/right flip, and merges into coarser regions (CASD's 8).

Parsing maps are uint8 HxW label maps: LIP labels 0..19 (CASD's ``semantic_merge3`` PNGs, the puppets renderer)
and :data:`UNLABELLED` (255) where a pixel has none. The builders store labels >= 20 of a user's file as 255
and count them (``data_builders._common.read_parsing``).

A merge table lists, per region in region order, the LIP labels that make it up. :func:`merge_lip` maps a label
map to region ids; a pixel whose label is in no region (255, or anything the table leaves out) gets
:data:`NO_REGION`, and :func:`region_masks` turns region ids into one-hot planes in which such a pixel is zero
in every plane. That is exactly what CASD's dataset does (``data/keypoint.py``: one plane per LIP id 0..19
compared with ``==``, planes summed per region), so a label outside 0..19 in a ``semantic_merge3`` file belongs
to no region there and here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LIP_CLASSES = (
    "background", "hat", "hair", "glove", "sunglasses", "upper_clothes", "dress", "coat", "socks", "pants",
    "jumpsuits", "scarf", "skirt", "face", "left_arm", "right_arm", "left_leg", "right_leg", "left_shoe",
    "right_shoe",
)  # fmt: skip
UNLABELLED = 255  # a pixel of a stored parsing map with no LIP label
NO_REGION = 255  # a pixel of a merged map that belongs to no region

# A horizontal flip swaps the sided LIP labels (arms, legs, shoes); every other label (and 255) stays.
LIP_FLIP_PERM = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 14, 17, 16, 19, 18], np.uint8)

MergeTable = Sequence[tuple[str, Sequence[int]]]  # ((region name, (LIP labels...)), ...) in region order

# CASD's 8 regions (casd.md section 1, SP; the region order is the channel order of its 8-plane input).
CASD_LIP_TABLE: MergeTable = (
    ("background", (0,)),
    ("lower_clothes", (9, 12)),  # pants, skirt
    ("hair", (1, 2)),  # hat, hair
    ("gloves", (3,)),
    ("face", (4, 13)),  # sunglasses, face
    ("upper_clothes", (5, 6, 7, 10, 11)),  # upper clothes, dress, coat, jumpsuit, scarf
    ("arms", (14, 15)),
    ("legs_shoes", (8, 16, 17, 18, 19)),  # socks, legs, shoes
)
CASD_REGIONS = tuple(name for name, _ in CASD_LIP_TABLE)


def lookup_table(table: MergeTable) -> np.ndarray:
    """uint8 (256,) label -> region id (:data:`NO_REGION` for labels the table leaves out); checks the table."""
    lut = np.full(256, NO_REGION, np.uint8)
    if not 0 < len(table) < NO_REGION:
        raise ValueError(f"a merge table needs 1..{NO_REGION - 1} regions, got {len(table)}")
    for region, (name, labels) in enumerate(table):
        for label in labels:
            if not 0 <= int(label) < len(LIP_CLASSES):
                raise ValueError(f"merge table: region {name!r} lists label {label}; LIP labels are 0..19")
            if lut[label] != NO_REGION:
                raise ValueError(
                    f"merge table: LIP label {label} ({LIP_CLASSES[label]}) is in region {table[lut[label]][0]!r} "
                    f"and in {name!r}"
                )
            lut[label] = region
    return lut


def merge_lip(parsing: np.ndarray, table: MergeTable = CASD_LIP_TABLE) -> np.ndarray:
    """uint8 LIP label map (any shape) -> uint8 region ids of ``table``; labels in no region -> NO_REGION."""
    parsing = np.asarray(parsing)
    if parsing.dtype != np.uint8:
        raise ValueError(f"merge_lip expects a uint8 label map, got dtype {parsing.dtype}")
    return lookup_table(table)[parsing]


def region_masks(regions: np.ndarray, num_regions: int) -> np.ndarray:
    """Region ids (..., H, W) -> float32 one-hot planes (..., H, W, num_regions); NO_REGION pixels are all zero
    (CASD's 8-plane ``SP`` input, channels last)."""
    regions = np.asarray(regions)
    return (regions[..., None] == np.arange(num_regions, dtype=regions.dtype)).astype(np.float32)
