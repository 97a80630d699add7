"""The originals' evaluation protocols as data: which metrics, which SSIM arguments, panels, padding, batching.

Sources (shared/reference cards): PATN ``tool/getMetrics_{market,fashion}.py``, pSSIM ``tool/getPartSSIM.py``,
Def-GAN ``test.py``, GFLA ``script/metrics.py``. Each preset is a ``config.evals``-style mapping
``{name: {type, options}}`` so the CLI and the trainer's evaluators share one implementation.

SSIM "skimage" flavour: the PATN/Def-GAN numbers come from skimage < 0.15 (Gaussian filter truncated at 4
sigma = 13 taps, 11-pixel window for cropping); ``modern`` is skimage >= 0.15 (11 taps). They differ by
~1e-4..3e-4.
"""

from __future__ import annotations

import copy
from typing import Any

# compare_ssim(t, g, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, multichannel=True,
#              data_range=g.max() - g.min()) on uint8 arrays.
PATN_SSIM = {
    "gaussian_weights": True,
    "sigma": 1.5,
    "use_sample_covariance": False,
    "data_range": "generated",
}
LEGACY = {"truncate": 4.0, "win_size": 11}  # skimage < 0.15
MODERN = {"truncate": 3.5}  # skimage >= 0.15

# GFLA "ssim": compare_ssim(gt/255, pred/255, data_range=1, win_size=51, multichannel=True) (uniform window,
# sample covariance); "ssim_256": PATN's call on the 0..255 floats.
GFLA_SSIM = {"gaussian_weights": False, "win_size": 51, "use_sample_covariance": True, "data_range": 1.0,
             "scale": 1 / 255}  # fmt: skip


def _patn(dataset: str, skimage: str) -> dict[str, Any]:
    ver = LEGACY if skimage == "legacy" else MODERN
    pad = 40 if dataset == "fashion" else 0  # getMetrics_fashion pads 40 white columns each side (-> 256x256)
    evals = {
        "ssim": {"type": "ssim", **PATN_SSIM, **ver, "pad_white": pad},
        "is": {"type": "is", "pad_white": pad, "preprocess": "tf_graph", "splits": 10},
    }
    if dataset == "market":
        evals["mask_ssim"] = {"type": "mask_ssim", **PATN_SSIM, **ver}
        evals["mask_is"] = {"type": "is", "mask": True, "preprocess": "tf_graph", "splits": 10}
        evals["l1"] = {"type": "l1"}
    return evals


def _gfla(dataset: str, skimage: str) -> dict[str, Any]:
    ver = LEGACY if skimage == "legacy" else MODERN
    return {
        "fid": {"type": "fid", "batch_size": 64, "drop_remainder": True},
        "lpips": {"type": "lpips", "net": "alex", "batch_size": 64, "drop_remainder": True},
        "ssim": {"type": "ssim", **GFLA_SSIM},
        "ssim_256": {"type": "ssim", **PATN_SSIM, **ver},
        "l1": {"type": "l1", "scale": "unit"},
    }


def _pssim(dataset: str, skimage: str) -> dict[str, Any]:
    evals = _patn(dataset, skimage)
    evals["pssim"] = {"type": "pssim", "win_size": 7, "sigma": 0.8}
    return evals


def _defgan(dataset: str, skimage: str) -> dict[str, Any]:
    evals = _patn(dataset, skimage)
    evals["ssim"]["pad_white"] = 0  # Def-GAN scores the images as generated
    evals["is"]["pad_white"] = 0
    return evals


# name -> (evals builder, panels of the originals' result images, (target panel, generated panel), skimage)
PROTOCOLS = {
    "patn": (_patn, 5, (2, 4), "legacy"),
    "pssim": (_pssim, 5, (2, 4), "legacy"),
    "defgan": (_defgan, 3, (1, 2), "legacy"),
    "gfla": (_gfla, 1, (None, 0), "modern"),
}


def get(name: str, dataset: str, skimage: str | None = None) -> dict[str, Any]:
    """The ``config.evals``-style mapping of a protocol for ``dataset`` ('fashion' or 'market')."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; choose from {sorted(PROTOCOLS)}")
    if dataset not in ("fashion", "market"):
        raise ValueError(f"dataset must be 'fashion' or 'market', got {dataset!r}")
    build, _, _, default_skimage = PROTOCOLS[name]
    return copy.deepcopy(build(dataset, skimage or default_skimage))


def panels(name: str) -> tuple[int, tuple[int | None, int]]:
    """(number of panels in a result image, (target panel index or None, generated panel index))."""
    _, n, which, _ = PROTOCOLS[name]
    return n, which
