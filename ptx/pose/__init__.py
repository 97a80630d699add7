"""OpenPose-compatible body keypoints (COCO-18) in JAX: network, the references' pre/post-processing, API.

Imports nothing heavy at import time; the estimator and its jitted network load on first use.
"""
