"""Inference for people: ``ptx.sample(src, pose)`` and reusable, jitted samplers from ``ptx.load``.

A sampler owns a method, its variables and one compiled predict function per batch shape. Photos of any size are
fitted to the model's frame around the person (``ptx.data.framing``); poses come as arrays, OpenPose JSON files
or rows of the originals' annotation CSVs (``ptx.data.poses``). Weights come from a training workdir, a
directory written by ``python -m ptx.convert``, or ``"random"`` (smoke tests only).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import os
import pathlib
import pkgutil
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ptx.data import framing as framing_lib
from ptx.data import poses as poses_lib
from ptx.methods.protocol import ENCODE_SOURCE

ImageLike = Any  # str | os.PathLike | PIL.Image.Image | np.ndarray
CHECKPOINT_ENV = "PTX_CHECKPOINTS"


def list_models() -> list[str]:
    """Config names usable as ``model=`` (``configs/<name>.py`` files that define a method)."""
    import configs

    names = []
    for info in pkgutil.iter_modules(configs.__path__):
        if info.name != "common" and not info.name.startswith("_"):
            names.append(info.name)
    return sorted(names)


def model_config(model: str, variant: str = "paper"):
    """The locked ConfigDict of ``configs/<model>.py:<variant>``."""
    if model not in list_models():
        raise ValueError(f"unknown model {model!r}; available: {', '.join(list_models())}")
    return importlib.import_module(f"configs.{model}").get_config(variant)


def read_image(src: ImageLike, *, what: str = "src") -> np.ndarray:
    """A path, PIL image or array -> uint8 HxWx3 RGB."""
    if isinstance(src, str | os.PathLike):
        path = pathlib.Path(src)
        if not path.exists():
            raise FileNotFoundError(f"{what}: image file {path} does not exist")
        try:
            with Image.open(path) as im:
                src = im.convert("RGB")
        except OSError as e:
            raise ValueError(f"{what}: {path} is not a readable image ({e})") from e
    if isinstance(src, Image.Image):
        src = np.asarray(src.convert("RGB"))
    arr = np.asarray(src)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"{what}: expected an HxWx3 image, got an array of shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.min() >= 0 and arr.max() <= 1:
            arr = arr * 255.0
        arr = np.clip(np.round(arr), 0, 255).astype(np.uint8)
    return arr


# ----------------------------------------------------------------------------------------------- weights


def _latest_step_dir(ckpt_dir: pathlib.Path) -> pathlib.Path | None:
    steps = [p for p in ckpt_dir.iterdir() if p.name.isdigit() and (p / "state").is_dir()]
    return max(steps, key=lambda p: int(p.name)) if steps else None


def _restore_numpy(path: pathlib.Path) -> dict[str, Any]:
    import jax
    import orbax.checkpoint as ocp

    with ocp.PyTreeCheckpointer() as ckptr:
        meta = ckptr.metadata(path)
        tree = meta.item_metadata.tree if hasattr(meta, "item_metadata") else meta
        args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
        return ckptr.restore(path, args=ocp.args.PyTreeRestore(restore_args=args))


def load_variables(checkpoint: str | os.PathLike) -> tuple[dict[str, Any], pathlib.Path]:
    """``{player: variables}`` from a training workdir (latest step) or a ``ptx.convert`` output directory."""
    path = pathlib.Path(checkpoint).expanduser().absolute()
    if not path.is_dir():
        raise FileNotFoundError(
            f"checkpoint {path} is not a directory: give a training workdir (python -m ptx.main --workdir) "
            "or a directory written by `python -m ptx.convert <method> ... --out DIR`"
        )
    ckpt_dir = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    step = _latest_step_dir(ckpt_dir)
    if step is not None:
        state = _restore_numpy(step / "state")
        variables = {
            p: {"params": state["params"][p], **state.get("state", {}).get(p, {})} for p in state["params"]
        }
        return variables, step
    tree = _restore_numpy(path)
    variables = {p: (v if "params" in v else {"params": v}) for p, v in tree.items()}
    return variables, path


def _workdir_config(path: pathlib.Path):
    """The resolved config a training run wrote into its workdir, if any."""
    import ml_collections

    for name in ("config.json",):
        f = path / name
        if f.exists():
            import json

            return ml_collections.ConfigDict(json.loads(f.read_text()))
    return None


# ----------------------------------------------------------------------------------------------- sampler


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

        # Only what prediction needs goes to the device (training-only collections such as VGG stay behind).
        self.variables = {
            p: {k: v for k, v in var.items() if k != "vgg"} for p, var in self.variables.items()
        }
        self._predict = jax.jit(lambda v, b: self.method.predict(v, b)["image"])
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
        self, source_images: np.ndarray, source_keypoints: np.ndarray, target_keypoints: np.ndarray
    ) -> np.ndarray:
        """uint8 (N, h, w, 3) in the model frame -> uint8 (N, h, w, 3); runs in fixed-size chunks (one compile)."""
        return self._chunked(self._run, source_images, source_keypoints, target_keypoints)

    def _chunked(self, run, source_images, source_keypoints, target_keypoints) -> np.ndarray:
        n = len(source_images)
        outs = []
        for start in range(0, n, self.batch_size):
            chunk = slice(start, min(start + self.batch_size, n))
            batch = self._batch(source_images[chunk], source_keypoints[chunk], target_keypoints[chunk])
            outs.append(np.asarray(run(batch))[: chunk.stop - chunk.start])
        return np.concatenate(outs) if outs else np.zeros((0, *self.image_size, 3), np.uint8)

    def generate_poses(
        self, source_image: np.ndarray, source_keypoints: np.ndarray, target_keypoints: np.ndarray
    ) -> np.ndarray:
        """One source (h, w, 3) in many poses (N, 18, 2): the source is encoded once when the method can."""
        n = len(target_keypoints)
        images = np.repeat(source_image[None], n, 0)
        kps = np.repeat(np.asarray(source_keypoints)[None], n, 0)
        if self._encode is None:
            return self.generate(images, kps, target_keypoints)
        one = self._batch(images[:1], kps[:1], target_keypoints[:1])
        feats = self._encode(self.variables, one)
        return self._chunked(lambda b: self._run(b, feats), images, kps, target_keypoints)

    def _batch(self, src, src_kps, tgt_kps) -> dict[str, np.ndarray]:
        # Batch 1 has its own (latency) executable; larger requests are padded to ``batch_size``.
        m = len(src)
        pad = 0 if m == 1 else self.batch_size - m

        def padded(a):
            return np.concatenate([a, np.repeat(a[-1:], pad, 0)]) if pad else a

        src = padded(np.asarray(src, np.uint8))
        return {
            "source_image": src,
            "target_image": np.zeros_like(src),
            "source_keypoints": padded(np.asarray(src_kps, np.float32)),
            "target_keypoints": padded(np.asarray(tgt_kps, np.float32)),
        }

    def _run(self, batch: dict[str, np.ndarray], feats: Any = None) -> np.ndarray:
        import jax.numpy as jnp

        fn = self._predict if feats is None else self._from_source
        before = fn._cache_size()
        image = fn(self.variables, batch) if feats is None else fn(self.variables, feats, batch)
        self.compiles += fn._cache_size() - before
        return np.asarray(jnp.clip(jnp.round((image + 1.0) * 127.5), 0, 255).astype(jnp.uint8))

    # -- photos and poses as people have them ----------------------------------------------------------

    def prepare_source(self, src: ImageLike, src_pose: Any) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray]:
        """Reads and frames the source photo: (model-frame image, its keypoints, framing, the photo)."""
        photo = read_image(src)
        if src_pose is None:
            raise ValueError(
                "src_pose is required: the keypoints of the source photo (18x2 array (y, x), an OpenPose JSON "
                "file or an annotation CSV row); ptx does not estimate poses"
            )
        kps = poses_lib.read_pose(src_pose, frame=photo.shape[:2], what="src_pose")
        image, model_kps, fr = framing_lib.fit_to_frame(photo, kps, self.image_size, aspect=self.frame_aspect)
        return image, model_kps, fr, photo

    def target_keypoints(self, pose: Any, fr, *, pose_frame: str) -> np.ndarray:
        """A target pose in the photo's frame (``pose_frame="photo"``) or already in the model frame."""
        if pose_frame == "model":
            return poses_lib.read_pose(pose, frame=self.image_size, what="pose")
        kps = poses_lib.read_pose(pose, what="pose")
        return fr.to_model(kps)

    def __call__(
        self,
        src: ImageLike,
        pose: Any,
        *,
        src_pose: Any = None,
        output: str = "model",
        pose_frame: str = "photo",
    ) -> np.ndarray:
        """The person of ``src`` in ``pose``; ``output="photo"`` pastes the result back into the photo."""
        image, src_kps, fr, photo = self.prepare_source(src, src_pose)
        tgt = self.target_keypoints(pose, fr, pose_frame=pose_frame)
        out = self.generate(image[None], src_kps[None], tgt[None])[0]
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
    ) -> list[np.ndarray]:
        """One frame per pose (source read, framed and encoded once, frames in batches); writes ``path``
        (.gif, or .mp4 with imageio-ffmpeg) when given."""
        image, src_kps, fr, _ = self.prepare_source(src, src_pose)
        targets = np.stack([self.target_keypoints(p, fr, pose_frame=pose_frame) for p in poses])
        frames = self.generate_poses(image, src_kps, targets)
        if path is not None:
            from ptx.data.video import write_animation

            write_animation(list(frames), path, fps=fps)
        return list(frames)


def _dummy_batch(size: tuple[int, int], batch: int = 1) -> dict[str, np.ndarray]:
    kps = np.full((batch, 18, 2), -1.0, np.float32)
    kps[:, :2] = [[size[0] * 0.2, size[1] * 0.5], [size[0] * 0.3, size[1] * 0.5]]
    img = np.zeros((batch, *size, 3), np.uint8)
    return {"source_image": img, "target_image": img, "source_keypoints": kps, "target_keypoints": kps}


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


def sampler_for(config, variables: dict[str, Any] | None, *, batch_size: int = 8) -> Sampler:
    """A sampler of ``config``'s method with ``variables`` (None: fresh random init, for smoke tests)."""
    import jax

    from ptx import registry

    if variables is None and config.get("vgg_fallback_random") is False:
        # Random weights for a smoke test: prediction needs no VGG file, so don't demand one at init.
        config = config.copy_and_resolve_references()
        with config.unlocked():
            config.vgg_fallback_random = True
    method = registry.get_method(config.method).build(config)
    size = tuple(int(s) for s in config.data.image_size)
    if variables is None:
        stage = config.stages[-1].name if config.get("stages") else "full"
        shapes = jax.eval_shape(lambda k: method.init(k, _dummy_batch(size), stage), jax.random.key(0))
        variables = _random_variables(shapes)
    return Sampler(method, variables, size, _frame_aspect(config), batch_size=batch_size)


def load(
    model: str = "gfla_fashion",
    checkpoint: str | os.PathLike | None = None,
    *,
    variant: str = "paper",
    batch_size: int = 8,
) -> Sampler:
    """A reusable sampler. ``checkpoint``: training workdir, ``ptx.convert`` output, ``"random"`` (untrained,
    for smoke tests), or None to look in ``$PTX_CHECKPOINTS/<model>``."""
    config = None
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
    if str(checkpoint) != "random":
        config = _workdir_config(pathlib.Path(checkpoint))
    if config is None:
        config = model_config(model, variant)
    if str(checkpoint) == "random":
        logging.warning("ptx.load(%s): untrained random weights (checkpoint='random')", model)
        return sampler_for(config, None, batch_size=batch_size)
    variables, where = load_variables(checkpoint)
    logging.info("ptx.load(%s): weights from %s", model, where)
    return sampler_for(config, variables, batch_size=batch_size)


@functools.lru_cache(maxsize=4)
def _cached_sampler(model: str, checkpoint: str | None) -> Sampler:
    return load(model, checkpoint)


def sample(
    src: ImageLike,
    pose: Any,
    *,
    model: str = "gfla_fashion",
    checkpoint: str | os.PathLike | None = None,
    src_pose: Any = None,
    output: str = "model",
) -> np.ndarray:
    """The person of ``src`` rendered in ``pose`` as a uint8 array (samplers are cached per model/checkpoint)."""
    sampler = _cached_sampler(model, None if checkpoint is None else str(checkpoint))
    return sampler(src, pose, src_pose=src_pose, output=output)


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
    sampler = sampler_for(config, load_variables(workdir)[0])
    image = sampler(source, pose, src_pose=source_pose)
    out = pathlib.Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(out)
    return out
