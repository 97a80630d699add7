"""check_golden hook for ``pssim_loss.npz``: the pSSIM loss (value, gradient, per-image terms, part masks)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ptx.losses import pssim

# Window size and Gaussian sigma of each recorded variant.
WINDOWS = {"win7_sigma0.8": (7, 0.8), "win11_sigma1.5": (11, 1.5)}
CASES = ("market", "fashion")


def _terms(gen, tgt, mask):
    out = {}
    for window, (ws, sigma) in WINDOWS.items():
        out[f"pssim_{window}"], out[f"grad_pssim_wrt_generated_{window}"] = jax.value_and_grad(
            lambda x, ws=ws, sigma=sigma: pssim.part_ssim(x, tgt, mask, ws, sigma)
        )(gen)
        fg, bg = pssim.part_ssim_per_image(gen, tgt, mask, ws, sigma)
        out[f"fg_part_ssim_per_image_{window}"], out[f"bg_ssim_per_image_{window}"] = fg, bg
        out[f"plain_ssim_loss_module_{window}"], out[f"grad_plain_ssim_wrt_generated_{window}"] = (
            jax.value_and_grad(lambda x, ws=ws, sigma=sigma: pssim.ssim_value(x, tgt, ws, sigma))(gen)
        )
    return out


def run_golden(arrays: dict[str, np.ndarray], meta: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{output name: (ptx value, reference)} in the fixture's NCHW layout."""
    del meta
    results = {}
    terms = jax.jit(_terms)
    for case in CASES:
        nhwc = [
            jnp.asarray(np.transpose(arrays[f"input/{case}/{k}"], (0, 2, 3, 1)))
            for k in ("generated", "target", "part_mask")
        ]
        for name, value in terms(*nhwc).items():
            value = np.asarray(value)
            value = np.transpose(value, (0, 3, 1, 2)) if value.ndim == 4 else value
            results[f"{case}/{name}"] = (value, arrays[f"output/{case}/{name}"])
        want = arrays[f"input/{case}/part_mask"]
        got = jax.jit(pssim.part_masks, static_argnums=1)(
            arrays[f"input/{case}/keypoints_yx"], want.shape[2:]
        )
        results[f"{case}/part_mask_from_keypoints"] = (np.transpose(np.asarray(got), (0, 3, 1, 2)), want)
    return results
