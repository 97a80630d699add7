"""Evaluation protocols end to end: person masks, mask-SSIM / padded SSIM / L1 / pSSIM metric goldens,
``evaluators.evaluate`` (weights missing -> skipped) and the ``python -m ptx.evaluate`` CLI on result strips."""

import json

import numpy as np
import pytest
from PIL import Image

from ptx.evaluate import __main__ as cli
from ptx.evaluate import evaluators, masks, protocols


@pytest.fixture(scope="module")
def golden(golden_dir):
    return dict(np.load(golden_dir / "pssim_loss.npz"))


def _market(golden):
    t = golden["input/metric_market/reference_uint8"].astype(np.uint8)
    g = golden["input/metric_market/generated_uint8"].astype(np.uint8)
    return g, t, golden["input/metric_market/target_keypoints_yx"]


def test_person_mask_matches_produce_ma_mask(golden):
    _, _, kp = _market(golden)
    got = masks.person_masks(kp, (128, 64))
    np.testing.assert_array_equal(got, golden["output/metric_market/ma_mask"] > 0.5)
    legacy = masks.person_masks(kp, (128, 64), rule="legacy")  # skimage 0.13 boundary rule: a few pixels
    assert 0 < (legacy != got).sum() < 0.02 * got.size


def test_polygon_matches_skimage():
    draw = pytest.importorskip("skimage.draw")
    rs = np.random.RandomState(0)
    for _ in range(50):
        pts = np.round(rs.uniform(-4, 40, (4, 2)) * 2) / 2  # half-integer vertices hit edges and corners
        ref = np.zeros((36, 36), bool)
        ref[draw.polygon(pts[:, 0], pts[:, 1], shape=ref.shape)] = True
        got = np.zeros_like(ref)
        masks._fill_polygon(got, pts[:, 0], pts[:, 1])
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("skimage, tag", [("legacy", "pre0.15_13tap"), ("modern", "0.15plus_11tap")])
def test_market_metrics_match_golden(golden, skimage, tag):
    g, t, kp = _market(golden)
    evals = protocols.get("pssim", "market", skimage)
    chosen = {k: evals[k] for k in ("ssim", "mask_ssim", "l1", "pssim")}
    metrics = evaluators.build_metrics(chosen)
    per_image = {name: [] for name in chosen}
    for i in range(len(g)):  # one image at a time, as the scripts do; compare per image
        for name, m in metrics.items():
            m.update(g[i : i + 1], t[i : i + 1], kp[i : i + 1])
            per_image[name].append(m.values[-1][0])
    c = "output/metric_market"
    np.testing.assert_allclose(per_image["ssim"], golden[f"{c}/ssim_skimage_{tag}"], atol=1e-4)
    np.testing.assert_allclose(per_image["mask_ssim"], golden[f"{c}/mask_ssim_skimage_{tag}"], atol=1e-4)
    np.testing.assert_allclose(per_image["l1"], golden[f"{c}/l1_score"], atol=1e-5)
    np.testing.assert_allclose(per_image["pssim"], golden[f"{c}/pssim_eval_protocol"], atol=2e-5)
    assert metrics["ssim"].result()[""] == pytest.approx(np.mean(per_image["ssim"]))


def test_fashion_padding_matches_golden(golden):
    t = golden["input/metric_fashion/reference_uint8"].astype(np.uint8)
    g = golden["input/metric_fashion/generated_uint8"].astype(np.uint8)
    m = evaluators.build_metric(protocols.get("patn", "fashion", "legacy")["ssim"])
    m.update(g, t, None)
    np.testing.assert_allclose(m.values[0], golden["output/metric_fashion/ssim_padded40_skimage_pre0.15_13tap"],
                               atol=1e-4)  # fmt: skip


def test_evaluate_with_predict_fn_skips_metrics_without_weights():
    rs = np.random.RandomState(0)
    batches = [
        {"target_image": rs.randint(0, 256, (2, 32, 24, 3)).astype(np.uint8),
         "target_keypoints": np.full((2, 18, 2), -1, np.float32)}
        for _ in range(2)
    ]  # fmt: skip

    def predict(batch):  # "perfect" generator in [-1, 1] up to the truncation the originals apply
        return {"image": batch["target_image"].astype(np.float32) / 127.5 - 1.0 + 1e-4}

    cfg = {
        "ssim": {"type": "ssim", **protocols.PATN_SSIM},
        "l1": {"type": "l1"},
        "fid": {"type": "fid"},  # no inception file configured -> skipped
        "lpips": {"type": "lpips", "trunk": "/nonexistent/alexnet.pth"},
    }
    with pytest.warns(UserWarning, match="pt_inception-2015-12-05-6726825d.pth"):
        out = evaluators.evaluate(predict, iter(batches), cfg)
    assert set(out) == {"ssim", "l1"}
    assert out["ssim"] == pytest.approx(1.0, abs=1e-6) and out["l1"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="unknown eval type"):
        evaluators.build_metric({"type": "psnr"})


def test_fid_and_is_metrics_use_features(monkeypatch, tmp_path):
    weights = tmp_path / "pt_inception.pth"
    weights.write_bytes(b"")

    class FakeFeatures:
        def __init__(self, variables, *, batch_size, **kwargs):
            self.batch_size = batch_size

        def __call__(self, imgs, drop_remainder=False):
            x = np.asarray(list(imgs), np.float64).reshape(-1, 4, 3)[:, :, :].reshape(-1, 12)
            return {"pool3": x, "logits": np.concatenate([x, -x], axis=1) / 50}

    monkeypatch.setattr(evaluators.fid_lib, "InceptionFeatures", FakeFeatures)
    monkeypatch.setattr(evaluators, "_inception_variables", lambda path: {})
    rs = np.random.RandomState(1)
    t = rs.randint(0, 256, (20, 2, 2, 3)).astype(np.uint8)
    results = evaluators.run_metrics(
        {"fid": evaluators.build_metric({"type": "fid", "inception": str(weights)}),
         "is": evaluators.build_metric({"type": "is", "inception": str(weights), "splits": 2})},
        [(t, t, None)],
    )  # fmt: skip
    assert abs(results["fid"]) < 1e-6 and results["is"] > 1 and "is_std" in results


def _write_strips(folder, g, t, n_panels, which):
    names = []
    for i in range(len(g)):
        panels = [np.zeros_like(g[i])] * n_panels
        panels[which[0]], panels[which[1]] = t[i], g[i]
        name = f"src{i}.jpg___tgt{i}.jpg_vis.png"  # PNG keeps the golden pixels exact
        Image.fromarray(np.concatenate(panels, axis=1)).save(folder / name)
        names.append(f"tgt{i}.jpg")
    return names


def test_cli_on_patn_result_strips(golden, tmp_path, capsys):
    g, t, kp = _market(golden)
    res = tmp_path / "results"
    res.mkdir()
    names = _write_strips(res, g, t, 5, (2, 4))
    ann = tmp_path / "market-annotation-test.csv"
    rows = ["name:keypoints_y:keypoints_x"]
    for name, k in zip(names, kp):
        rows.append(f"{name}:{json.dumps([int(v) for v in k[:, 0]])}:{json.dumps([int(v) for v in k[:, 1]])}")
    ann.write_text("\n".join(rows) + "\n")
    out = tmp_path / "m.json"
    args = ["--generated", str(res), "--protocol", "pssim", "--annotations", str(ann), "--out", str(out),
            "--metrics", "ssim,mask_ssim,l1", "--skimage", "modern", "--batch-size", "1"]  # fmt: skip
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "MASK-SSIM" in printed and "pssim protocol, market, 3 images" in printed
    rec = json.loads(out.read_text())["metrics"]
    c = "output/metric_market"
    assert rec["ssim"] == pytest.approx(golden[f"{c}/ssim_skimage_0.15plus_11tap"].mean(), abs=1e-4)
    assert rec["l1"] == pytest.approx(golden[f"{c}/l1_score"].mean(), abs=1e-5)
    # The golden keypoints are integers already, so CSV round trip keeps the masks.
    assert rec["mask_ssim"] == pytest.approx(golden[f"{c}/mask_ssim_skimage_0.15plus_11tap"].mean(), abs=1e-4)


def test_cli_missing_weights_is_one_line_error(tmp_path):
    res, real = tmp_path / "res", tmp_path / "real"
    res.mkdir()
    real.mkdir()
    img = np.zeros((128, 64, 3), np.uint8)
    Image.fromarray(img).save(res / "a_2_b_vis.png")
    Image.fromarray(img).save(real / "b.jpg")
    with pytest.raises(SystemExit, match="pt_inception-2015-12-05-6726825d.pth.*pytorch-fid"):
        cli.main(
            ["--generated", str(res), "--real", str(real), "--protocol", "gfla", "--inception", "nope.pth"]
        )
    with pytest.raises(SystemExit, match="--real"):
        cli.main(["--generated", str(res), "--protocol", "gfla"])


@pytest.mark.slow
def test_cli_gfla_with_weight_files(golden_dir, tmp_path, capsys):
    """FID + LPIPS through .pth files (random weights saved with torch) and the real-statistics cache."""
    torch = pytest.importorskip("torch")
    import importlib.util

    spec = importlib.util.spec_from_file_location("rw", golden_dir / "metrics_random_weights.py")
    rw = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rw)
    meta = json.loads((golden_dir / "metrics_fid_inception.json").read_text())
    sd = rw.make_state_dict(meta["official_keys_and_shapes"], meta["weights"]["base_seed"])
    torch.save({k: torch.from_numpy(v) for k, v in sd.items()}, tmp_path / "pt_inception.pth")
    g = dict(np.load(golden_dir / "metrics_lpips_alex.npz"))
    trunk = {k.replace("param/net.slice1.", "features.").replace("param/net.slice2.", "features.")
             .replace("param/net.slice3.", "features.").replace("param/net.slice4.", "features.")
             .replace("param/net.slice5.", "features."): torch.from_numpy(v.astype(np.float32))
             for k, v in g.items() if k.startswith("param/net.")}  # fmt: skip
    torch.save(trunk, tmp_path / "alexnet.pth")
    torch.save(
        {k[6:]: torch.from_numpy(v) for k, v in g.items() if k.startswith("param/lin")}, tmp_path / "lin.pth"
    )
    rs = np.random.RandomState(0)
    res, real, train = tmp_path / "res", tmp_path / "real", tmp_path / "train"
    for d in (res, real, train):
        d.mkdir()
    for i in range(6):
        t = rs.randint(0, 256, (128, 64, 3)).astype(np.uint8)
        Image.fromarray(t).save(real / f"t{i}.png")
        Image.fromarray(np.clip(t + rs.normal(0, 20, t.shape), 0, 255).astype(np.uint8)).save(
            res / f"s{i}_2_t{i}_vis.png"
        )
        Image.fromarray(rs.randint(0, 256, (128, 64, 3)).astype(np.uint8)).save(train / f"r{i}.png")
    args = ["--generated", str(res), "--real", str(real), "--protocol", "gfla", "--inception",
            str(tmp_path / "pt_inception.pth"), "--lpips-trunk", str(tmp_path / "alexnet.pth"), "--lpips-lin",
            str(tmp_path / "lin.pth"), "--fid-real", str(train), "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert cli.main(args + ["--out", str(tmp_path / "a.json")]) == 0
    first = json.loads((tmp_path / "a.json").read_text())["metrics"]
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert cli.main(args + ["--out", str(tmp_path / "b.json")]) == 0  # real statistics from the cache
    second = json.loads((tmp_path / "b.json").read_text())["metrics"]
    assert first == pytest.approx(second)
    assert (
        set(first) == {"fid", "lpips", "ssim", "ssim_256", "l1"} and first["fid"] > 0 and first["lpips"] > 0
    )
