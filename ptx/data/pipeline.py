"""Input pipeline: TFDS ArrayRecord data -> grain -> batches of (source, target) pairs as numpy.

Data config fields (``config.data``; :func:`default_data_config` makes one):

* ``name`` -- ``puppets`` | ``deepfashion_pose`` | ``market1501_pose`` (builders in ``data_builders/``).
* ``builder_config`` -- e.g. ``fashion_tiny`` / ``market_small`` for puppets; ``""`` for the others.
* ``data_dir`` -- where the built dataset lives. Puppets are built there on first use; the others must be
  built from the user's files first (``python -m data_builders NAME --manual_dir ... --data_dir ...``).
* ``image_size`` -- (h, w) of the batch images; ``None`` keeps the dataset's keypoint frame (fashion
  256x176 unless built with another ``--keypoint_frame``, market 128x64). Stored maps show the whole frame
  at their own size and aspect (DeepFashion at 256x176 or CASD's squashed 256x256; ``data_builders._common``),
  so images are resized straight to ``image_size`` with PIL bilinear (what torchvision's resize does on PIL
  images; a map already at that size is not touched) and keypoints scaled per axis by size / frame, as GFLA
  does (256x176 -> 256x256).
* ``flip`` -- random horizontal flip of a whole pair (p = 0.5): images mirrored, keypoints mirrored with
  left/right joints swapped (:func:`ptx.data.keypoints.flip_keypoints`), sided parsing labels swapped.
* ``edges`` / ``parsing`` -- also give ``{source,target}_edge`` / ``_parsing`` (uint8 HxW, nearest resize;
  edges as stored: XDoG grey, white background and dark lines; parsing: LIP labels, 255 = unlabelled).
* ``names`` -- also give ``source_name`` / ``target_name`` (str arrays), e.g. to name evaluation outputs.

Batch (numpy, leading axis B = per-process batch): ``source_image``/``target_image`` uint8 (B,H,W,3),
``source_keypoints``/``target_keypoints`` float32 (B,18,2) (y, x) in pixels of the batch images, -1 missing.

Order is a pure function of (seed, shard, position): the iterator's state (``get_state``/``set_state`` or
``grain.checkpoint.CheckpointHandler``) resumes at exactly the next batch with the same ``worker_count``.

Method hooks (``Method.pair_filter(split)`` / ``Method.host_transform(split)``, types in
``ptx.methods.protocol``), both optional arguments of :func:`make_loader`:

* ``pair_filter(view) -> bool`` decides which pairs of the split exist at all. It runs once per loader over
  the whole pair table, BEFORE shuffling and sharding, so every process and every epoch sees the same pairs.
  ``view`` holds ``source_name``/``target_name`` (str) and ``source_keypoints``/``target_keypoints`` (float32
  (18, 2), (y, x) in pixels of the batch images, -1 missing, read-only; stored orientation, i.e. before any
  flip): no image is decoded. The loader reports ``kept N of M pairs (dropped K: <reason>)`` once (from the
  process with ``shard_index`` 0), the reason being the first line of the filter's docstring (else its name);
  a filter that keeps no pair is an error naming the split.
* ``host_transform(pair) -> dict`` runs on every pair after decoding, resizing and the flip, on numpy arrays
  without a batch axis (the fields above, plus edges/parsing/names when ``config.data`` asks for them). It
  returns the fields it adds or replaces (e.g. ``affine`` (10, 2, 3), ``source_mask`` (10, H, W),
  ``shifted_edge``); they are batched like the others, so each must have the same shape for every pair.
  It must be a DETERMINISTIC function of the pair: a resumed run recomputes it for the same pairs and must
  get the same batches, and random augmentation belongs to the pipeline (the flip draws from grain's
  per-record rng). With ``worker_count > 0`` it runs in worker processes, so it must be picklable
  (cloudpickle: closures are fine, open files and locks are not). :func:`apply_host_transform` is the same
  step for callers that build batches themselves (the sampler).

Changing a filter changes the pair list, so an iterator state saved under another filter resumes elsewhere.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import grain
import ml_collections
import numpy as np
from etils import epath
from PIL import Image

from ptx.data.keypoints import flip_keypoints
from ptx.data.parsing import LIP_FLIP_PERM

if TYPE_CHECKING:
    from ptx.methods.protocol import HostTransform, PairFilter

log = logging.getLogger(__name__)

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


_IMAGE_ANNOTATIONS: dict[Any, tuple[list[str], np.ndarray]] = {}


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
        cache_key: Any = None,
    ):
        self._images, self._src, self._dst, self._description = images, src, dst, description
        self._decode, self._cache_key = decode, cache_key

    def with_decode(self, decode: DecodePair) -> PairSource:
        return PairSource(self._images, self._src, self._dst, self._description, decode, self._cache_key)

    def subset(self, keep: np.ndarray, description: str) -> PairSource:
        """The pairs where ``keep`` (bool per pair) is True, in their order."""
        src, dst = self._src[keep], self._dst[keep]
        return PairSource(self._images, src, dst, description, self._decode, self._cache_key)

    @property
    def description(self) -> str:
        return self._description

    def pair_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(from, to) image record indices of every pair."""
        return self._src, self._dst

    def image_annotations(self) -> tuple[list[str], np.ndarray]:
        """Names and keypoints (N, 18, 2) of every image record of the split, images not decoded; cached per
        built dataset and split (pair filters of several loaders read them once)."""
        cached = _IMAGE_ANNOTATIONS.get(self._cache_key) if self._cache_key is not None else None
        if cached is None:
            records = [self._images[i] for i in range(len(self._images))]
            names = [r["name"].decode() if isinstance(r["name"], bytes) else str(r["name"]) for r in records]
            keypoints = np.stack([np.asarray(r["keypoints"], np.float32) for r in records]).reshape(-1, 18, 2)
            keypoints.setflags(write=False)
            cached = (names, keypoints)
            if self._cache_key is not None:
                _IMAGE_ANNOTATIONS[self._cache_key] = cached
        return cached

    def __len__(self) -> int:
        return len(self._src)

    def __getitem__(self, i: int) -> dict[str, Any]:
        pair = {"source": self._images[int(self._src[i])], "target": self._images[int(self._dst[i])]}
        return self._decode.map(pair) if self._decode is not None else pair

    def __repr__(self) -> str:
        return f"PairSource({self._description}, {len(self)} pairs)"


def scale_keypoints(keypoints: np.ndarray, frame: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Keypoints in pixels of the dataset's frame -> pixels of ``size`` images (per axis; -1 stays -1)."""
    kps = np.asarray(keypoints, np.float32)
    scale = np.array([size[0] / frame[0], size[1] / frame[1]], np.float32)
    return np.where(kps == -1, np.float32(-1), kps * scale)


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
        for role in ROLES:
            rec = pair[role]
            out[f"{role}_image"] = _decode(rec["image"], self.size, "RGB", Image.BILINEAR)
            out[f"{role}_keypoints"] = scale_keypoints(rec["keypoints"], self.frame, self.size)
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


def apply_host_transform(transform: HostTransform, pair: dict[str, Any]) -> dict[str, Any]:
    """One pair (no batch axis) with a method's host transform applied: its fields added or replaced."""
    added = transform(pair)
    if not isinstance(added, Mapping):
        raise TypeError(
            f"host transform {_describe(transform)!r} returned {type(added).__name__}; expected a dict of the "
            f"fields it adds or replaces"
        )
    return {**pair, **added}


@dataclasses.dataclass(frozen=True)
class HostTransformMap(grain.transforms.Map):
    """A method's per-pair host transform as a grain operation (after the flip, before batching)."""

    transform: Any  # HostTransform

    def map(self, element: dict[str, Any]) -> dict[str, Any]:
        return apply_host_transform(self.transform, element)


def _describe(fn: Any) -> str:
    """A callable's reason for the log: the first line of its docstring, else its name."""
    target = getattr(fn, "func", fn)  # functools.partial
    doc = inspect.getdoc(target)  # a callable object's class docstring counts
    if doc:
        return doc.splitlines()[0]
    return getattr(target, "__name__", None) or type(target).__name__


def filter_pairs(
    source: PairSource,
    pair_filter: PairFilter,
    *,
    frame: tuple[int, int],
    size: tuple[int, int],
    split: str,
    report: bool = True,
) -> PairSource:
    """The pairs ``pair_filter`` keeps (module doc), reported once; none kept is an error naming the split."""
    names, keypoints = source.image_annotations()
    scaled = scale_keypoints(keypoints, frame, size)
    scaled.setflags(write=False)
    src, dst = source.pair_indices()
    keep = np.fromiter(
        (
            bool(
                pair_filter(
                    {
                        "source_name": names[a],
                        "target_name": names[b],
                        "source_keypoints": scaled[a],
                        "target_keypoints": scaled[b],
                    }
                )
            )
            for a, b in zip(src.tolist(), dst.tolist())
        ),
        dtype=bool,
        count=len(src),
    )
    reason, kept, total = _describe(pair_filter), int(keep.sum()), len(keep)
    if kept == 0:
        raise ValueError(
            f"pair filter ({reason}) keeps none of the {total} pairs of split {split!r} of {source.description}"
        )
    message = f"{source.description}: kept {kept} of {total} pairs (dropped {total - kept}: {reason})"
    if report:
        log.info(message)
        print(f"[ptx] {message}", file=sys.stderr, flush=True)
    return source.subset(keep, f"{source.description} ({reason}: {kept} of {total} pairs)")


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
    info = epath.Path(builder.data_dir) / "dataset_info.json"
    key = (os.fspath(builder.data_dir), split, info.stat().mtime)  # a rebuild in the same place is new
    return PairSource(images, src, dst, desc, cache_key=key), tuple(meta["frame"])


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
    host_transform: HostTransform | None = None,
    pair_filter: PairFilter | None = None,
) -> grain.DataLoader:
    """A grain DataLoader of pair batches (module docstring) for this process's shard of ``split``.

    ``num_epochs=None`` repeats forever. Each process passes its own ``shard_index`` of ``shard_count``
    (e.g. ``jax.process_index()`` / ``jax.process_count()``); shards are disjoint and, like the last partial
    batch, a remainder that does not divide evenly is dropped. ``pair_filter`` and ``host_transform`` are the
    method's hooks (module docstring), ``None`` for none.
    """
    source, frame = pair_source(data_cfg, split)
    size = tuple(int(v) for v in data_cfg.image_size) if data_cfg.get("image_size") else frame
    if pair_filter is not None:
        source = filter_pairs(
            source, pair_filter, frame=frame, size=size, split=split, report=shard_index == 0
        )
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
    if host_transform is not None:
        ops.append(HostTransformMap(host_transform))
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
