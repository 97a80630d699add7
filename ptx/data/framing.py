"""Fitting a photo of any size to a model's input frame, and mapping results back.

Models are trained on person-centred images of one aspect (DeepFashion 256x176, Market 128x64) and some run at
another size (GFLA stretches fashion to 256x256). A user's photo is cropped (or padded) around the person to the
training aspect, then resized to the model size; keypoints go through the same affine map, and the generated
image can be pasted back into the photo with its inverse.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image


@dataclasses.dataclass(frozen=True)
class Framing:
    """model = (photo - top_left) * scale, per axis (y, x); ``box`` = crop box (top, left, height, width)."""

    box: tuple[float, float, float, float]
    photo_size: tuple[int, int]
    model_size: tuple[int, int]

    @property
    def scale(self) -> np.ndarray:
        return np.array([self.model_size[0] / self.box[2], self.model_size[1] / self.box[3]])

    def to_model(self, keypoints: np.ndarray) -> np.ndarray:
        kps = np.asarray(keypoints, np.float64)
        out = (kps - np.array(self.box[:2])) * self.scale
        return np.where(kps < 0, -1.0, out).astype(np.float32)

    def to_photo(self, keypoints: np.ndarray) -> np.ndarray:
        kps = np.asarray(keypoints, np.float64)
        out = kps / self.scale + np.array(self.box[:2])
        return np.where(kps < 0, -1.0, out).astype(np.float32)


def person_box(
    keypoints: np.ndarray, photo_size: tuple[int, int], aspect: float, margin: float = 0.15
) -> tuple[float, float, float, float]:
    """Box of aspect ``aspect`` (= height / width) around the visible joints, with room for head and feet.

    Joints mark the nose and ankles, not the top of the hair or the shoes: the box grows by ``margin`` of the
    joints' height on each side (more above the head). The box may extend beyond the photo (then padded).
    """
    vis = keypoints[np.all(keypoints >= 0, axis=1)]
    y0, x0 = vis.min(0)
    y1, x1 = vis.max(0)
    h = max(y1 - y0, 1.0)
    top, bottom = y0 - 1.4 * margin * h, y1 + margin * h
    height = bottom - top
    width = max(x1 - x0 + 2 * margin * h, height / aspect)
    height = max(height, width * aspect)
    cy, cx = (top + bottom) / 2, (x0 + x1) / 2
    # Keep the whole photo when the person fills it already (a dataset image stays a plain resize).
    ph, pw = photo_size
    if height >= ph * 0.9 and abs(ph / pw - aspect) < 0.02:
        return (0.0, 0.0, float(ph), float(pw))
    return (float(cy - height / 2), float(cx - width / 2), float(height), float(width))


def fit_to_frame(
    image: np.ndarray,
    keypoints: np.ndarray | None,
    model_size: tuple[int, int],
    *,
    aspect: float | None = None,
    fill: int | tuple[int, int, int] = 255,
) -> tuple[np.ndarray, np.ndarray | None, Framing]:
    """Crops/pads ``image`` around the person to ``aspect`` and resizes it to ``model_size`` (bilinear).

    Without keypoints the whole photo is padded to the aspect. Returns (image, keypoints in the model frame,
    framing).
    """
    ph, pw = image.shape[:2]
    aspect = aspect or model_size[0] / model_size[1]
    if keypoints is not None:
        box = person_box(keypoints, (ph, pw), aspect)
    else:
        height, width = max(ph, pw * aspect), max(pw, ph / aspect)
        box = ((ph - height) / 2, (pw - width) / 2, height, width)
    framing = Framing(box=box, photo_size=(ph, pw), model_size=tuple(model_size))
    top, left, bh, bw = box
    fill_rgb = (fill,) * 3 if isinstance(fill, int) else tuple(fill)
    # On pixel indices x_in = left + x_out / sx; PIL applies its matrix to pixel centres (index + 0.5).
    sy, sx = framing.scale
    pil = Image.fromarray(np.asarray(image, np.uint8))
    out = pil.transform(
        (model_size[1], model_size[0]),
        Image.Transform.AFFINE,
        (1 / sx, 0, left + 0.5 - 0.5 / sx, 0, 1 / sy, top + 0.5 - 0.5 / sy),
        resample=Image.Resampling.BILINEAR,
        fillcolor=fill_rgb,
    )
    kps = framing.to_model(keypoints) if keypoints is not None else None
    return np.asarray(out), kps, framing


def paste_back(generated: np.ndarray, framing: Framing, photo: np.ndarray) -> np.ndarray:
    """Puts a model-frame image back into the photo's frame (inverse of :func:`fit_to_frame`)."""
    top, left, _, _ = framing.box
    sy, sx = framing.scale
    ph, pw = framing.photo_size
    pil = Image.fromarray(np.asarray(generated, np.uint8))
    # Inverse map on pixel indices: x_model = (x_photo - left) * sx (PIL samples at pixel centres).
    inverse = (sx, 0, 0.5 - (left + 0.5) * sx, 0, sy, 0.5 - (top + 0.5) * sy)
    back = pil.transform(
        (pw, ph),
        Image.Transform.AFFINE,
        inverse,
        resample=Image.Resampling.BILINEAR,
    )
    mask = Image.new("L", pil.size, 255).transform((pw, ph), Image.Transform.AFFINE, inverse)
    out = Image.fromarray(np.asarray(photo, np.uint8)).copy()
    out.paste(back, (0, 0), mask)
    return np.asarray(out)


def fit_map_to_frame(labels: np.ndarray, framing: Framing, fill: int = 0) -> np.ndarray:
    """A per-pixel label map of the photo (parsing, H x W) cut and resized exactly as :func:`fit_to_frame` cut the
    photo, with nearest-neighbour sampling (labels are ids, not intensities); outside the photo: ``fill``."""
    labels = np.asarray(labels)
    if labels.shape[:2] != tuple(framing.photo_size):
        raise ValueError(
            f"label map of shape {labels.shape[:2]} does not match the photo's {tuple(framing.photo_size)}"
        )
    top, left, _, _ = framing.box
    sy, sx = framing.scale
    h, w = framing.model_size
    out = Image.fromarray(labels.astype(np.uint8)).transform(
        (w, h),
        Image.Transform.AFFINE,
        (1 / sx, 0, left + 0.5 - 0.5 / sx, 0, 1 / sy, top + 0.5 - 0.5 / sy),
        resample=Image.Resampling.NEAREST,
        fillcolor=fill,
    )
    return np.asarray(out)


# The frames the datasets' images were cut to (height, width); models may stretch them (GFLA: 256x256).
DATASET_FRAMES = {"market": (128, 64), "fashion": (256, 176)}


def training_frame_aspect(data_cfg) -> float:
    """Height/width of the frame a config's training images were cut to (before any stretch to the model
    size): ``data.frame_size`` when set, else the dataset family's frame, else the model size.
    (``ptx.api``'s sampler frames photos with the same rule; its private copy can call this one.)"""
    frame = data_cfg.get("frame_size", None)
    if frame is None:
        names = f"{data_cfg.get('name', '')} {data_cfg.get('builder_config', '')}"
        frame = next((f for key, f in DATASET_FRAMES.items() if key in names), data_cfg.image_size)
    return float(frame[0]) / float(frame[1])
