"""Inference for people: ``ptx.sample(src, pose)`` and reusable, jitted samplers from ``ptx.load``.

A sampler owns a method, its variables and one compiled predict function per batch shape. Photos of any size are
fitted to the model's frame around the person (``ptx.data.framing``); poses come as arrays, OpenPose JSON files
or rows of the originals' annotation CSVs (``ptx.data.poses``). Weights come from a training workdir, a
directory written by ``python -m ptx.convert``, or ``"random"`` (smoke tests only).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ptx.data import framing as framing_lib
from ptx.data import poses as poses_lib
from ptx.data.photos import read_image, read_label_map
from ptx.methods.protocol import ENCODE_SOURCE, SOURCE_EDGE, SOURCE_PARSING

ImageLike = Any  # str | os.PathLike | PIL.Image.Image | np.ndarray
RngLike = Any  # int | jax.random key | None
CHECKPOINT_ENV = "PTX_CHECKPOINTS"


def list_models() -> list[str]:
    """Config names usable as ``model=`` (the config files shipped with ptx; see ``ptx.bundled``)."""
    from ptx import bundled

    return bundled.config_names()


def model_config(model: str, variant: str = "paper"):
    """The locked ConfigDict of config ``<model>`` (``configs/<model>.py``), variant ``variant``."""
    from ptx import bundled

    return bundled.model_config(model, variant)


# A target joint may lie outside the model frame (a raised hand above the crop), but not this far outside.
POSE_MARGIN = 0.5


# ----------------------------------------------------------------------------------------------- weights


class CheckpointError(ValueError):
    """Weights that do not fit the model asked for, or cannot be read: the message is one line."""


def _latest_step_dir(ckpt_dir: pathlib.Path) -> pathlib.Path | None:
    steps = [p for p in ckpt_dir.iterdir() if p.name.isdigit() and (p / "state").is_dir()]
    return max(steps, key=lambda p: int(p.name)) if steps else None


def _checkpoint_dir(checkpoint: str | os.PathLike) -> pathlib.Path:
    path = pathlib.Path(checkpoint).expanduser().absolute()
    if not path.is_dir():
        raise FileNotFoundError(
            f"checkpoint {path} is not a directory: give a training workdir (python -m ptx.main --workdir) "
            "or a directory written by `python -m ptx.convert <method> ... --out DIR`"
        )
    return path


def load_variables(checkpoint: str | os.PathLike) -> tuple[dict[str, Any], pathlib.Path]:
    """``{player: variables}`` (numpy) from a ``ptx.convert`` output, a training workdir (its latest step) or
    any Orbax directory of ``{player: params}``; also where they were read from."""
    from ptx.convert import common as convert_common
    from ptx.train import checkpoint as ckpt_lib

    path = _checkpoint_dir(checkpoint)
    if convert_common.read_convert_meta(path) is not None:
        return convert_common.read_converted(path)[2], path
    ckpt_dir = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    step = _latest_step_dir(ckpt_dir)
    if step is not None:
        state = ckpt_lib.load_params(step / "state")
        variables = {
            p: {"params": state["params"][p], **state.get("state", {}).get(p, {})} for p in state["params"]
        }
        return variables, step
    try:
        tree = ckpt_lib.load_params(path)
    except (FileNotFoundError, ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(
            f"{path}: holds no weights ptx can read ({type(e).__name__}); expected a training workdir, a "
            "python -m ptx.convert output or an Orbax checkpoint of {player: params}"
        ) from e
    if not isinstance(tree, dict) or not all(isinstance(v, dict) for v in tree.values()):
        raise CheckpointError(f"{path}: is not an Orbax checkpoint of {{player: params}}; expected one")
    return {p: (v if "params" in v else {"params": v}) for p, v in tree.items()}, path


def _config_value(value: Any) -> Any:
    """A ``config.json`` value as the run's ConfigDict held it: dicts as ConfigDicts (``config.stages[i].name``
    works), lists of them as lists of locked ones, other lists as tuples (image sizes, player names)."""
    import ml_collections

    if isinstance(value, dict):
        return ml_collections.ConfigDict({k: _config_value(v) for k, v in value.items()})
    if isinstance(value, list):
        items = [_config_value(v) for v in value]
        if any(isinstance(v, ml_collections.ConfigDict) for v in items):
            return [v.lock() if isinstance(v, ml_collections.ConfigDict) else v for v in items]  # as stage()
        return tuple(items)
    return value


def run_config(workdir: str | os.PathLike):
    """The resolved config a training run wrote as ``workdir/config.json``, as the locked ConfigDict the run
    used; None if there is none."""
    import json

    file = pathlib.Path(workdir) / "config.json"
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{file}: is not readable JSON ({e}); expected the config a run wrote") from e
    if not isinstance(data, dict) or "method" not in data:
        raise CheckpointError(f"{file}: has no 'method'; expected the config a ptx training run wrote")
    return _config_value(data).lock()


def _with_converted_model(config, meta: dict[str, Any], model: str):
    """``config`` whose ``model`` is the converted weights' recorded Config; the fields the weights cannot
    tell (``fields_not_in_weights``) stay as ``config`` sets them."""
    import ml_collections

    if config.method != meta["method"]:
        same = [m for m in list_models() if _config_method(m) == meta["method"]]
        raise CheckpointError(
            f"holds converted {meta['method']} weights but model {model!r} is a {config.method} config; "
            f"expected model= one of {same}"
        )
    named = config.model.to_dict()
    merged = dict(meta["model"])
    merged.update({f: named[f] for f in meta["fields_not_in_weights"] if f in named})
    config = config.copy_and_resolve_references()
    with config.unlocked():
        config.model = ml_collections.ConfigDict(merged)
    return config.lock()


def _config_method(model: str) -> str | None:
    try:
        return model_config(model).get("method")
    except Exception:  # a config that cannot build its paper variant is no candidate
        return None


def read_checkpoint(model: str, checkpoint: str | os.PathLike, variant: str = "paper"):
    """(config, ``{player: variables}``, where) for ``load``: a ``ptx.convert`` output builds ``model``'s config
    with the recorded model Config, a training workdir brings the config it ran with, a bare Orbax directory
    takes ``model``'s config as it is."""
    from ptx.convert import common as convert_common

    path = _checkpoint_dir(checkpoint)
    try:
        meta = convert_common.read_convert_meta(path)
    except ValueError as e:
        raise CheckpointError(str(e)) from e
    if meta is not None:
        try:
            config = _with_converted_model(model_config(model, variant), meta, model)
        except CheckpointError as e:
            raise CheckpointError(f"{path}: {e}") from e
    else:
        config = run_config(path) or model_config(model, variant)
    variables, where = load_variables(path)
    return config, variables, where


# ----------------------------------------------------------------------------------------------- sampler


def as_key(rng: RngLike) -> Any:
    """``rng`` as a JAX key: an int seeds ``jax.random.key``, a key (typed or raw uint32) passes through, None
    stays None (the method's fixed default, so sampling without ``rng`` repeats itself as before)."""
    if rng is None:
        return None
    import jax

    if isinstance(rng, int | np.integer) and not isinstance(rng, bool):
        return jax.random.key(int(rng))
    if isinstance(rng, jax.Array | np.ndarray) and (
        jax.dtypes.issubdtype(rng.dtype, jax.dtypes.prng_key) or rng.dtype == np.uint32
    ):
        return rng
    raise TypeError(f"rng={rng!r}: expected an int seed or a jax.random key")


def _chunk_key(key: Any, index: int) -> Any:
    """The key of the ``index``-th chunk of a request: chunks draw different noise, calls with one key the same."""
    if key is None:
        return None
    import jax

    return jax.random.fold_in(key, index)


@dataclasses.dataclass
class Sampler:
    """A method, its variables and jitted prediction, reused across calls (no recompilation per call)."""

    method: Any
    variables: dict[str, Any]
    image_size: tuple[int, int]
    frame_aspect: float
    batch_size: int = 8

    def __post_init__(self):
        import jax

        # ``k`` None compiles the method's keyless default (SCA-GAN: key 0); a key compiles once more.
        self._predict = jax.jit(lambda v, b, k: self.method.predict(v, b, k)["image"])
        # Methods that can encode a source once (GFLA) render pose sequences without re-encoding it.
        encodes = ENCODE_SOURCE in self.method.capabilities
        self._encode = jax.jit(self.method.encode_source) if encodes else None
        self._from_source = (
            jax.jit(lambda v, f, b: self.method.predict_from_source(v, f, b)["image"])
            if self._encode
            else None
        )
        self.compiles = 0

    # -- arrays already in the model frame -------------------------------------------------------------

    def generate(
        self,
        source_images: np.ndarray,
        source_keypoints: np.ndarray,
        target_keypoints: np.ndarray,
        source_parsing: np.ndarray | None = None,
        *,
        rng: RngLike = None,
    ) -> np.ndarray:
        """uint8 (N, h, w, 3) in the model frame -> uint8 (N, h, w, 3); runs in fixed-size chunks (one compile).
        ``source_parsing`` (N, h, w) class ids, for methods that ask for it (``Method.sample_fields``).
        ``rng`` (int seed or jax key) feeds methods that draw noise at test time (SCA-GAN's z): the same rng
        gives the same images; None keeps the method's fixed default."""
        key = as_key(rng)
        return self._chunked(
            lambda b, i: self._run(b, key=_chunk_key(key, i)),
            source_images,
            source_keypoints,
            target_keypoints,
            source_parsing,
        )

    def _chunked(
        self, run, source_images, source_keypoints, target_keypoints, source_parsing=None
    ) -> np.ndarray:
        """``run(batch, chunk_index)`` over fixed-size chunks of the request."""
        n = len(source_images)
        outs = []
        for index, start in enumerate(range(0, n, self.batch_size)):
            chunk = slice(start, min(start + self.batch_size, n))
            parsing = None if source_parsing is None else source_parsing[chunk]
            batch = self._batch(
                source_images[chunk], source_keypoints[chunk], target_keypoints[chunk], parsing
            )
            outs.append(np.asarray(run(batch, index))[: chunk.stop - chunk.start])
        return np.concatenate(outs) if outs else np.zeros((0, *self.image_size, 3), np.uint8)

    def generate_poses(
        self,
        source_image: np.ndarray,
        source_keypoints: np.ndarray,
        target_keypoints: np.ndarray,
        source_parsing: np.ndarray | None = None,
        *,
        rng: RngLike = None,
    ) -> np.ndarray:
        """One source (h, w, 3) in many poses (N, 18, 2): the source is encoded once when the method can
        (those methods are deterministic and ignore ``rng``)."""
        n = len(target_keypoints)
        images = np.repeat(source_image[None], n, 0)
        kps = np.repeat(np.asarray(source_keypoints)[None], n, 0)
        parsing = None if source_parsing is None else np.repeat(source_parsing[None], n, 0)
        if self._encode is None:
            return self.generate(images, kps, target_keypoints, parsing, rng=rng)
        one = self._batch(images[:1], kps[:1], target_keypoints[:1], None if parsing is None else parsing[:1])
        feats = self._encode(self.variables, one)
        return self._chunked(lambda b, _: self._run(b, feats), images, kps, target_keypoints, parsing)

    def _pair(self, image, src_kps, tgt_kps, parsing) -> dict[str, np.ndarray]:
        """One pair as the input pipeline makes it: the fields the method asks for, then its host transform."""
        pair = {
            "source_image": np.asarray(image, np.uint8),
            "target_image": np.zeros_like(image, np.uint8),
            "source_keypoints": np.asarray(src_kps, np.float32),
            "target_keypoints": np.asarray(tgt_kps, np.float32),
        }
        fields = set(self.method.sample_fields)
        if SOURCE_EDGE in fields:
            from ptx.data.edges import xdog_edges

            pair["source_edge"] = xdog_edges(pair["source_image"])
            pair["target_edge"] = np.zeros_like(pair["source_edge"])
        if SOURCE_PARSING in fields:
            if parsing is None:
                raise ValueError(
                    f"{type(self.method).__name__} needs the source photo's parsing map (LIP class ids): pass "
                    "src_parsing= a PNG or an H x W array of the photo's size"
                )
            pair["source_parsing"] = np.asarray(parsing, np.uint8)
            pair["target_parsing"] = np.zeros_like(pair["source_parsing"])
        transform = self.method.host_transform("test")
        if transform is not None:
            from ptx.data.pipeline import apply_host_transform

            pair = apply_host_transform(transform, pair)
        return pair

    def _batch(self, src, src_kps, tgt_kps, parsing=None) -> dict[str, np.ndarray]:
        # Batch 1 has its own (latency) executable; larger requests are padded to ``batch_size``.
        m = len(src)
        pad = 0 if m == 1 else self.batch_size - m
        pairs = [
            self._pair(src[i], src_kps[i], tgt_kps[i], None if parsing is None else parsing[i])
            for i in range(m)
        ]
        pairs += [pairs[-1]] * pad
        return {k: np.stack([p[k] for p in pairs]) for k in pairs[0]}

    def _run(self, batch: dict[str, np.ndarray], feats: Any = None, key: Any = None) -> np.ndarray:
        import jax.numpy as jnp

        fn = self._predict if feats is None else self._from_source
        before = fn._cache_size()
        image = fn(self.variables, batch, key) if feats is None else fn(self.variables, feats, batch)
        self.compiles += fn._cache_size() - before
        return np.asarray(jnp.clip(jnp.round((image + 1.0) * 127.5), 0, 255).astype(jnp.uint8))

    # -- photos and poses as people have them ----------------------------------------------------------

    def prepare_source(self, src: ImageLike, src_pose: Any) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray]:
        """Reads and frames the source photo: (model-frame image, its keypoints, framing, the photo).
        ``src_pose="auto"`` estimates the keypoints (``ptx.estimate_pose``)."""
        photo = read_image(src)
        if src_pose is None:
            raise ValueError(
                "src_pose is required: the keypoints of the source photo (18x2 array (y, x), an OpenPose JSON "
                "file or an annotation CSV row), or 'auto' to estimate them (needs the OpenPose weights)"
            )
        if isinstance(src_pose, str) and src_pose == "auto":
            kps = _estimate(photo, "src_pose='auto'")
        else:
            kps = poses_lib.read_pose(src_pose, frame=photo.shape[:2], what="src_pose")
        image, model_kps, fr = framing_lib.fit_to_frame(photo, kps, self.image_size, aspect=self.frame_aspect)
        return image, model_kps, fr, photo

    def frame_parsing(self, src_parsing: Any, fr, photo: np.ndarray) -> np.ndarray | None:
        """The source photo's parsing map cut and resized as the photo was (nearest neighbour); None if none."""
        if src_parsing is None:
            return None
        labels = read_label_map(src_parsing)
        if labels.shape != photo.shape[:2]:
            labels = np.asarray(Image.fromarray(labels).resize(photo.shape[1::-1], Image.Resampling.NEAREST))
        return framing_lib.fit_map_to_frame(labels, fr)

    def target_keypoints(self, pose: Any, fr, *, pose_frame: str) -> np.ndarray:
        """A target pose in the photo's frame (``pose_frame="photo"``), already in the model frame, or a photo of
        a person in the target pose (its keypoints estimated and framed on their own)."""
        if _is_photo(pose):
            other = read_image(pose, what="pose")
            kps = _estimate(other, "pose (a photo)")
            _, model_kps, _ = framing_lib.fit_to_frame(other, kps, self.image_size, aspect=self.frame_aspect)
            return model_kps
        if pose_frame == "model":
            return poses_lib.read_pose(pose, frame=self.image_size, what="pose")
        kps = fr.to_model(poses_lib.read_pose(pose, what="pose"))
        present = np.all(kps >= 0, axis=-1) if np.ndim(kps) == 2 else None
        h, w = self.image_size
        if present is not None:
            far = present & (
                (kps[:, 0] < -POSE_MARGIN * h)
                | (kps[:, 0] > (1 + POSE_MARGIN) * h)
                | (kps[:, 1] < -POSE_MARGIN * w)
                | (kps[:, 1] > (1 + POSE_MARGIN) * w)
            )
            if far.any():
                raise ValueError(
                    f"pose: joints {np.flatnonzero(far).tolist()} lie far outside the person's frame in the source "
                    "photo; expected target keypoints in the source photo's pixels (or pose_frame='model')"
                )
        return kps

    def __call__(
        self,
        src: ImageLike,
        pose: Any,
        *,
        src_pose: Any = None,
        output: str = "model",
        pose_frame: str = "photo",
        src_parsing: Any = None,
        rng: RngLike = None,
    ) -> np.ndarray:
        """The person of ``src`` in ``pose`` (keypoints, or a photo of someone in that pose); ``output="photo"``
        pastes the result back into the photo. ``rng``: int seed or jax key for stochastic methods (see
        :meth:`generate`)."""
        image, src_kps, fr, photo = self.prepare_source(src, src_pose)
        parsing = self.frame_parsing(src_parsing, fr, photo)
        tgt = self.target_keypoints(pose, fr, pose_frame=pose_frame)
        out = self.generate(
            image[None], src_kps[None], tgt[None], None if parsing is None else parsing[None], rng=rng
        )[0]
        return framing_lib.paste_back(out, fr, photo) if output == "photo" else out

    def animate(
        self,
        src: ImageLike,
        poses: Sequence[Any],
        *,
        src_pose: Any = None,
        path: str | None = None,
        fps: float = 10.0,
        pose_frame: str = "photo",
        src_parsing: Any = None,
        rng: RngLike = None,
    ) -> list[np.ndarray]:
        """One frame per pose (source read, framed and encoded once, frames in batches); writes ``path``
        (.gif, or .mp4 with imageio-ffmpeg) when given; ``rng`` as in :meth:`generate`."""
        image, src_kps, fr, photo = self.prepare_source(src, src_pose)
        parsing = self.frame_parsing(src_parsing, fr, photo)
        targets = np.stack([self.target_keypoints(p, fr, pose_frame=pose_frame) for p in poses])
        frames = self.generate_poses(image, src_kps, targets, parsing, rng=rng)
        if path is not None:
            from ptx.data.video import write_animation

            write_animation(list(frames), path, fps=fps)
        return list(frames)


def _dummy_batch(size: tuple[int, int], batch: int = 1, fields: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """A batch to trace ``init`` with; ``fields``: the method's ``sample_fields`` (``source_edge``,
    ``source_parsing``), given as (B, H, W) uint8 maps for the source and the target."""
    # Every joint present, spread over the frame (host transforms such as Def-GAN's need a whole body).
    j = np.arange(18, dtype=np.float32)
    one = np.stack([(0.1 + 0.8 * j / 17) * size[0], (0.5 + 0.3 * np.sin(j)) * size[1]], -1)
    kps = np.repeat(one[None], batch, 0).astype(np.float32)
    img = np.zeros((batch, *size, 3), np.uint8)
    out = {"source_image": img, "target_image": img, "source_keypoints": kps, "target_keypoints": kps}
    for field in fields:
        out[field] = out[field.replace("source_", "target_", 1)] = np.zeros((batch, *size), np.uint8)
    return out


def _init_shapes(method, size: tuple[int, int], stage: str) -> Any:
    """The method's variables at ``stage`` as shape structs (``jax.eval_shape``: nothing is compiled)."""
    import jax

    batch = _dummy_batch(size, fields=method.sample_fields)
    transform = method.host_transform("test")
    if transform is not None:  # per-pair fields the model's inputs need (Def-GAN's warps and masks)
        from ptx.data.pipeline import apply_host_transform

        pair = apply_host_transform(transform, {k: v[0] for k, v in batch.items()})
        batch = {k: np.asarray(v)[None] for k, v in pair.items()}
    return jax.eval_shape(lambda k: method.init(k, batch, stage), jax.random.key(0))


# The frames the datasets' images were cut to (height, width); models may stretch them (GFLA: 256x256).
DATASET_FRAMES = {"market": (128, 64), "fashion": (256, 176)}


def _frame_aspect(config) -> float:
    """Height/width of the frame the training images were cut to (before any stretch to the model size):
    ``config.data.frame_size`` when set, else the dataset family's frame, else the model size."""
    frame = config.data.get("frame_size", None)
    if frame is None:
        names = f"{config.data.get('name', '')} {config.data.get('builder_config', '')}"
        frame = next((f for key, f in DATASET_FRAMES.items() if key in names), config.data.image_size)
    return float(frame[0]) / float(frame[1])


def _random_variables(shapes: Any, seed: int = 0) -> Any:
    """Untrained weights drawn on the host from the variables' shapes (norm scales 1, biases and running means
    0, variances 1, other leaves N(0, 0.02^2)): a random sampler without compiling the model's initialisers,
    which XLA on CPU takes minutes for."""
    import jax

    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        if name in ("scale", "var"):
            return np.ones(leaf.shape, leaf.dtype)
        if name in ("bias", "mean"):
            return np.zeros(leaf.shape, leaf.dtype)
        return (rng.standard_normal(leaf.shape) * 0.02).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def _generator_player(method) -> str:
    """The player whose variables prediction uses (``Method.generator``)."""
    return getattr(method, "generator", "gen")


def variable_mismatches(expected: dict[str, Any], got: dict[str, Any], generator: str) -> list[str]:
    """How ``got`` ({player: {collection: tree}}) differs from the model's ``expected`` variables (arrays or
    shape structs), as ``player/collection/path`` lines: shape differences first, then missing and unexpected
    entries. Collections the model lacks are not compared (training-only state); the generator must hold
    every collection of its model."""
    from ptx.convert.common import flatten

    shapes, missing, extra = [], [], []
    for player in sorted(got, key=lambda p: (p != generator, p)):  # the generator's problems first
        if player not in expected:
            extra.append(f"{player} (the model's players: {', '.join(sorted(expected))})")
            continue
        for coll in sorted(set(got[player]) & set(expected[player])):
            want = {p: tuple(v.shape) for p, v in flatten(expected[player][coll]).items()}
            have = {p: tuple(np.shape(v)) for p, v in flatten(got[player][coll]).items()}
            for p in sorted(set(want) | set(have)):
                name = "/".join((player, coll, *p))
                if p not in have:
                    missing.append(name)
                elif p not in want:
                    extra.append(name)
                elif have[p] != want[p]:
                    shapes.append(f"{name} is {have[p]} in the checkpoint, {want[p]} in the model")
    if generator not in got:
        missing.append(f"{generator} (the generator)")
    else:
        missing += [
            f"{generator}/{c}" for c in sorted(set(expected.get(generator, {})) - set(got[generator]))
        ]
    return shapes + [f"missing {m}" for m in missing] + [f"unexpected {e}" for e in extra]


def fit_variables(method, config, variables: dict[str, Any], source: str) -> dict[str, Any]:
    """``variables`` restricted to the collections the model has, if they fit the model of one of the
    config's stages (e.g. GFLA's stage-1 flow net or its full generator); else a one-line CheckpointError
    naming ``source`` and the mismatching paths and shapes. Shapes come from ``jax.eval_shape`` of the
    method's init: nothing is compiled."""

    size = tuple(int(s) for s in config.data.image_size)
    stages = [s.name for s in config.get("stages", ())] or ["full"]
    generator = _generator_player(method)
    against_last: list[str] = []  # the problems against the complete model are the ones reported
    for stage in reversed(stages):  # the last stage first: what a finished run or a conversion holds
        expected = _init_shapes(method, size, stage)
        problems = variable_mismatches(expected, variables, generator)
        if not problems:
            return {p: {c: t for c, t in v.items() if c in expected[p]} for p, v in variables.items()}
        against_last = against_last or problems
    more = f"; ... ({len(against_last) - 3} more)" if len(against_last) > 3 else ""
    raise CheckpointError(
        f"{source}: does not fit the {config.method} model of this config: {'; '.join(against_last[:3])}{more}; "
        "expected weights of the config's widths (a python -m ptx.convert output records its own)"
    )


def sampler_for(
    config, variables: dict[str, Any] | None, *, batch_size: int = 8, source: str = "checkpoint"
) -> Sampler:
    """A sampler of ``config``'s method with ``variables`` (None: fresh random init, for smoke tests); weights
    that do not fit the method's model raise a one-line CheckpointError naming ``source``."""

    from ptx import registry

    method = registry.get_method(config.method).build(config)
    size = tuple(int(s) for s in config.data.image_size)
    if variables is None:
        stage = config.stages[-1].name if config.get("stages") else "full"
        variables = _random_variables(_init_shapes(method, size, stage))
    else:
        variables = fit_variables(method, config, variables, source)
    return Sampler(method, variables, size, _frame_aspect(config), batch_size=batch_size)


def load(
    model: str = "gfla_fashion",
    checkpoint: str | os.PathLike | None = None,
    *,
    variant: str = "paper",
    batch_size: int = 8,
) -> Sampler:
    """A reusable sampler. ``checkpoint``: a ``ptx.convert`` output of any method (the model is built from the
    Config it records, so weights of other widths than ``model``'s config load as they are), a training workdir
    (its own config and latest step), ``"random"`` (untrained, for smoke tests), or None to look in
    ``$PTX_CHECKPOINTS/<model>``."""
    if checkpoint is None:
        root = os.environ.get(CHECKPOINT_ENV)
        candidate = pathlib.Path(root) / model if root else None
        if candidate is None or not candidate.is_dir():
            raise FileNotFoundError(
                f"no weights for {model!r}: pass checkpoint= a training workdir or a directory written by "
                f"`python -m ptx.convert {model.split('_')[0]} --generator latest_net_G.pth --out DIR`, or set "
                f"${CHECKPOINT_ENV} to a folder holding {model}/ (checkpoint='random' samples untrained weights)"
            )
        checkpoint = candidate
    if str(checkpoint) == "random":
        logging.warning("ptx.load(%s): untrained random weights (checkpoint='random')", model)
        return sampler_for(model_config(model, variant), None, batch_size=batch_size)
    config, variables, where = read_checkpoint(model, checkpoint, variant)
    logging.info("ptx.load(%s): weights from %s", model, where)
    return sampler_for(config, variables, batch_size=batch_size, source=str(where))


@functools.lru_cache(maxsize=4)
def _cached_sampler(model: str, checkpoint: str | None, variant: str) -> Sampler:
    return load(model, checkpoint, variant=variant)


def sample(
    src: ImageLike,
    pose: Any,
    *,
    model: str = "gfla_fashion",
    checkpoint: str | os.PathLike | None = None,
    src_pose: Any = None,
    output: str = "model",
    variant: str = "paper",
    src_parsing: Any = None,
    rng: RngLike = None,
) -> np.ndarray:
    """The person of ``src`` rendered in ``pose`` as a uint8 array (samplers are cached per model, checkpoint
    and config variant; see :func:`load`). ``src_pose="auto"`` estimates the source keypoints; ``pose`` may be
    keypoints or a photo of someone in the target pose; ``src_parsing`` for methods that need it (CASD).
    ``rng`` (int seed or ``jax.random`` key) fixes the noise of stochastic methods (SCA-GAN's z): the same rng
    gives the same image, another rng another sample; None keeps the method's fixed default key."""
    sampler = _cached_sampler(model, None if checkpoint is None else str(checkpoint), variant)
    return sampler(src, pose, src_pose=src_pose, output=output, src_parsing=src_parsing, rng=rng)


def _is_photo(pose: Any) -> bool:
    """A pose given as a picture of a person (image file, PIL image, or H x W x 3 array) rather than keypoints."""
    if isinstance(pose, Image.Image):
        return True
    if isinstance(pose, str | os.PathLike):
        return pathlib.Path(pose).suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif")
    return isinstance(pose, np.ndarray) and pose.ndim == 3 and pose.shape[-1] in (3, 4)


def _estimate(photo: np.ndarray, what: str) -> np.ndarray:
    """Keypoints of the main person in ``photo`` with ptx's OpenPose estimator (weights from
    ``$PTX_OPENPOSE_WEIGHTS``); one clear error when nobody is found."""
    from ptx.pose.estimator import estimate_pose

    kps = estimate_pose(photo)
    if int(np.sum(np.all(kps >= 0, axis=-1))) < 2:
        raise ValueError(f"{what}: the pose estimator found no person (fewer than 2 joints) in the photo")
    return kps


def _sidecar_pose(image_path: pathlib.Path) -> pathlib.Path | None:
    """``photo.jpg`` -> ``photo.json`` / ``photo_keypoints.json`` (OpenPose's name) / ``photo.csv`` if present."""
    for name in (f"{image_path.stem}.json", f"{image_path.stem}_keypoints.json", f"{image_path.stem}.csv"):
        if (image_path.parent / name).exists():
            return image_path.parent / name
    return None


def sample_cli(
    config,
    workdir,
    *,
    source: str | None,
    pose: str | None,
    output: str | None,
    source_pose: str | None = None,
) -> pathlib.Path:
    """``python -m ptx.main --mode sample``: the run's latest weights, one source photo, one target pose."""
    if not (source and pose and output):
        raise ValueError("--mode sample needs --source photo, --pose target pose file and --output path")
    source_pose = source_pose or _sidecar_pose(pathlib.Path(source))
    if source_pose is None:
        raise FileNotFoundError(
            f"no keypoints for {source}: put them beside it as {pathlib.Path(source).stem}.json (OpenPose) "
            "or .csv (one annotation row)"
        )
    variables, where = load_variables(workdir)
    sampler = sampler_for(config, variables, source=str(where))
    image = sampler(source, pose, src_pose=source_pose)
    out = pathlib.Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(out)
    return out
