"""Evaluation exactly as the papers' scripts compute it (each module imports only what it needs).

``masks`` (produce_ma_mask), ``fid`` (features, statistics, Fréchet distance, cached real statistics),
``inception_score``, ``lpips``, ``protocols`` (the originals' presets), ``evaluators`` (``evaluate(predict_fn,
batches, config.evals)``), ``images`` (result folders); ``python -m ptx.evaluate`` scores a folder of images.
SSIM (skimage-exact, and the differentiable maps the losses use) lives in ``ptx.ops.ssim``.
"""
