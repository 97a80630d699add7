"""What the three pose-transfer builders share: the feature spec, the pair table, file checks.

Layout of every built dataset (one TFDS builder config = one folder of ArrayRecord files):

* splits ``train`` and ``test`` hold each person image ONCE, in a fixed order (``disable_shuffling``), with
  ``image`` (the file's JPEG/PNG bytes as given), ``name``, ``identity``, ``keypoints`` float32 (18, 2) (y, x)
  in pixels of the keypoint frame (-1 = missing), ``edge`` and ``parsing`` (uint8 one-channel PNGs at their
  own size; a 1x1 placeholder when the dataset has none).
* frames: the keypoint frame (h, w) is what the annotation CSVs' pixels refer to (DeepFashion 256x176 unless
  built with ``keypoint_frame``, Market 128x64). Images, edge and parsing maps may have any size whose aspect
  ratio is one of the dataset's :data:`SHAPES`: each shape shows the WHOLE frame (the files were made by
  resizing without a crop), so between any two of them, keypoints included, the map is a scale per axis
  (x_image = x * W_image / W_frame). DeepFashion comes at 256x176 (PATN/GFLA/SCA-GAN's files; ``img_highres``
  1101x750 is within the tolerance) and squashed to 256x256 (CASD: ``tool/resize_fashion.py`` resizes
  ``img_highres`` with PIL and no crop; its ``semantic_merge3`` maps are 256x256 too). The input pipeline
  resizes every map once, straight to the batch size (bilinear images, nearest-neighbour edges and parsing).
* the pairs are a table of record indices in the dataset's metadata (``metadata.json``):
  ``pairs[split] = {"from": [...], "to": [...]}``, so a pair is two random-access reads of its split.
* metadata also records ``frame`` (h, w) of the keypoints, ``has_edge``, ``has_parsing``, the parsing class
  names and the ``skipped`` tallies (items the originals would skip silently).

Nothing here imports TensorFlow: images are handed to TFDS as encoded bytes.
"""

from __future__ import annotations

import abc
import inspect
import io
import logging
import os
import pathlib
import shutil
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image, UnidentifiedImageError

from ptx.data import progress
from ptx.data.annotations import DataFileError, Skipped
from ptx.data.parsing import LIP_CLASSES, UNLABELLED

log = logging.getLogger(__name__)

SHAPES = {"fashion": ((256, 176), (256, 256)), "market": ((128, 64),)}  # aspects a stored map may have
FRAMES = {name: shapes[0] for name, shapes in SHAPES.items()}  # the default keypoint frames
# Parsing maps hold the 20 LIP labels (CASD's semantic_merge3 PNGs, the puppets renderer); 255 = unlabelled.
PARSING_CLASSES = LIP_CLASSES
OUT_OF_RANGE_MAPS = "parsing maps with labels >= 20 (stored as 255: in no region, as CASD)"
OUT_OF_RANGE_PIXELS = "parsing pixels with labels >= 20"
ASPECT_TOLERANCE = 0.02  # img_highres 1101x750 vs the 256x176 keypoint frame differ by 0.9%


def features() -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "name": tfds.features.Text(),
            "identity": tfds.features.Text(),
            "keypoints": tfds.features.Tensor(shape=(18, 2), dtype=np.float32),
            "edge": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
            "parsing": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
        }
    )


def encode_png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def encode_jpeg(array: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(array, np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


PLACEHOLDER = encode_png(np.zeros((1, 1), np.uint8))


def _open_complete(path: pathlib.Path, what: str) -> tuple[bytes, Image.Image]:
    if not path.is_file():
        raise DataFileError(f"{what} not found: expected the file {path}")
    data = path.read_bytes()
    try:
        image = Image.open(io.BytesIO(data))
        image.load()  # decodes everything: a truncated file raises here
    except (OSError, SyntaxError, UnidentifiedImageError, ValueError) as e:
        raise DataFileError(
            f"{path}: unreadable or truncated {what} ({e}); expected a complete image file"
        ) from None
    return data, image


def has_aspect(size_hw: tuple[int, int], shapes: Sequence[tuple[int, int]]) -> bool:
    """Whether an HxW size has the aspect ratio of one of ``shapes`` (+- ASPECT_TOLERANCE)."""
    h, w = size_hw
    return any(abs(h / w - a / b) <= ASPECT_TOLERANCE * a / b for a, b in shapes)


def check_aspect(
    size_hw: tuple[int, int], shapes: Sequence[tuple[int, int]], path: pathlib.Path, what: str
) -> None:
    """A stored map must show the whole frame: its aspect is one of the dataset's ``shapes`` (module doc)."""
    if not has_aspect(size_hw, shapes):
        h, w = size_hw
        allowed = " or ".join(f"{a}x{b} (height/width {a / b:.3f})" for a, b in shapes)
        raise DataFileError(
            f"{path}: {what} is {h}x{w} (HxW); expected {allowed}, or a larger or smaller image of that aspect "
            f"ratio (+- {ASPECT_TOLERANCE:.0%})"
        )


def read_person_image(path: pathlib.Path, shapes: Sequence[tuple[int, int]]) -> bytes:
    """The bytes to store for a person image: the file itself when it is an RGB JPEG/PNG (decoding it later
    gives exactly what PIL gives for the file), else a lossless RGB PNG of it."""
    data, image = _open_complete(path, "image")
    check_aspect((image.height, image.width), shapes, path, "the image")
    if image.format in ("JPEG", "PNG") and image.mode == "RGB":
        return data
    return encode_png(np.asarray(image.convert("RGB")))


def read_edge(path: pathlib.Path, shapes: Sequence[tuple[int, int]]) -> bytes:
    """An edge map as a one-channel PNG, grey levels as in the file (XDoG: white background, dark lines)."""
    _, image = _open_complete(path, "edge map")
    check_aspect((image.height, image.width), shapes, path, "the edge map")
    return encode_png(np.asarray(image.convert("L")))


def read_parsing(path: pathlib.Path, shapes: Sequence[tuple[int, int]], skipped: Skipped) -> bytes:
    """A parsing map (LIP labels 0..19, as CASD's ``semantic_merge3`` PNGs; 8-bit grey or palette, read as
    CASD reads it: the array of the PNG's values) -> one-channel PNG at the file's own size.

    Labels >= 20 are tolerated as CASD tolerates them: its dataset compares each pixel with the ids 0..19, so
    such a pixel lies in none of its 8 regions. They are stored as 255 (``ptx.data.parsing.UNLABELLED``, in no
    region of any merge table) and counted, maps and pixels, in the build's tally.
    """
    _, image = _open_complete(path, "parsing map")
    labels = np.asarray(image)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise DataFileError(
            f"{path}: parsing map of mode {image.mode}; expected a one-channel 8-bit PNG of LIP labels 0..19"
        )
    check_aspect(labels.shape, shapes, path, "the parsing map")
    bad = labels >= len(PARSING_CLASSES)
    if np.any(bad):
        n = int(bad.sum())
        found = sorted(set(np.unique(labels[bad]).tolist()))
        skipped.add(OUT_OF_RANGE_MAPS, f"{path.name} ({n} px, labels {found[:4]})")
        skipped.add(OUT_OF_RANGE_PIXELS, path.name, n)
        labels = np.where(bad, UNLABELLED, labels).astype(np.uint8)
    return encode_png(labels)


DUPLICATE_PAIRS = "duplicate pairs (kept, as the originals do)"
SELF_PAIRS = "pairs of an image with itself (kept, as the originals do)"


def pair_table(
    pairs: Sequence[tuple[str, str]],
    index: dict[str, int],
    csv_path: os.PathLike | str,
    skipped: Skipped | None = None,
) -> dict[str, list[int]]:
    """Pairs of names -> {"from": [record index], "to": [...]}; a name without a record is an error, no pair at
    all is an error. Duplicate pairs and self pairs are kept (the originals train on them) and counted in
    ``skipped`` so the build reports them."""
    if not pairs:
        raise DataFileError(
            f"{csv_path}: no pairs; expected a header with 'from' and 'to' and at least one row"
        )
    seen: set[tuple[str, str]] = set()
    for row, (a, b) in enumerate(pairs, start=2):
        if skipped is not None:
            if (a, b) in seen:
                skipped.add(DUPLICATE_PAIRS, f"line {row} ({a}, {b})")
            if a == b:
                skipped.add(SELF_PAIRS, f"line {row} ({a})")
        seen.add((a, b))
    src, dst = [], []
    for row, (a, b) in enumerate(pairs, start=2):
        for name in (a, b):
            if name not in index:
                raise DataFileError(
                    f"{csv_path} line {row}: pair ({a}, {b}) names the image {name!r}, which is not among the "
                    f"split's annotated images found in the image folder"
                )
        src.append(index[a])
        dst.append(index[b])
    return {"from": src, "to": dst}


class PoseBuilder(tfds.core.GeneratorBasedBuilder, abc.ABC):
    """Base of the pose-transfer builders: images once per split, pairs as a metadata table of indices.

    Subclasses implement :meth:`_collect`, returning per split the image entries (``name``, ``identity``
    and ``load``: a callable giving ``image`` bytes, ``keypoints`` and, when the dataset has them, ``edge``
    and ``parsing`` bytes) and the pair table, and set ``self._has_edge`` / ``self._has_parsing``.
    Loading happens while the records are written, so a bad file stops the build: TFDS writes into a
    temporary folder and renames it only on success, so an interrupted build never reads as complete.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Images once per split, pairs as a metadata table of record indices."}
    SHAPES: tuple[tuple[int, int], ...] = SHAPES["fashion"]  # see the module doc; SHAPES[0] = default frame

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        # TFDS's own lookup needs the importlib_resources backport for packages outside TFDS.
        return epath.Path(inspect.getfile(cls))

    def _log_download_bytes(self) -> None:
        pass  # TFDS's "Downloading and preparing dataset Unknown size ...": the progress lines say it

    def _log_download_done(self) -> None:
        pass  # the caller reports the finished build (python -m data_builders prints the splits)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(self.__doc__ or "").strip().splitlines()[0],
            features=features(),
            disable_shuffling=True,  # record i must stay record i: the pair table refers to it
            metadata=tfds.core.MetadataDict(),
        )

    @property
    def frame(self) -> tuple[int, int]:
        """The keypoint frame (h, w) written to the metadata."""
        return self.SHAPES[0]

    @abc.abstractmethod
    def _collect(self, dl_manager: Any) -> dict[str, tuple[list[dict[str, Any]], dict[str, list[int]]]]:
        """{split: (entries, {"from": [...], "to": [...]})}."""

    def _split_generators(self, dl_manager: Any) -> dict[str, Iterator]:
        self._skipped: dict[str, Skipped] = {}
        self._has_edge = self._has_parsing = False
        collected = self._collect(dl_manager)
        meta = self.info.metadata
        meta["frame"] = list(self.frame)
        meta["parsing_classes"] = list(PARSING_CLASSES)
        meta["pairs"] = {split: table for split, (_, table) in collected.items()}
        meta["has_edge"] = bool(self._has_edge)
        meta["has_parsing"] = bool(self._has_parsing)
        meta["skipped"] = {}
        meta["source_fingerprint"] = getattr(self, "source_fingerprint", None)
        return {split: self._generate_examples(entries, split) for split, (entries, _) in collected.items()}

    def _generate_examples(
        self, entries: list[dict[str, Any]], split: str
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        yield from self._examples(progress.track(entries, f"[{self.name}] {split}", unit="image"))
        tally = self.skipped(split)  # complete now: loading may add to it
        self.info.metadata["skipped"][split] = dict(tally.counts)
        if tally.counts:
            log.warning(
                "%s/%s: skipped or tolerated as the originals do: %s", self.name, split, tally.summary()
            )
            print(f"[{self.name}] {split}: skipped or tolerated as the originals do: {tally.summary()}")

    def _examples(self, entries: list[dict[str, Any]]) -> Iterator[tuple[int, dict[str, Any]]]:
        for i, e in enumerate(entries):
            loaded = e["load"]()
            yield (
                i,
                {
                    "image": loaded["image"],
                    "name": e["name"],
                    "identity": e["identity"],
                    "keypoints": np.asarray(loaded["keypoints"], np.float32),
                    "edge": loaded.get("edge") or PLACEHOLDER,
                    "parsing": loaded.get("parsing") or PLACEHOLDER,
                },
            )

    def skipped(self, split: str) -> Skipped:
        return self._skipped.setdefault(split, Skipped())


def source_fingerprint(manual_dir: str | os.PathLike) -> str:
    """A digest of every file's relative path, size and modification time under ``manual_dir``: a build records
    it, and a later build call whose sources changed says so instead of silently reusing the old records."""
    import hashlib

    root = pathlib.Path(manual_dir).expanduser()
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = pathlib.Path(dirpath, name)
            st = path.stat()
            digest.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def remove_incomplete(builder: Any) -> list[pathlib.Path]:
    """Delete ``incomplete.*`` folders that interrupted builds of this dataset left beside its finished version
    (called after a successful build, so none of them is being written)."""
    version_dir = pathlib.Path(os.fspath(builder.data_dir))
    removed = []
    for parent in (version_dir.parent, version_dir.parent.parent):
        for debris in parent.glob("incomplete.*"):
            if debris.is_dir():
                shutil.rmtree(debris, ignore_errors=True)
                removed.append(debris)
    return removed
