"""XDoG edge maps, the SCA-GAN edge input (scagan.md, "Edge maps (XDoG)"), numpy.

:func:`xdog_edges` is THE edge map of ptx: the puppets builder stores it for every image, and the sampler
computes it from a user's photo when a method asks for ``source_edge``, so both see the same function with the
same parameters. (The puppets builder applies it to the decoded stored JPEG, i.e. to exactly the image a
loader or a user hands on.)

SCA-GAN's README points to the MATLAB script of CemalUnal/XDoG-Filter with hard-coded parameters gamma 0.98,
phi 200, epsilon -0.1, k 1.6, sigma 0.8. Its steps, reproduced here:

1. grey = MATLAB ``rgb2gray`` (0.298936 R + 0.587043 G + 0.114021 B, rounded back to uint8), scaled to [0, 1];
2. G1, G2 = Gaussian blurs with sigma and k*sigma (``imgaussfilt``: kernel 2*ceil(2*sigma)+1 taps, replicate
   border);
3. D = G1 - gamma * G2; E = 1 where D < epsilon, else 1 + tanh(phi * D);
4. E min-max normalised (``mat2gray``); the thresholded map is E > mean(E).

:func:`xdog` returns the thresholded map as uint8 with 255 background and 0 lines, the polarity of the PNGs in
SCA-GAN's ``trainE/diff`` folders (SCA-GAN inverts them on loading). ``soft=True`` gives the normalised E
instead. Which variant the SCA-GAN authors used for their released maps is unknown (scagan.md); the
thresholded one is what the golden fixtures were made with.
"""

from __future__ import annotations

import math

import numpy as np

_RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = int(math.ceil(2 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(x * x) / (2 * sigma * sigma))
    return k / k.sum()


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with replicate borders (MATLAB ``imgaussfilt`` defaults)."""
    k = _gaussian_kernel(sigma)
    r = len(k) // 2
    out = image
    for axis in (0, 1):
        padded = np.pad(out, [(r, r) if a == axis else (0, 0) for a in range(2)], mode="edge")
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for i, weight in enumerate(k):
            acc += weight * (padded[i : i + n] if axis == 0 else padded[:, i : i + n])
        out = acc
    return out


def rgb2gray(image: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` of a uint8 HxWx3 image: weighted sum rounded half away from zero, uint8."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image.astype(np.uint8)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an HxWx3 RGB image or an HxW grey image, got shape {image.shape}")
    return np.floor(image.astype(np.float64) @ _RGB2GRAY + 0.5).astype(np.uint8)


def xdog(
    image: np.ndarray,
    *,
    gamma: float = 0.98,
    phi: float = 200.0,
    epsilon: float = -0.1,
    k: float = 1.6,
    sigma: float = 0.8,
    soft: bool = False,
) -> np.ndarray:
    """uint8 HxWx3 (or HxW grey) image -> uint8 HxW XDoG edge map: 255 background, 0 lines (see module doc)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"xdog expects a uint8 image, got dtype {image.dtype}")
    grey = rgb2gray(image).astype(np.float64) / 255.0
    d = _blur(grey, sigma) - gamma * _blur(grey, sigma * k)
    e = np.where(d < epsilon, 1.0, 1.0 + np.tanh(phi * d))
    lo, hi = e.min(), e.max()
    if hi - lo < 1e-12:  # a flat image has no edges
        return np.full(grey.shape, 255, np.uint8)
    e = (e - lo) / (hi - lo)
    if soft:
        return np.floor(e * 255 + 0.5).astype(np.uint8)
    return np.where(e > e.mean(), 255, 0).astype(np.uint8)


def xdog_edges(image: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 photo -> uint8 HxW edge map (255 background, 0 lines) as the datasets store it: :func:`xdog`
    thresholded, at SCA-GAN's parameters (the defaults). Use this, not :func:`xdog` with options, for data."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"xdog_edges expects an HxWx3 RGB photo, got shape {image.shape}")
    return xdog(image)
