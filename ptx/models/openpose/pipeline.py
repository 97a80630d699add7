"""The two reference pipelines around the network: photo -> network inputs, network outputs -> full-size maps.

``dataset`` follows the coordinate scripts that made the PATN / Def-GAN annotation CSVs (pose-gan
``compute_coordinates.py``, PATN ``tool/compute_coordinates.py``): four scales with Python 2's integer
division in the multipliers, scikit-image 0.13 resizes (Catmull-Rom for the photo, bilinear for the maps, zeros
outside), ``x / 255 - 0.5``, no padding, heatmaps averaged and PAFs **summed** over the scales, no heatmap ReLU.

``openpose`` follows pytorch-openpose ``Body.__call__`` (also ControlNet's annotator): one scale (0.5), OpenCV
cubic resizes (a = -0.75, clamped borders), bottom/right padding to a multiple of 8 with grey 128,
``x / 256 - 0.5``, maps upsampled x8, cropped, then resized to the photo; its accumulation
``avg += avg + maps / n`` is kept (it only matters with several scales).

Both take and give NumPy arrays; card ``shared/reference/openpose.md`` sections 4, 5 and 8 list the sources.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ptx.models.openpose import resize

MODES = ("dataset", "openpose")
BOX_SIZE = 368
STRIDE = 8
DEFAULT_SCALES = {"dataset": (0.5, 1, 1.5, 2), "openpose": (0.5,)}


@dataclasses.dataclass(frozen=True)
class NetInput:
    """One scale's network input: ``image`` float32 (h, w, 3) BGR normalised; ``content_hw`` the resized
    photo inside it (smaller than the image only where pytorch-openpose padded); ``factor`` the multiplier."""

    image: np.ndarray
    content_hw: tuple[int, int]
    factor: float


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown pose mode {mode!r}; expected one of {MODES}")
    return mode


def dataset_multiplier(scale: float, height: int) -> float:
    """``scale * 368 / H`` as Python 2 computed it: integer scales (1, 2) divide with floor.

    Photos taller than 368 px make the integer quotient 0 (the scripts would fail there); ptx then uses the
    true quotient, as Python 3 would.
    """
    if isinstance(scale, int) and not isinstance(scale, bool):
        floor = scale * BOX_SIZE // height
        if floor > 0:
            return floor
    return scale * BOX_SIZE / height


def dataset_inputs(bgr: np.ndarray, scales=DEFAULT_SCALES["dataset"]) -> list[NetInput]:
    """Photo (H, W, 3) BGR -> the scripts' network inputs: size ``trunc(H*m) x trunc(W*m)``, skimage 0.13
    bicubic, ``x / 255 - 0.5``."""
    out = []
    for scale in scales:
        m = dataset_multiplier(scale, bgr.shape[0])
        h, w = (np.array(bgr.shape[:2]) * m).astype(np.int32)
        if h < 1 or w < 1:
            raise ValueError(f"scale {scale} resizes the {bgr.shape[:2]} photo to nothing ({h}x{w})")
        image = resize.skimage_resize(bgr, (int(h), int(w)), order=3)
        out.append(NetInput((image / 255 - 0.5).astype(np.float32), (int(h), int(w)), float(m)))
    return out


def openpose_inputs(bgr: np.ndarray, scales=DEFAULT_SCALES["openpose"]) -> list[NetInput]:
    """Photo (H, W, 3) BGR uint8 -> pytorch-openpose's network inputs: OpenCV cubic resize by
    ``m = scale * 368 / H`` (size rounded half to even), ``x / 256 - 0.5``, bottom/right zero padding (grey 128
    normalises to exactly 0) up to a multiple of 8."""
    bgr = np.asarray(bgr)
    if bgr.dtype != np.uint8:
        raise ValueError(f"openpose mode expects a uint8 photo, got {bgr.dtype}")
    out = []
    for scale in scales:
        m = scale * BOX_SIZE / bgr.shape[0]
        h, w = int(np.rint(bgr.shape[0] * m)), int(np.rint(bgr.shape[1] * m))
        if h < 1 or w < 1:
            raise ValueError(f"scale {scale} resizes the {bgr.shape[:2]} photo to nothing ({h}x{w})")
        image = resize.cv2_cubic_resize(bgr, (h, w), factor=m)
        image = image.astype(np.float32) / 256 - np.float32(0.5)
        image = np.pad(image, ((0, -h % STRIDE), (0, -w % STRIDE), (0, 0)))
        out.append(NetInput(image, (h, w), float(m)))
    return out


def network_inputs(bgr: np.ndarray, mode: str, scales=None) -> list[NetInput]:
    """The network inputs of ``mode`` for a BGR photo (``scales`` default: the mode's own)."""
    scales = DEFAULT_SCALES[check_mode(mode)] if scales is None else tuple(scales)
    if not scales:
        raise ValueError("network_inputs: at least one scale is needed")
    return (dataset_inputs if mode == "dataset" else openpose_inputs)(bgr, scales)


def upsample_openpose(
    net_map: np.ndarray, content_hw: tuple[int, int], photo_hw: tuple[int, int]
) -> np.ndarray:
    """pytorch-openpose: (h, w, C) network output -> x8 cubic -> crop the padding -> cubic to the photo size;
    the three steps as one linear map per axis (float64)."""
    h, w = net_map.shape[:2]
    ry = (
        resize.cv2_cubic_matrix(content_hw[0], photo_hw[0])
        @ resize.cv2_cubic_matrix(h, h * STRIDE, STRIDE)[: content_hw[0]]
    )
    rx = (
        resize.cv2_cubic_matrix(content_hw[1], photo_hw[1])
        @ resize.cv2_cubic_matrix(w, w * STRIDE, STRIDE)[: content_hw[1]]
    )
    return resize.apply(net_map, ry, rx)


def upsample_dataset(net_map: np.ndarray, photo_hw: tuple[int, int]) -> np.ndarray:
    """The scripts: (h, w, C) network output -> skimage 0.13 bilinear straight to the photo size."""
    return resize.skimage_resize(net_map, photo_hw, order=1)


def combine(
    outputs: list[tuple[np.ndarray, np.ndarray]], inputs: list[NetInput], photo_hw: tuple[int, int], mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-scale network outputs ``[(paf (h, w, 38), heatmap (h, w, 19))]`` -> full-size float64
    (heatmap, paf) as ``mode`` averages them (dataset: heatmap mean, PAF sum; openpose: its own update)."""
    n = len(outputs)
    heat_avg = np.zeros((*photo_hw, outputs[0][1].shape[-1]))
    paf_avg = np.zeros((*photo_hw, outputs[0][0].shape[-1]))
    for (paf, heat), item in zip(outputs, inputs):
        if check_mode(mode) == "dataset":
            heat_avg += upsample_dataset(heat, photo_hw)
            paf_avg += upsample_dataset(paf, photo_hw)
        else:
            heat_avg += heat_avg + upsample_openpose(heat, item.content_hw, photo_hw) / n
            paf_avg += upsample_openpose(paf, item.content_hw, photo_hw) / n
    if mode == "dataset":
        heat_avg /= n
    return heat_avg, paf_avg
