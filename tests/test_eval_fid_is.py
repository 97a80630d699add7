"""Fréchet distance, feature batching/caching and Inception Score against the pytorch-fid / OpenAI goldens."""

import json
import os

import numpy as np
import pytest

from ptx.evaluate import fid, inception_score


@pytest.fixture(scope="module")
def frechet(golden_dir):
    return dict(np.load(golden_dir / "metrics_fid_frechet.npz"))


@pytest.mark.parametrize(
    "case, method",
    [
        ("64x2048", "auto"),  # low-rank nuclear-norm form
        ("600x64_vs_500x64", "auto"),  # eigh form
        ("600x64_vs_500x64", "sqrtm"),  # pytorch-fid's own path
        pytest.param("64x2048", "eigh", marks=pytest.mark.slow),  # 2048-dim eigensolves: ~10 s to minutes
    ],
)
def test_frechet_matches_pytorch_fid(frechet, case, method):
    got = fid.fid_from_features(frechet[f"input/feats_a_{case}"], frechet[f"input/feats_b_{case}"], method)
    ref = float(frechet[f"output/fid_pytorch_fid_{case}"])
    assert abs(got / ref - 1) < 1e-6, (got, ref)


def test_frechet_identical_sets_is_zero(frechet):
    a = frechet["input/feats_a_600x64_vs_500x64"][:300, :32]
    assert abs(fid.fid_from_features(a, a)) < 1e-8


@pytest.fixture(scope="module")
def is_golden(golden_dir):
    return dict(np.load(golden_dir / "metrics_inception_score.npz"))


@pytest.mark.parametrize("n", [503, 500])
@pytest.mark.parametrize("splits", [10, 1])
def test_inception_score_matches_openai(is_golden, n, splits):
    logits = is_golden["input/logits_503x1008"][:n]
    mean, std = inception_score.inception_score(logits, splits)
    ref = is_golden[f"output/is_mean_std_openai_f64_N{n}_splits{splits}"]
    np.testing.assert_allclose([mean, std], ref, rtol=1e-4, atol=1e-6)
    per = inception_score.split_scores(logits, splits)
    np.testing.assert_allclose(
        per, is_golden[f"output/is_per_split_openai_f64_N{n}_splits{splits}"], rtol=1e-4
    )


def test_feature_batches_pad_and_drop():
    calls = []

    class Fake(fid.InceptionFeatures):
        def __init__(self):
            self.batch_size = 4
            self.variables = None

            def apply(v, x):
                calls.append(x.shape)
                return {"pool3": np.asarray(x).reshape(len(x), -1)[:, :2].astype(np.float32)}

            self._apply = apply

    imgs = np.arange(10 * 2 * 2 * 3, dtype=np.uint8).reshape(10, 2, 2, 3)
    feats = Fake()(imgs)["pool3"]
    assert feats.shape == (10, 2) and calls == [(4, 2, 2, 3)] * 2 + [
        (2, 2, 2, 3)
    ]  # last: 2 of 4 (power of 2)
    np.testing.assert_array_equal(feats[:, 0], imgs.reshape(10, -1)[:, 0])
    assert Fake()(imgs, drop_remainder=True)["pool3"].shape == (8, 2)  # GFLA's rule
    assert Fake()(imgs[:3], drop_remainder=True)["pool3"].shape == (3, 2)  # smaller than a batch: all


def test_cached_statistics_keyed_by_image_set(tmp_path):
    files = []
    for i in range(3):
        p = tmp_path / f"img{i}.png"
        p.write_bytes(bytes([i]) * 10)
        files.append(str(p))
    rs = np.random.RandomState(0)
    computed = []

    def compute(paths):
        computed.append(len(paths))
        return rs.standard_normal((len(paths), 4))

    cache = tmp_path / "cache"
    mu1, s1 = fid.cached_statistics(files, compute, cache_dir=cache, protocol={"p": 1})
    mu2, s2 = fid.cached_statistics(files, compute, cache_dir=cache, protocol={"p": 1})
    np.testing.assert_array_equal(mu1, mu2)
    assert computed == [3]
    fid.cached_statistics(files[:2], compute, cache_dir=cache, protocol={"p": 1})  # other set
    fid.cached_statistics(files, compute, cache_dir=cache, protocol={"p": 2})  # other protocol
    assert computed == [3, 2, 3] and len(os.listdir(cache)) == 3
    assert json.loads(str(np.load(next(cache.iterdir()))["protocol"]))
