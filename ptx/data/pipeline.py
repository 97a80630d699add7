"""Input pipeline: TFDS ArrayRecord data -> grain -> batches of (source, target) pairs as numpy.

Data config fields (``config.data``; :func:`default_data_config` makes one):

* ``name`` -- ``puppets`` | ``deepfashion_pose`` | ``market1501_pose`` (builders in ``data_builders/``).
* ``builder_config`` -- e.g. ``fashion_tiny`` / ``market_small`` for puppets; ``""`` for the others.
* ``data_dir`` -- where the built dataset lives. Puppets are built there on first use; the others must be
  built from the user's files first (``python -m data_builders NAME --manual_dir ... --data_dir ...``).
* ``image_size`` -- (h, w) of the batch images; ``None`` keeps the dataset's keypoint frame (fashion
  256x176, market 128x64). Images are resized with PIL bilinear (what torchvision's resize does on PIL
  images) and keypoints scaled by size / frame, as GFLA does (256x176 -> 256x256).
* ``flip`` -- random horizontal flip of a whole pair (p = 0.5): images mirrored, keypoints mirrored with
  left/right joints swapped (:func:`ptx.data.keypoints.flip_keypoints`), sided parsing labels swapped.
* ``edges`` / ``parsing`` -- also give ``{source,target}_edge`` / ``_parsing`` (uint8 HxW, nearest resize;
  edges as stored: XDoG grey, white background and dark lines; parsing: LIP labels, 255 = unlabelled).
* ``names`` -- also give ``source_name`` / ``target_name`` (str arrays), e.g. to name evaluation outputs.

Batch (numpy, leading axis B = per-process batch): ``source_image``/``target_image`` uint8 (B,H,W,3),
``source_keypoints``/``target_keypoints`` float32 (B,18,2) (y, x) in pixels of the batch images, -1 missing.

Order is a pure function of (seed, shard, position): the iterator's state (``get_state``/``set_state`` or
``grain.checkpoint.CheckpointHandler``) resumes at exactly the next batch with the same ``worker_count``.
"""

from __future__ import annotations

import dataclasses
import io
import os
import sys
from typing import Any

import grain
import ml_collections
import numpy as np
from PIL import Image

from ptx.data.keypoints import LIP_FLIP_PERM, flip_keypoints

ROLES = ("source", "target")
DEFAULT_DATA_DIR = os.environ.get("PTX_DATA_DIR", "~/ptx_datasets")
READ_THREADS = 2  # record reads are cheap next to JPEG decoding, which runs in the map (or in the workers)
_PARSING_FLIP = np.arange(256, dtype=np.uint8)
_PARSING_FLIP[: len(LIP_FLIP_PERM)] = LIP_FLIP_PERM


def default_data_config(
    name: str = "puppets",
    builder_config: str = "fashion_tiny",
    *,
    data_dir: str = DEFAULT_DATA_DIR,
    image_size: tuple[int, int] | None = None,
    flip: bool = False,
    edges: bool = False,
    parsing: bool = False,
    names: bool = False,
) -> ml_collections.ConfigDict:
    """A ``config.data`` block with every field :func:`make_loader` reads (see the module docstring)."""
    return ml_collections.ConfigDict(
        {
            "name": name,
            "builder_config": builder_config,
            "data_dir": data_dir,
            "image_size": tuple(image_size) if image_size else None,
            "flip": flip,
            "edges": edges,
            "parsing": parsing,
            "names": names,
        }
    )


class PairSource:
    """Random access to pairs: pair i = the two image records its table row names (images stored once).

    With a ``decode`` transform, items come out decoded: grain reads items in threads, and PIL releases the
    GIL while decoding and resizing, so decoding here uses several cores even with ``worker_count=0``.
    """

    def __init__(
        self,
        images: Any,
        src: np.ndarray,
        dst: np.ndarray,
        description: str,
        decode: DecodePair | None = None,
    ):
        self._images, self._src, self._dst, self._description = images, src, dst, description
        self._decode = decode

    def with_decode(self, decode: DecodePair) -> PairSource:
        return PairSource(self._images, self._src, self._dst, self._description, decode)

    def __len__(self) -> int:
        return len(self._src)

    def __getitem__(self, i: int) -> dict[str, Any]:
        pair = {"source": self._images[int(self._src[i])], "target": self._images[int(self._dst[i])]}
        return self._decode.map(pair) if self._decode is not None else pair

    def __repr__(self) -> str:
        return f"PairSource({self._description}, {len(self)} pairs)"


def _decode(data: bytes, size: tuple[int, int], mode: str, resample: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image = image.convert(mode) if image.mode != mode else image
        if image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), resample)
        return np.asarray(image)


@dataclasses.dataclass(frozen=True)
class DecodePair(grain.transforms.Map):
    """Two stored records -> flat dict of decoded, resized arrays (the Batch fields of one pair)."""

    size: tuple[int, int]
    frame: tuple[int, int]
    edges: bool = False
    parsing: bool = False
    names: bool = False

    def map(self, pair: dict[str, Any]) -> dict[str, Any]:
        out = {}
        scale = np.array([self.size[0] / self.frame[0], self.size[1] / self.frame[1]], np.float32)
        for role in ROLES:
            rec = pair[role]
            out[f"{role}_image"] = _decode(rec["image"], self.size, "RGB", Image.BILINEAR)
            kps = np.asarray(rec["keypoints"], np.float32)
            out[f"{role}_keypoints"] = np.where(kps == -1, np.float32(-1), kps * scale)
            if self.edges:
                out[f"{role}_edge"] = _decode(rec["edge"], self.size, "L", Image.NEAREST)
            if self.parsing:
                out[f"{role}_parsing"] = _decode(rec["parsing"], self.size, "L", Image.NEAREST)
            if self.names:
                name = rec["name"]
                out[f"{role}_name"] = name.decode() if isinstance(name, bytes) else str(name)
        return out


@dataclasses.dataclass(frozen=True)
class RandomFlip(grain.transforms.RandomMap):
    """Mirror a whole pair with probability 1/2 (one draw per pair, from grain's per-record seeded rng)."""

    def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        if rng.random() >= 0.5:
            return element
        out = dict(element)
        for role in ROLES:
            image = element[f"{role}_image"]
            out[f"{role}_image"] = np.ascontiguousarray(image[:, ::-1])
            out[f"{role}_keypoints"] = flip_keypoints(element[f"{role}_keypoints"], image.shape[1])
            if f"{role}_edge" in element:
                out[f"{role}_edge"] = np.ascontiguousarray(element[f"{role}_edge"][:, ::-1])
            if f"{role}_parsing" in element:
                out[f"{role}_parsing"] = _PARSING_FLIP[element[f"{role}_parsing"][:, ::-1]]
        return out


def _builder(data_cfg: ml_collections.ConfigDict) -> Any:
    import data_builders  # registers the builders with TFDS

    builder = data_builders.get_builder(
        data_cfg.name, data_dir=data_cfg.data_dir, config=data_cfg.get("builder_config") or None
    )
    if builder.is_prepared():
        return builder
    if data_cfg.name != "puppets":
        raise FileNotFoundError(
            f"dataset {data_cfg.name!r} is not built in {os.path.expanduser(data_cfg.data_dir)}. Build it from "
            f"your files with:\n  python -m data_builders {data_cfg.name} --manual_dir YOUR_FOLDER "
            f"--data_dir {data_cfg.data_dir}\n{builder.MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )
    print(
        f"[ptx] building puppets/{builder.builder_config.name} into {builder.data_dir} (first use; later runs "
        f"reuse it)",
        file=sys.stderr,
        flush=True,
    )
    try:
        return data_builders.build("puppets", data_dir=data_cfg.data_dir, config=builder.builder_config.name)
    except OSError:
        # Several processes (multi-host) may build at once; each writes its own temporary folder and the
        # first rename wins. A later one fails to rename: use the finished dataset.
        again = data_builders.get_builder(
            "puppets", data_dir=data_cfg.data_dir, config=builder.builder_config.name
        )
        if again.is_prepared():
            return again
        raise


def pair_source(data_cfg: ml_collections.ConfigDict, split: str) -> tuple[PairSource, tuple[int, int]]:
    """The pairs of ``split`` as a random-access source, and the keypoint frame (h, w) of the dataset."""
    import tensorflow_datasets as tfds

    builder = _builder(data_cfg)
    meta = builder.info.metadata
    if split not in meta["pairs"]:
        raise ValueError(f"dataset {data_cfg.name!r} has no split {split!r}; splits: {sorted(meta['pairs'])}")
    for field, flag in (("edges", "has_edge"), ("parsing", "has_parsing")):
        if data_cfg.get(field) and not meta[flag]:
            raise ValueError(
                f"config asks for {field} but dataset {data_cfg.name!r} in {builder.data_dir} was built without "
                f"them (rebuild with the {'trainE/diff' if field == 'edges' else 'semantic_merge3'} folder)"
            )
    skip = tfds.decode.SkipDecoding()
    images = builder.as_data_source(split=split, decoders={"image": skip, "edge": skip, "parsing": skip})
    table = meta["pairs"][split]
    src, dst = np.asarray(table["from"], np.int64), np.asarray(table["to"], np.int64)
    desc = f"{builder.name}/{builder.builder_config.name if builder.builder_config else ''}:{split}"
    return PairSource(images, src, dst, desc), tuple(meta["frame"])


def make_loader(
    data_cfg: ml_collections.ConfigDict,
    *,
    split: str,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    num_epochs: int | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
    worker_count: int = 0,
) -> grain.DataLoader:
    """A grain DataLoader of pair batches (module docstring) for this process's shard of ``split``.

    ``num_epochs=None`` repeats forever. Each process passes its own ``shard_index`` of ``shard_count``
    (e.g. ``jax.process_index()`` / ``jax.process_count()``); shards are disjoint and, like the last partial
    batch, a remainder that does not divide evenly is dropped.
    """
    source, frame = pair_source(data_cfg, split)
    size = tuple(int(v) for v in data_cfg.image_size) if data_cfg.get("image_size") else frame
    if len(source) < shard_count * batch_size:
        raise ValueError(
            f"{source!r} has too few pairs for {shard_count} shard(s) of batch size {batch_size}"
        )
    sampler = grain.samplers.IndexSampler(
        num_records=len(source),
        shuffle=shuffle,
        seed=seed,
        num_epochs=num_epochs,
        shard_options=grain.sharding.ShardOptions(
            shard_index=shard_index, shard_count=shard_count, drop_remainder=True
        ),
    )
    source = source.with_decode(
        DecodePair(
            size=size,
            frame=frame,
            edges=bool(data_cfg.get("edges")),
            parsing=bool(data_cfg.get("parsing")),
            names=bool(data_cfg.get("names")),
        )
    )
    ops: list[Any] = []
    if data_cfg.get("flip"):
        ops.append(RandomFlip())
    ops.append(grain.transforms.Batch(batch_size, drop_remainder=True))
    if worker_count:
        _allow_grain_workers()
    # grain's default reads ahead 500 records with 16 threads: costly to start and pointless on few cores.
    read = grain.ReadOptions(num_threads=READ_THREADS, prefetch_buffer_size=max(32, 4 * batch_size))
    return grain.DataLoader(
        data_source=source, sampler=sampler, operations=ops, worker_count=worker_count, read_options=read
    )


def _allow_grain_workers() -> None:
    """grain's worker processes read an absl flag; outside an absl app the flags are not parsed yet."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
