"""Evaluation exactly as the papers' scripts compute it (each module imports only what it needs).

``ssim`` (skimage-exact SSIM and differentiable maps), ``masks`` (produce_ma_mask), ``fid`` (features,
statistics, Fréchet distance, cached real statistics), ``inception_score``, ``lpips``, ``protocols`` (the
originals' presets), ``evaluators`` (``evaluate(predict_fn, batches, config.evals)``), ``images`` (result folders);
``python -m ptx.evaluate`` scores a folder of images.
"""
