"""Custom ops of the pose-transfer originals (GFLA CUDA extensions, Def-GAN affine warps) in jnp and Pallas.

Every differentiable op takes ``impl="auto"|"xla"|"pallas"``; ``auto`` uses jnp on CPU and Pallas elsewhere.
Flows are NHWC ``(B, h, w, 2)``: ``[..., 0]`` = x offset, ``[..., 1]`` = y offset, in pixels.
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
