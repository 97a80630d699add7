"""``estimate_pose(photo)``: COCO-18 body keypoints from a photo with the user's OpenPose weights.

Weights come from the file the user names, else ``$PTX_OPENPOSE_WEIGHTS``, else the usual places in the
working directory; they are converted once and cached (``$PTX_CACHE_DIR``, default ``~/.cache/ptx``, under
``openpose/``), so later runs skip the torch / h5 reading. The network runs jitted, once per size bucket
(image sizes rounded up to ``bucket`` pixels, the rest masked: see ``ptx.models.openpose.network``), and the maps go
through the chosen reference pipeline (``ptx.models.openpose.pipeline``) and the post-processing (``ptx.models.openpose.postprocess``).

Modes: ``"dataset"`` (default) reproduces the scripts that made the PATN / Def-GAN annotation CSVs, the
keypoints the pose-transfer models were trained on; ``"openpose"`` reproduces pytorch-openpose / ControlNet.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import pathlib
from typing import Any

import numpy as np

from ptx.models.openpose import pipeline, postprocess

WEIGHTS_ENV = "PTX_OPENPOSE_WEIGHTS"
CACHE_ENV = "PTX_CACHE_DIR"
# Where the originals' READMEs and scripts put the files, relative to the working directory.
USUAL_PLACES = (
    "body_pose_model.pth",
    "model/body_pose_model.pth",
    "annotator/ckpts/body_pose_model.pth",
    "pose_estimator.h5",
)
WHERE_USERS_HAVE_IT = (
    "body_pose_model.pth sits at model/ in pytorch-openpose, annotator/ckpts/ in ControlNet "
    "(HF lllyasviel/Annotators); pose_estimator.h5 is the PATN / Def-GAN README download"
)


def find_weights(weights: str | os.PathLike | None = None) -> pathlib.Path:
    """The weights file (or a ``python -m ptx.convert openpose`` output folder): ``weights``, else
    ``$PTX_OPENPOSE_WEIGHTS``, else the first of :data:`USUAL_PLACES` that exists. A missing file raises FileNotFoundError with one line naming it and where it usually is."""
    given = weights if weights is not None else os.environ.get(WEIGHTS_ENV)
    if given:
        path = pathlib.Path(given).expanduser()
        if not (path.is_file() or (path / "ptx_convert.json").is_file()):
            source = "" if weights is not None else f" (from ${WEIGHTS_ENV})"
            raise FileNotFoundError(f"OpenPose weights {path}{source} not found; {WHERE_USERS_HAVE_IT}")
        return path
    for place in USUAL_PLACES:
        if pathlib.Path(place).is_file():
            return pathlib.Path(place)
    raise FileNotFoundError(
        f"OpenPose weights not found: pass weights=PATH or set ${WEIGHTS_ENV} to body_pose_model.pth or "
        f"pose_estimator.h5; {WHERE_USERS_HAVE_IT}"
    )


def cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get(CACHE_ENV) or pathlib.Path.home() / ".cache" / "ptx") / "openpose"


def load_converted(weights: str | os.PathLike | None = None):
    """(Config, variables) of the weights file, converted on first use and cached on disk (keyed by the
    file's absolute path, size and modification time)."""
    from ptx.convert import openpose as convert_openpose

    path = find_weights(weights).resolve()
    if path.is_dir():  # already converted by ``python -m ptx.convert openpose --out DIR``
        cfg, players = convert_openpose.load(path)
        return cfg, players["body"]
    stat = path.stat()
    key = hashlib.sha1(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cached = cache_dir() / f"{path.stem}-{key}"
    if (cached / "ptx_convert.json").is_file():
        cfg, players = convert_openpose.load(cached)
    else:
        cfg, players = convert_openpose.convert({"body": convert_openpose.load_weights(path)})
        convert_openpose.save(cached, cfg, players)
    return cfg, players["body"]


@functools.cache
def _compiled_network(cfg):
    """One jitted forward per Config; jax caches one executable per input shape (= size bucket). Convolutions
    run in full float32 (no TF32 / bf16 passes on accelerators): the thresholds downstream are sharp."""
    import jax

    from ptx.models.openpose.network import BodyPoseNet

    def forward(variables, image, valid_hw=None):
        with jax.default_matmul_precision("highest"):
            return BodyPoseNet(cfg).apply(variables, image, valid_hw)

    return jax.jit(forward)


def read_photo(photo: Any) -> np.ndarray:
    """A path, PIL image or array -> uint8 (H, W, 3) RGB."""
    from ptx.data.photos import read_image

    return read_image(photo, what="photo")


class PoseEstimator:
    """A loaded network and pipeline: ``est(photo)`` -> (18, 2) ``(y, x)`` keypoints, ``est.all(photo)`` ->
    every person found, ``est.people(photo)`` -> the raw :class:`~ptx.models.openpose.postprocess.People`.

    ``scales`` overrides the mode's scale list; ``bucket`` rounds network input sizes up to a multiple of that
    many pixels so photos of similar sizes share one compiled program (None: compile per exact size). The
    final heatmap ReLU follows the mode (pytorch-openpose has it, the Keras model of the scripts does not).
    """

    def __init__(
        self,
        cfg,
        variables: dict,
        *,
        mode: str = "dataset",
        scales: tuple[float, ...] | None = None,
        bucket: int | None = 64,
    ):
        import jax

        self.mode = pipeline.check_mode(mode)
        self.scales = scales
        self.bucket = bucket
        self.cfg = dataclasses.replace(cfg, heatmap_relu=mode == "openpose")
        self.variables = jax.device_put(variables)
        self._apply = _compiled_network(self.cfg)

    @classmethod
    def from_file(cls, weights: str | os.PathLike | None = None, **kwargs) -> PoseEstimator:
        cfg, variables = load_converted(weights)
        return cls(cfg, variables, **kwargs)

    def network(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised (h, w, 3) BGR image -> (paf, heatmap) float32 at (h // 8, w // 8)."""
        h, w = image.shape[:2]
        if self.bucket:
            hb, wb = -(-h // self.bucket) * self.bucket, -(-w // self.bucket) * self.bucket
            x = np.zeros((1, hb, wb, image.shape[2]), np.float32)
            x[0, :h, :w] = image
            paf, heat = self._apply(self.variables, x, np.array([h, w], np.int32))
        else:
            paf, heat = self._apply(self.variables, image[None].astype(np.float32))
        oh, ow = h // pipeline.STRIDE, w // pipeline.STRIDE
        return np.asarray(paf)[0, :oh, :ow], np.asarray(heat)[0, :oh, :ow]

    def maps(self, photo: Any) -> tuple[np.ndarray, np.ndarray]:
        """Full-size float64 (heatmap (H, W, 19), paf (H, W, 38)) as the mode's reference averages them."""
        rgb = read_photo(photo)
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        inputs = pipeline.network_inputs(bgr, self.mode, self.scales)
        outputs = [self.network(item.image) for item in inputs]
        return pipeline.combine(outputs, inputs, rgb.shape[:2], self.mode)

    def people(self, photo: Any) -> postprocess.People:
        heat, paf = self.maps(photo)
        return postprocess.find_people(heat, paf)

    def __call__(self, photo: Any) -> np.ndarray:
        """float32 (18, 2) ``(y, x)`` of the person the dataset scripts keep (highest total score), -1 where
        missing (all -1 when nobody is found)."""
        return self.people(photo).best_keypoints().astype(np.float32)

    def all(self, photo: Any) -> list[np.ndarray]:
        """Every person's float32 (18, 2) ``(y, x)``, highest total score first (so ``all(p)[0] == est(p)``)."""
        found = self.people(photo)
        order = np.argsort(-found.subset[:, postprocess.NUM_JOINTS], kind="stable")
        return [found.keypoints(int(r)).astype(np.float32) for r in order]


@functools.cache
def _cached_estimator(path: str, stamp: int, mode: str, scales: tuple | None) -> PoseEstimator:
    return PoseEstimator.from_file(path, mode=mode, scales=scales)


def get_estimator(
    weights: str | os.PathLike | None = None, *, mode: str = "dataset", scales=None
) -> PoseEstimator:
    """A process-wide estimator per (weights file, mode, scales): weights load and compile once."""
    path = find_weights(weights).resolve()
    return _cached_estimator(
        str(path), path.stat().st_mtime_ns, pipeline.check_mode(mode), scales and tuple(scales)
    )


def estimate_pose(
    photo: Any, *, weights: str | os.PathLike | None = None, mode: str = "dataset", scales=None
) -> np.ndarray:
    """COCO-18 keypoints of the main person in ``photo`` (path, PIL image or RGB array): float32 (18, 2)
    ``(y, x)`` in the photo's pixels, -1 where a joint is missing. The person is the one the dataset scripts
    keep (highest total score). ``weights``: ``body_pose_model.pth`` or ``pose_estimator.h5`` (default
    ``$PTX_OPENPOSE_WEIGHTS``); ``mode``: ``"dataset"`` or ``"openpose"``."""
    return get_estimator(weights, mode=mode, scales=scales)(photo)


def estimate_poses(
    photo: Any, *, weights: str | os.PathLike | None = None, mode: str = "dataset", scales=None
) -> list[np.ndarray]:
    """Every person in ``photo``: a list of float32 (18, 2) ``(y, x)``, highest total score first."""
    return get_estimator(weights, mode=mode, scales=scales).all(photo)
