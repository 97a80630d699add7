"""Custom ops of the pose-transfer originals (GFLA CUDA extensions, Def-GAN affine warps) in jnp and Pallas.

Every differentiable op takes ``impl="auto"|"xla"|"pallas"``; ``auto`` currently uses the jnp path on every
backend (the Pallas kernels are validated in interpret mode only; see ``_dispatch.resolve_impl``).
Flows are NHWC ``(B, h, w, 2)``: ``[..., 0]`` = x offset, ``[..., 1]`` = y offset, in pixels.
``ptx.ops.ssim`` (imported on its own) holds the SSIM math the losses and the metrics share.
"""

from ptx.ops import affine
from ptx.ops.local_attention import blocks_to_image, extract_blocks, local_attention, local_attn_reshape
from ptx.ops.resample import bilinear_sample, gaussian_resample, resample

__all__ = [
    "affine",
    "bilinear_sample",
    "blocks_to_image",
    "extract_blocks",
    "gaussian_resample",
    "local_attention",
    "local_attn_reshape",
    "resample",
]
