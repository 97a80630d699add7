"""The end-of-run summary: its scores against independent formulas, and a tiny real run that ends with
metrics.json's ``eval.summary``, a grid, report.html, the sampling inputs and the closing lines."""

import json
import re

import numpy as np
import pytest
from train_fixtures import cheap_compiles, shared_cache_dir

from configs import toy_puppets
from ptx.ops.ssim import structural_similarity
from ptx.train import loop, report, summary


def _pairs(seed=0, shape=(3, 32, 24, 3)):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape).astype(np.uint8)
    b = np.clip(a + rng.normal(0, 40, shape), 0, 255).astype(np.uint8)
    return a, b


def test_scores_match_skimage_ssim_and_masked_l1_by_hand():
    a, b = _pairs()
    mask = np.zeros(a.shape[:3], bool)
    mask[:, 8:24, 4:20] = True
    got = {k: np.asarray(v) for k, v in summary._scores(a, b, mask).items()}
    whole = structural_similarity(
        a.astype(np.float32), b.astype(np.float32), data_range=255.0, gaussian_weights=True,
        use_sample_covariance=False,
    )  # fmt: skip
    np.testing.assert_allclose(got["ssim"], np.asarray(whole), atol=1e-5)
    diff = np.abs(a.astype(np.float64) - b) / 255.0
    np.testing.assert_allclose(got["l1"], diff.mean(axis=(1, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(got["l1_person"], diff[:, 8:24, 4:20].mean(axis=(1, 2, 3)), atol=1e-6)
    # Everything outside the mask made identical: the whole-image SSIM rises, the person region's hardly
    # (only its windows that reach past the mask's edge see the change).
    b2 = np.where(mask[..., None], b, a)
    got2 = {k: np.asarray(v) for k, v in summary._scores(a, b2, mask).items()}
    whole_gain, person_gain = got2["ssim"] - got["ssim"], got2["ssim_person"] - got["ssim_person"]
    assert np.all(whole_gain > 0.02) and np.all(person_gain < 0.5 * whole_gain), (whole_gain, person_gain)
    full = {k: np.asarray(v) for k, v in summary._scores(a, b, np.ones(a.shape[:3], bool)).items()}
    np.testing.assert_allclose(full["ssim_person"], full["ssim"], atol=1e-6)


def test_person_mask_excludes_background_and_unlabelled():
    parsing = np.array([[[0, 1, 255], [13, 0, 19]]], np.uint8)
    np.testing.assert_array_equal(summary.person_mask(parsing), [[[False, True, False], [True, False, True]]])


def test_table_is_aligned_and_marks_missing_columns():
    table = {
        "model": {"ssim": 0.61234, "l1": 0.1, "ssim_person": 0.4},
        "copy_source": {"ssim": 0.4, "l1": 0.2},
    }
    lines = report.format_table(table)
    assert len(lines) == 3 and len({len(line) for line in lines}) == 1, lines
    assert "0.612" in lines[1] and lines[2].split()[-1] == "-"
    assert "SSIM↑" in lines[0] and "L1↓" in lines[0]


def test_grid_has_a_column_per_panel_and_a_warp_column_when_given():
    rng = np.random.default_rng(0)
    img = lambda: rng.integers(0, 255, (32, 24, 3), np.uint8)  # noqa: E731
    kps = np.full((18, 2), -1.0, np.float32)
    kps[:2] = [[5, 10], [12, 12]]
    row = summary.GridRow(img(), kps, kps, img(), img(), img())
    grid, names = summary.grid_image([row, row])
    assert names == ["source", "target pose", "stage-1 warp", "output", "ground truth"]
    scale = 4  # 32 px panels scaled to >= 128
    assert grid.shape == (16 + 2 * (32 * scale + 2), 5 * (24 * scale + 2) - 2, 3)
    no_warp, names = summary.grid_image([summary.GridRow(img(), kps, kps, None, img(), img())])
    assert "stage-1 warp" not in names and no_warp.shape[1] == 4 * (24 * scale + 2) - 2


@pytest.fixture(scope="module", autouse=True)
def fast_compiles(tmp_path_factory):
    with cheap_compiles(shared_cache_dir(tmp_path_factory)):
        yield


@pytest.fixture(scope="module")
def puppets_dir(tmp_path_factory):
    import data_builders

    root = tmp_path_factory.mktemp("puppets")
    data_builders.build("puppets", data_dir=root, config="fashion_tiny")
    return root


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, puppets_dir):
    """configs/toy_puppets.py:tiny through the real trainer and pipeline on 1 device (puppets data)."""
    config = toy_puppets.get_config("tiny")
    config.mesh.shape = (1,)
    config.data.data_dir = str(puppets_dir)
    workdir = tmp_path_factory.mktemp("toy_run")
    result = loop.run(config, workdir)
    return workdir, result


def test_run_ends_with_eval_grid_report_and_sampling_inputs(tiny_run):
    workdir, result = tiny_run
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["global_step"] == result.global_step and metrics["train"]  # what the file held is kept
    s = metrics["eval"]["summary"]
    assert s["split"] == "test" and s["pairs"] == 8  # pairs=4 rounds up to one batch of 8
    assert set(s["rows"]) == {"model", "copy_source", "mean_image"}  # the toy's predict returns no warp
    for row in s["rows"].values():
        assert set(row) == {"ssim", "l1", "ssim_person", "l1_person"}  # no LPIPS weights here
        assert 0 < row["ssim"] < 1 and 0 < row["l1"] < 1
    copy = s["rows"]["copy_source"]
    assert copy["l1_person"] != pytest.approx(copy["l1"], abs=1e-3)  # the mask is applied
    assert any("LPIPS skipped" in n for n in s["notes"])

    files = json.loads((workdir / summary.SUMMARY_FILE).read_text())["files"]
    from PIL import Image

    grid = np.asarray(Image.open(files["grid"]))
    assert grid.shape[1] == 4 * (16 * 4 + 2) - 2  # 4 panels of 32x16 scaled by 4 (no warp column)
    html = (workdir / "report.html").read_text()
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 2  # grid and loss curves, embedded
    assert "mean train image" in html and "SSIM person" in html
    for key in ("source", "source_pose", "pose"):
        assert (workdir / "examples" / files["examples"][key].split("/")[-1]).is_file()
    from ptx.data import poses

    kps = poses.read_pose(files["examples"]["pose"])
    assert (kps >= 0).all(axis=1).sum() >= 2

    lines = summary.closing_lines(workdir, ["--config", "toy_puppets:tiny"])
    assert [line.split(":")[0] for line in lines[:4]] == [
        "grid of held-out pairs", "report", "checkpoint", "sample from it",
    ]  # fmt: skip
    assert f"--workdir {workdir} --mode sample --source" in lines[3]
    assert (workdir / "scalars.jsonl").is_file()


def test_summary_switch_off(tmp_path):
    config = toy_puppets.get_config("tiny")
    config.summary.enabled = False
    variables = {"gen": {"params": {"w": np.zeros(2)}}}
    assert summary.finish(config, tmp_path, None, variables, None, None, 0) is None
    assert not any(tmp_path.iterdir())


def test_report_history_keeps_the_last_record_of_a_step_and_times_stages(tmp_path):
    lines = [
        {"step": 1, "time": 10.0, "stage": 0, "train/gen/loss": 3.0, "progress/steps_per_sec": 1.0},
        {"step": 2, "time": 12.0, "stage": 0, "train/gen/loss": 2.0, "progress/steps_per_sec": 2.0},
        {
            "step": 2,
            "time": 20.0,
            "stage": 0,
            "train/gen/loss": 1.5,
            "progress/steps_per_sec": 4.0,
        },  # resumed
        {"step": 4, "time": 30.0, "stage": 1, "train/gen/loss": 1.0, "progress/steps_per_sec": 0.5},
        {"step": 4, "time": 90.0, "summary/model/ssim": 0.5},  # the summary's values: not a log step
    ]
    (tmp_path / "scalars.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    records = report.history(tmp_path)
    assert [r["step"] for r in records] == [1, 2, 4] and records[1]["train/gen/loss"] == 1.5
    timings = report.stage_timings(records, ["flow", "full"], started=5.0)
    assert timings == [("flow", 15.0, 2.5), ("full", 10.0, 0.5)]
    assert report.loss_curves_png(records, {"flow": 0, "full": 3})[:8] == b"\x89PNG\r\n\x1a\n"


def test_lpips_column_when_both_weight_files_are_on_disk(
    tmp_path, monkeypatch, golden_dir, metrics_random_weights
):
    """The golden's LPIPS-alex weights written as the files users have: the summary's scorer finds them (trunk
    from config.summary.lpips_trunk, lin from the lpips package) and gives LPIPS per image."""
    torch = pytest.importorskip("torch")
    import jax.numpy as jnp

    from ptx.evaluate import lpips as L

    meta = json.loads((golden_dir / "metrics_lpips_alex.json").read_text())
    g = dict(np.load(golden_dir / "metrics_lpips_alex.npz"))
    trunk = metrics_random_weights.make_state_dict(
        meta["full_keys_and_shapes"], meta["trunk"]["base_seed"], skip=lambda k: not k.startswith("net.")
    )
    lin = {k.removeprefix("param/"): v for k, v in g.items() if k.startswith("param/lin")}
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in trunk.items()}, tmp_path / "trunk.pth")
    torch.save({k: torch.from_numpy(np.asarray(v)) for k, v in lin.items()}, tmp_path / "alex.pth")
    monkeypatch.setattr(L, "default_lin_path", lambda net: str(tmp_path / f"{net}.pth"))
    notes = []
    score = summary._lpips_scorer({"lpips_trunk": str(tmp_path / "trunk.pth")}, notes)
    assert score is not None and not notes
    a, b = _pairs(shape=(2, 64, 64, 3))
    params = L.convert(lin, trunk, "alex")
    want = L.LPIPS("alex").apply({"params": params}, jnp.asarray(a) / 127.5 - 1, jnp.asarray(b) / 127.5 - 1)
    np.testing.assert_allclose(score(a, b), np.asarray(want), rtol=1e-5)
    assert np.all(score(a, a) < 1e-6) and np.all(score(a, b) > 1e-3)
    missing = []
    assert summary._lpips_scorer({"lpips_trunk": str(tmp_path / "none.pth")}, missing) is None
    assert "none.pth" in missing[0]
