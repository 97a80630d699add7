"""ptx.pose: OpenPose body network, both reference pipelines, estimate_pose, the CSV tool and the overlay.

Parity: the network against ``openpose_body_small`` (recorded from pytorch-openpose), the resizes and the
post-processing against ``openpose_postprocess`` (recorded from pytorch-openpose and the py2 dataset scripts).
End to end, ``estimate_pose`` on the golden photo with the golden's narrow weights must give the keypoints of
the reference pipeline fed with the reference network's maps: at one scale (openpose mode: the recorded
outputs are exactly that scale's maps) and at the dataset scripts' four scales (maps from our PyTorch copy of
the network, itself checked against the golden).
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from ptx.convert import openpose as convert_openpose
from ptx.models.openpose import pipeline, postprocess, resize
from ptx.pose.estimator import PoseEstimator
from ptx.tools.check_golden import compare, load_fixture


@pytest.fixture(scope="module")
def body(golden_dir):
    arrays, meta = load_fixture(golden_dir / "openpose_body_small.npz")
    sd = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    cfg, players = convert_openpose.convert({"body": sd})
    return {"arrays": arrays, "sd": sd, "cfg": cfg, "variables": players["body"]}


@pytest.fixture(scope="module")
def photo(body):
    return np.ascontiguousarray(body["arrays"]["input/image_bgr_uint8"][..., ::-1])  # RGB, 184 x 128


@pytest.fixture(scope="module")
def estimators(body):
    return {m: PoseEstimator(body["cfg"], body["variables"], mode=m) for m in pipeline.MODES}


def _nhwc(x):
    return np.transpose(x[0], (1, 2, 0))


def test_network_golden_every_stage(body):
    report = compare(convert_openpose.run_golden(body["arrays"], {}))
    assert len(report) == 15  # paf, heatmap, 12 stage outputs, the pre-ReLU heatmap
    worst = max(r["rel"] for r in report.values())
    assert worst < 1e-4, report


def test_bucketed_network_equals_exact_size_at_floor_pooled_sizes(body, estimators):
    """A 60 x 44 image (pools floor: 60 -> 30 -> 15 -> 7) inside a 64 x 64 bucket, against the exact size."""
    rng = np.random.default_rng(0)
    image = rng.uniform(-0.5, 0.5, (60, 44, 3)).astype(np.float32)
    est = estimators["dataset"]
    bucketed = est.network(image)
    exact = PoseEstimator(body["cfg"], body["variables"], mode="dataset", bucket=None).network(image)
    for got, want in zip(bucketed, exact):
        assert got.shape == want.shape == (7, 5, got.shape[-1])
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_postprocess_golden(golden_dir):
    arrays, meta = load_fixture(golden_dir / "openpose_postprocess.npz")
    results = convert_openpose.run_golden(arrays, meta)
    assert len(results) == len([k for k in arrays if not (k.startswith("input/") or "/net_" in k)])
    for name, (got, want) in results.items():
        if np.issubdtype(np.asarray(want).dtype, np.integer) or name.endswith("subset"):
            assert np.shape(got) == np.shape(want), name
        if np.issubdtype(np.asarray(want).dtype, np.integer):
            np.testing.assert_array_equal(got, want, err_msg=name)
    report = compare(results)
    # the full-resolution and dataset paths are float64 like the references; the cv2 path is float32 there
    assert max(r["rel"] for n, r in report.items() if not n.startswith("e2e_pto")) < 1e-12, report
    assert max(r["rel"] for r in report.values()) < 1e-6, report


def test_estimate_pose_one_scale_matches_reference_maps(body, photo, estimators):
    """openpose mode on the 184 x 128 golden photo: scale 0.5 * 368 / 184 = 1, no resize, no padding, so the
    network input is the golden's input and the reference maps are the recorded outputs."""
    arrays, est = body["arrays"], estimators["openpose"]
    (item,) = pipeline.network_inputs(photo[..., ::-1], "openpose")
    np.testing.assert_array_equal(item.image, _nhwc(arrays["input/image"]))
    paf, heat = est.network(item.image)
    assert (
        np.abs(heat - _nhwc(arrays["output/heatmap"])).max() < 1e-4 * np.abs(arrays["output/heatmap"]).max()
    )
    reference = [(_nhwc(arrays["output/paf"]), _nhwc(arrays["output/heatmap"]))]
    ref_heat, ref_paf = pipeline.combine(reference, [item], photo.shape[:2], "openpose")
    ref_people = postprocess.find_people(ref_heat, ref_paf)
    got = est(photo)
    assert (got >= 0).sum() >= 4  # random weights still find a person: the comparison is not all -1
    np.testing.assert_array_equal(got, ref_people.best_keypoints())
    everyone = est.all(photo)
    assert len(everyone) == len(ref_people.subset) and np.array_equal(everyone[0], got)


def test_estimate_pose_four_scales_matches_reference_maps(body, photo, estimators):
    """dataset mode: multipliers 1, 2, 3, 4 (py2 integer division for 1 and 2) -> 184..736 px inputs; the
    reference maps come from our PyTorch network (checked against the golden here first)."""
    torch = pytest.importorskip("torch")
    from benchmarks.torch_reference.openpose import BodyPoseModel, run_nhwc

    torch.set_num_threads(1)
    arrays = body["arrays"]
    model = BodyPoseModel(dataclasses_replace(body["cfg"], heatmap_relu=False))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in body["sd"].items()})
    _, prerelu = run_nhwc(model, _nhwc(arrays["input/image"]))
    assert np.abs(prerelu - _nhwc(arrays["output/stage6_L2_prerelu"])).max() < 1e-4

    inputs = pipeline.network_inputs(photo[..., ::-1], "dataset")
    assert [i.factor for i in inputs] == [1.0, 2, 3.0, 4] and inputs[-1].image.shape[:2] == (736, 512)
    reference = [run_nhwc(model, item.image) for item in inputs]
    ref_heat, ref_paf = pipeline.combine(reference, inputs, photo.shape[:2], "dataset")
    heat, paf = estimators["dataset"].maps(photo)
    assert np.abs(heat - ref_heat).max() < 1e-4 * np.abs(ref_heat).max()
    assert np.abs(paf - ref_paf).max() < 1e-4 * np.abs(ref_paf).max()
    want = postprocess.find_people(ref_heat, ref_paf).best_keypoints()
    assert (want >= 0).sum() >= 4
    np.testing.assert_array_equal(postprocess.find_people(heat, paf).best_keypoints(), want)


def dataclasses_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


# ------------------------------------------------------------------------------------------------ geometry
def test_dataset_multipliers_are_python2s():
    assert [pipeline.dataset_multiplier(s, 256) for s in (0.5, 1, 1.5, 2)] == [0.71875, 1, 2.15625, 2]
    assert [pipeline.dataset_multiplier(s, 128) for s in (0.5, 1, 1.5, 2)] == [1.4375, 2, 4.3125, 5]
    assert pipeline.dataset_multiplier(1, 400) == 368 / 400  # the scripts' 0 would fail; true quotient
    sizes = [i.image.shape[:2] for i in pipeline.network_inputs(np.zeros((256, 176, 3), np.uint8), "dataset")]
    assert sizes == [(184, 126), (256, 176), (552, 379), (512, 352)]  # as recorded in openpose_postprocess


def test_openpose_geometry_rounds_half_to_even_and_pads_to_8():
    (item,) = pipeline.network_inputs(np.full((256, 176, 3), 7, np.uint8), "openpose")
    assert item.content_hw == (184, 126) and item.image.shape == (184, 128, 3)  # 126.5 -> 126, pad 2
    assert np.all(item.image[:, 126:] == 0)  # grey 128 / 256 - 0.5


def test_skimage_bilinear_matches_modern_skimage_constant_mode():
    transform = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(23, 15, 4))
    want = transform.resize(
        maps, (256, 176), order=1, mode="constant", preserve_range=True, anti_aliasing=False
    )
    assert np.abs(resize.skimage_resize(maps, (256, 176), order=1) - want).max() < 1e-7


def test_cv2_uint8_cubic_is_exact_integer_arithmetic():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (20, 14, 3), dtype=np.uint8)
    out = resize.cv2_cubic_resize(image, (29, 20), factor=1.4375)
    assert out.dtype == np.uint8 and out.shape == (29, 20, 3)
    flat = np.full((20, 14, 3), 77, np.uint8)
    assert np.all(resize.cv2_cubic_resize(flat, (29, 20), factor=1.4375) == 77)  # weights sum to 2048
    as_float = resize.cv2_cubic_resize(image.astype(np.float32), (29, 20), factor=1.4375)
    assert np.abs(out - np.clip(np.rint(as_float), 0, 255)).max() <= 1


def test_smoothing_all_channels_at_once_equals_per_channel():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    maps = rng.random((40, 30, 19))
    peaks = postprocess.find_peaks(maps)
    for j in (0, 7, 17):
        s = gaussian_filter(maps[..., j], sigma=3)
        pad = np.pad(s, 1)
        mask = (s >= pad[:-2, 1:-1]) & (s >= pad[2:, 1:-1]) & (s >= pad[1:-1, :-2]) & (s >= pad[1:-1, 2:])
        ys, xs = np.nonzero(mask & (s > 0.1))
        np.testing.assert_array_equal(peaks[j][:, :2], np.stack([xs, ys], -1))


# ------------------------------------------------------------------------------------------------ converter
def test_official_shaped_weights_convert_exactly(golden_dir):
    """Names and shapes of body_pose_model.pth (random values, no full-size run): the default Config, every
    tensor in place (conv layout transposed), and export gives the file back bit for bit."""
    keys = json.loads((golden_dir / "openpose_official_keys.json").read_text())
    rng = np.random.default_rng(0)
    shapes = dict(keys["state_dict"])
    sd = {
        file_key: rng.standard_normal(shapes[model_key], np.float32)
        for file_key, model_key in keys["pth_file_keys"]
    }
    cfg, players = convert_openpose.convert({"body": sd})
    assert cfg == convert_openpose.Config()
    params = players["body"]["params"]
    assert sum(v.size for p in params.values() for v in p.values()) == keys["n_parameters"]
    np.testing.assert_array_equal(
        params["Mconv7_stage6_L2"]["kernel"], sd["Mconv7_stage6_L2.weight"].transpose(2, 3, 1, 0)
    )
    back = convert_openpose.export(cfg, players)["body"]
    assert list(back) == list(sd) and all(np.array_equal(back[k], sd[k]) for k in sd)
    module_named = {model_key: sd[file_key] for file_key, model_key in keys["pth_file_keys"]}
    _, again = convert_openpose.convert({"body": module_named})
    assert all(np.array_equal(again["body"]["params"][n]["kernel"], p["kernel"]) for n, p in params.items())
    with pytest.raises(convert_openpose.ConversionError, match="stem_widths"):
        convert_openpose.convert({"body": sd}, cfg=convert_openpose.Config(stem_widths=(8,) * 12))
    del sd["conv5_5_CPM_L2.bias"]
    with pytest.raises(convert_openpose.ConversionError, match="conv5_5_CPM_L2.bias"):
        convert_openpose.convert({"body": sd})


def _write_h5(path, layers, *, whole_model=True):
    """A Keras-2 style .h5: layer groups with ``weight_names`` (``name/kernel:0``), weight-less layers too."""
    import h5py

    with h5py.File(path, "w") as f:
        g = f.create_group("model_weights") if whole_model else f
        g.attrs["layer_names"] = [n.encode() for n, _ in layers]
        for name, weights in layers:
            lg = g.create_group(name)
            lg.attrs["weight_names"] = [f"{name}/{w}".encode() for w in weights]
            for w, value in weights.items():
                lg.create_dataset(f"{name}/{w}", data=value)


def test_h5_with_original_layer_names_gives_the_pth_params(body, tmp_path):
    pytest.importorskip("h5py")
    sd = convert_openpose.canonical(body["sd"])
    convs = list(convert_openpose.conv_shapes(body["cfg"]))
    keras = {
        n: {"kernel:0": sd[f"{n}.weight"].transpose(2, 3, 1, 0), "bias:0": sd[f"{n}.bias"]} for n in convs
    }
    # Keras 2 lists layers by depth, so the two branches interleave; pools and concats hold no weights.
    order = [("input_1", {}), *[(n, keras[n]) for n in convs[:4]], ("pool1_1", {})]
    rest = convs[4:]
    order += [(n, keras[n]) for n in sorted(rest, key=lambda n: (n.endswith("L2"), rest.index(n)))]
    _write_h5(tmp_path / "pose_estimator.h5", order)
    want = body["variables"]["params"]
    got = convert_openpose.convert({"body": convert_openpose.load_weights(tmp_path / "pose_estimator.h5")})[1]
    assert got["body"]["params"].keys() == want.keys()
    for name, p in want.items():
        for leaf in ("kernel", "bias"):
            np.testing.assert_array_equal(got["body"]["params"][name][leaf], p[leaf])
    # Auto-named layers (conv2d_<creation number>) stored in another order map by their number.
    generic = [(f"conv2d_{i + 1}", keras[n]) for i, n in enumerate(convs)][::-1]
    _write_h5(tmp_path / "generic.h5", generic, whole_model=False)
    got = convert_openpose.convert({"body": convert_openpose.load_weights(tmp_path / "generic.h5")})[1]
    for name, p in want.items():
        np.testing.assert_array_equal(got["body"]["params"][name]["kernel"], p["kernel"])


# ------------------------------------------------------------------------------------------------ user API
@pytest.fixture(scope="module")
def pth_file(body, tmp_path_factory):
    torch = pytest.importorskip("torch")
    path = tmp_path_factory.mktemp("weights") / "body_pose_model.pth"
    flat = convert_openpose.canonical(body["sd"])
    torch.save({k: torch.from_numpy(v) for k, v in flat.items()}, path)
    return path


def test_missing_weights_is_one_line_naming_the_file(tmp_path, monkeypatch):
    from ptx.pose.estimator import find_weights

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PTX_OPENPOSE_WEIGHTS", raising=False)
    with pytest.raises(FileNotFoundError) as e:
        find_weights(tmp_path / "body_pose_model.pth")
    msg = str(e.value)
    assert "\n" not in msg and "body_pose_model.pth" in msg and "annotator/ckpts" in msg
    with pytest.raises(FileNotFoundError, match="PTX_OPENPOSE_WEIGHTS"):
        find_weights()
    monkeypatch.setenv("PTX_OPENPOSE_WEIGHTS", str(tmp_path / "gone.h5"))
    with pytest.raises(FileNotFoundError, match="gone.h5"):
        find_weights()


def test_estimate_pose_from_file_is_converted_once_and_cached(
    pth_file, photo, estimators, tmp_path, monkeypatch
):
    import ptx

    monkeypatch.setenv("PTX_CACHE_DIR", str(tmp_path / "cache"))
    want = estimators["openpose"](photo)
    np.testing.assert_array_equal(ptx.estimate_pose(photo, weights=pth_file, mode="openpose"), want)
    cached = list((tmp_path / "cache" / "openpose").glob("body_pose_model-*/ptx_convert.json"))
    assert len(cached) == 1
    from ptx.pose import estimator

    estimator._cached_estimator.cache_clear()
    monkeypatch.setattr(convert_openpose, "load_weights", lambda p: pytest.fail("converted twice"))
    monkeypatch.setenv("PTX_OPENPOSE_WEIGHTS", str(pth_file))
    people = ptx.estimate_poses(photo, mode="openpose")
    assert np.array_equal(people[0], want)


def test_import_ptx_stays_light():
    code = "import sys, ptx; assert callable(ptx.__getattr__); print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    import ptx

    assert "estimate_pose" in ptx.__all__ and "estimate_poses" in ptx.__all__


def test_cli_writes_the_originals_csv_and_resumes(pth_file, photo, estimators, tmp_path, monkeypatch):
    from PIL import Image

    from ptx.data.annotations import read_annotations
    from ptx.pose.__main__ import main

    monkeypatch.setenv("PTX_CACHE_DIR", str(tmp_path / "cache"))
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(photo).save(images / "a.png")
    Image.fromarray(photo[:, ::-1]).save(images / "b.png")
    (images / "notes.txt").write_text("not a photo")
    csv = tmp_path / "annotations.csv"
    args = ["--images", str(images), "--out", str(csv), "--weights", str(pth_file), "--mode", "openpose"]
    assert main([*args, "--show", str(tmp_path / "show")]) == 0
    lines = csv.read_text().splitlines()
    assert lines[0] == "name:keypoints_y:keypoints_x" and len(lines) == 3
    want = estimators["openpose"](photo).astype(int)
    assert lines[1] == f"a.png: {want[:, 0].tolist()}: {want[:, 1].tolist()}"
    table = read_annotations(csv)
    np.testing.assert_array_equal(table["a.png"], want)
    assert sorted(p.name for p in (tmp_path / "show").iterdir()) == ["a.png", "b.png"]
    assert main(args) == 0 and csv.read_text().splitlines() == lines  # nothing new: both names are done


def test_overlay_draws_present_joints_only(photo):
    from ptx.pose.draw import overlay_skeleton

    kps = np.full((18, 2), -1, np.float32)
    kps[1], kps[2] = (40, 60), (60, 40)  # neck -> right shoulder
    out = overlay_skeleton(photo, kps)
    assert out.shape == photo.shape and out.dtype == np.uint8
    changed = np.any(out != photo, axis=-1)
    assert changed[50, 50] and changed[40, 60] and not changed[150:].any()
    both = overlay_skeleton(photo, [kps, np.full((18, 2), -1)])
    np.testing.assert_array_equal(both, out)


def _synthetic_person(joints: dict[int, tuple[int, int]], hw=(96, 64)):
    """Heatmap blobs at the joints and unit PAFs along every limb whose two joints exist."""
    yy, xx = np.mgrid[: hw[0], : hw[1]].astype(np.float64)
    heat = np.zeros((*hw, 19))
    paf = np.zeros((*hw, 38))
    for j, (y, x) in joints.items():
        heat[..., j] = 0.9 * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 3.0**2))
    for (a, b), (cx, cy) in zip(postprocess.LIMB_JOINTS, postprocess.LIMB_PAF):
        if a in joints and b in joints:
            (ya, xa), (yb, xb) = joints[a], joints[b]
            length = np.hypot(yb - ya, xb - xa)
            uy, ux = (yb - ya) / length, (xb - xa) / length
            along = (yy - ya) * uy + (xx - xa) * ux
            across = np.abs((yy - ya) * ux - (xx - xa) * uy)
            near = (along >= -2) & (along <= length + 2) & (across <= 2)
            paf[..., cx] += near * ux
            paf[..., cy] += near * uy
    return heat, paf


def test_post_processing_finds_a_synthetic_person_and_skips_limbs_without_peaks():
    joints = {
        0: (10, 32), 1: (22, 32), 2: (22, 22), 3: (36, 20), 4: (50, 19), 5: (22, 42), 6: (36, 44),
        8: (50, 26), 9: (68, 26), 11: (50, 38), 12: (68, 38), 14: (8, 29), 15: (8, 35),
    }  # fmt: skip
    heat, paf = _synthetic_person(joints)
    people = postprocess.find_people(heat, paf)
    assert people.special_k == [5, 8, 11, 14, 16, 17, 18]  # limbs to LWrist, RAnkle, LAnkle and the ears
    assert len(people.subset) == 1 and people.subset[0, -1] == len(joints)
    want = np.full((18, 2), -1)
    for j, yx in joints.items():
        want[j] = yx
    np.testing.assert_array_equal(people.best_keypoints(), want)
    # Cut the neck-RShoulder PAF: the right arm becomes its own 3-joint row, and the filter drops it.
    paf[..., 12:14] = 0
    people = postprocess.find_people(heat, paf)
    assert len(people.subset) == 1 and people.best_keypoints()[2:5].max() == -1


def test_convert_cli_output_folder_serves_as_weights(pth_file, photo, estimators, tmp_path, capsys):
    from ptx.convert.__main__ import main as convert_main
    from ptx.pose.estimator import PoseEstimator

    assert convert_main(["openpose", "--weights", str(pth_file), "--out", str(tmp_path / "op")]) == 0
    assert "parameters" in capsys.readouterr().out
    est = PoseEstimator.from_file(tmp_path / "op", mode="openpose")
    np.testing.assert_array_equal(est(photo), estimators["openpose"](photo))
