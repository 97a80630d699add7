"""Writes tiny manual directories in the exact file formats of the original pose-transfer code.

Annotation CSVs: ``name:keypoints_y:keypoints_x`` with JSON lists (as pandas writes them with sep=':');
pair CSVs: ``,from,to`` with a leading index column (pandas ``to_csv``); JPEG images; optional SCA-GAN edge
PNGs (``trainE/diff``) and CASD parsing PNGs (``semantic_merge3``). Everything is seeded.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
from PIL import Image

from ptx.data.annotations import edge_file_name, highres_name

FASHION_FRAME = (256, 176)
MARKET_FRAME = (128, 64)
_CATEGORIES = (("WOMEN", "Blouses_Shirts"), ("MEN", "Denim"), ("WOMEN", "Dresses"))
_VIEWS = ("1_front", "2_side", "3_back", "4_full", "7_additional")


@dataclasses.dataclass
class Manual:
    """What a fixture wrote: the folder, and per split the images, keypoints and pairs."""

    root: pathlib.Path
    frame: tuple[int, int]
    images: dict[str, dict[str, pathlib.Path]]  # split -> name -> file
    keypoints: dict[str, dict[str, np.ndarray]]  # split -> name -> (18, 2)
    pairs: dict[str, list[tuple[str, str]]]


def random_keypoints(rng: np.random.Generator, frame: tuple[int, int]) -> np.ndarray:
    ys = rng.integers(0, frame[0], 18)
    xs = rng.integers(0, frame[1], 18)
    kps = np.stack([ys, xs], 1).astype(np.float32)
    kps[rng.random(18) < 0.2] = -1
    kps[1] = (frame[0] // 4, frame[1] // 2)  # the neck is always there
    return kps


def write_image(path: pathlib.Path, rng: np.random.Generator, size: tuple[int, int]) -> None:
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = rng.integers(0, 256, 3)
    image = (base + 0.5 * yy[..., None] * (1 + rng.random(3)) + xx[..., None] * rng.random(3)) % 256
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.astype(np.uint8)).save(path, format="JPEG", quality=90)


def annotation_line(name: str, kps: np.ndarray) -> str:
    ys = [int(v) for v in kps[:, 0]]
    xs = [int(v) for v in kps[:, 1]]
    return f"{name}:{json.dumps(ys)}:{json.dumps(xs)}"


def write_annotations(path: pathlib.Path, kps_by_name: dict[str, np.ndarray]) -> None:
    lines = ["name:keypoints_y:keypoints_x"] + [annotation_line(n, k) for n, k in kps_by_name.items()]
    path.write_text("\n".join(lines) + "\n")


def write_pairs(path: pathlib.Path, pairs: list[tuple[str, str]]) -> None:
    lines = [",from,to"] + [f"{i},{a},{b}" for i, (a, b) in enumerate(pairs)]
    path.write_text("\n".join(lines) + "\n")


def _pairs_within(groups: list[list[str]]) -> list[tuple[str, str]]:
    return [(a, b) for g in groups for a in g for b in g if a != b]


def write_fashion(
    root: pathlib.Path,
    *,
    people: tuple[int, int] = (2, 1),
    poses: int = 3,
    layout: str = "folders",
    prefix: str = "fasion-",
    edges: bool = False,
    parsing: bool = False,
    image_size: tuple[int, int] = FASHION_FRAME,
    parsing_size: tuple[int, int] = FASHION_FRAME,
    keypoint_frame: tuple[int, int] = FASHION_FRAME,
    seed: int = 0,
) -> Manual:
    """A DeepFashion manual dir: ``layout`` ``folders`` (train/, test/), ``resize`` (CASD's train_resize/,
    test_resize/) or ``highres`` (img_highres + .lst). Keypoints are drawn inside ``keypoint_frame``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    man = Manual(root, keypoint_frame, {}, {}, {})
    folder = {"folders": "{split}", "resize": "{split}_resize"}.get(layout)
    person = 0
    for split, n_people in zip(("train", "test"), people):
        groups, lst = [], []
        man.images[split], man.keypoints[split] = {}, {}
        for _ in range(n_people):
            person += 1
            gender, category = _CATEGORIES[person % len(_CATEGORIES)]
            group = []
            for p in range(poses):
                rel = pathlib.Path(gender, category, f"id_{person:08d}", f"{p + 1:02d}_{_VIEWS[p % 5]}.jpg")
                name = highres_name(rel)
                path = (
                    root / "img_highres" / rel if folder is None else root / folder.format(split=split) / name
                )
                write_image(path, rng, image_size)
                man.images[split][name] = path
                man.keypoints[split][name] = random_keypoints(rng, keypoint_frame)
                group.append(name)
                lst.append(name)
            groups.append(group)
        man.pairs[split] = _pairs_within(groups)
        write_annotations(root / f"{prefix}annotation-{split}.csv", man.keypoints[split])
        write_pairs(root / f"{prefix}pairs-{split}.csv", man.pairs[split])
        if layout == "highres":
            (root / f"{split}.lst").write_text("\n".join(lst) + "\n")
        for name in man.images[split]:
            if edges:  # SCA-GAN keeps the test images' edges in trainE/diff too
                edge = (rng.random(FASHION_FRAME) > 0.1).astype(np.uint8) * 255
                path = root / "trainE" / "diff" / edge_file_name(name)
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(edge).save(path)
            if parsing:
                labels = rng.integers(0, 20, parsing_size).astype(np.uint8)
                path = root / "semantic_merge3" / (name[:-4] + ".png")
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(labels).save(path)
    return man


def write_market(
    root: pathlib.Path, *, people: tuple[int, int] = (2, 1), poses: int = 3, seed: int = 1
) -> Manual:
    """A Market-1501 manual dir: train/, test/, market-{annotation,pairs}-{train,test}.csv."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    man = Manual(root, MARKET_FRAME, {}, {}, {})
    person = 0
    for split, n_people in zip(("train", "test"), people):
        groups = []
        man.images[split], man.keypoints[split] = {}, {}
        for _ in range(n_people):
            person += 2
            group = []
            for p in range(poses):
                name = f"{person:04d}_c{p + 1}s1_{1000 + 17 * p:06d}_0{p % 3 + 1}.jpg"
                write_image(root / split / name, rng, MARKET_FRAME)
                man.images[split][name] = root / split / name
                man.keypoints[split][name] = random_keypoints(rng, MARKET_FRAME)
                group.append(name)
            groups.append(group)
        man.pairs[split] = _pairs_within(groups)
        write_annotations(root / f"market-annotation-{split}.csv", man.keypoints[split])
        write_pairs(root / f"market-pairs-{split}.csv", man.pairs[split])
    return man
