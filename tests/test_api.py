"""ptx.load / ptx.sample / Sampler.animate / the sample CLI, on GFLA's tiny variant with untrained weights."""

import importlib
import json

import numpy as np
import pytest
from PIL import Image

import ptx
from ptx import api
from ptx.data import poses

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def sampler():
    return api.load("gfla_fashion", "random", variant="tiny", batch_size=8)


def _photo(h=300, w=220, seed=0):
    yy, xx = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    return np.stack([yy * 0.7 + rng.uniform(0, 20), xx * 0.9, (yy + xx) * 0.4], -1).astype(np.uint8)


def _pose(dy=0.0):
    k = np.full((18, 2), -1.0, np.float32)
    k[[0, 1, 2, 5, 8, 11, 10, 13]] = [
        [50, 110],
        [80, 110],
        [82, 85],
        [82, 135],
        [160, 95],
        [160, 125],
        [270, 95],
        [270, 125],
    ]
    k[[4, 7]] = [[100 + dy, 60], [100 - dy, 160]]
    return k


def test_every_input_form_gives_the_same_image(sampler, tmp_path):
    photo = _photo()
    path = tmp_path / "photo.png"
    Image.fromarray(photo).save(path)
    src_json = tmp_path / "src.json"
    flat = np.concatenate([_pose()[:, ::-1], np.where(_pose()[:, :1] >= 0, 0.9, 0.0)], 1)
    src_json.write_text(json.dumps({"people": [{"pose_keypoints_2d": flat.ravel().tolist()}]}))
    k = _pose(30).astype(int)
    row = f"t.jpg:{json.dumps(k[:, 0].tolist())}:{json.dumps(k[:, 1].tolist())}"
    a = sampler(photo, k, src_pose=_pose())
    assert a.shape == (*sampler.image_size, 3) and a.dtype == np.uint8
    for src in (path, str(path), Image.fromarray(photo)):
        for pose in (k, row):
            for sp in (_pose(), src_json):
                np.testing.assert_array_equal(sampler(src, pose, src_pose=sp), a)
    assert sampler(photo, k, src_pose=_pose(), output="photo").shape == photo.shape


def test_batch_1_and_batch_8_agree_and_reuse_compiles(sampler):
    photo = _photo()
    image, src_kps, fr, _ = sampler.prepare_source(photo, _pose())
    targets = np.stack([fr.to_model(_pose(d)) for d in np.linspace(-30, 30, 8)])
    batch8 = sampler.generate(np.repeat(image[None], 8, 0), np.repeat(src_kps[None], 8, 0), targets)
    single = sampler.generate(image[None], src_kps[None], targets[3:4])
    assert np.abs(batch8[3].astype(int) - single[0]).max() <= 1
    before = sampler.compiles
    sampler.generate(np.repeat(image[None], 8, 0), np.repeat(src_kps[None], 8, 0), targets[::-1])
    sampler.generate(image[None], src_kps[None], targets[5:6])
    assert sampler.compiles == before, "a reused sampler recompiled"


def test_animate_writes_a_gif(sampler, tmp_path):
    frames = sampler.animate(
        _photo(), [_pose(d) for d in (-20, 0, 20)], src_pose=_pose(), path=tmp_path / "a.gif"
    )
    assert len(frames) == 3
    assert Image.open(tmp_path / "a.gif").n_frames == 3


@pytest.mark.parametrize(
    "pose,src_pose,match",
    [
        (np.zeros((17, 2)), _pose(), "shape"),
        (np.full((18, 2), np.nan), _pose(), "NaN"),
        (np.full((18, 2), -1.0), _pose(), "at least 2"),
        (_pose(), None, "src_pose is required"),
        (_pose(), np.full((18, 2), 500.0), "outside"),
    ],
)
def test_bad_inputs_are_explained(sampler, pose, src_pose, match):
    with pytest.raises((poses.PoseError, ValueError), match=match):
        sampler(_photo(), pose, src_pose=src_pose)


def test_bad_images_are_explained(sampler, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sampler(tmp_path / "none.jpg", _pose(), src_pose=_pose())
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        sampler(bad, _pose(), src_pose=_pose())
    with pytest.raises(ValueError, match="HxWx3"):
        sampler(np.zeros((4, 4, 5)), _pose(), src_pose=_pose())


def test_weights_round_trip_through_a_converted_directory(sampler, tmp_path):
    import jax

    from ptx.train import checkpoint

    checkpoint.save_params(tmp_path / "w", {p: v["params"] for p, v in sampler.variables.items()})
    variables, where = api.load_variables(tmp_path / "w")
    assert where == tmp_path / "w"
    want = {p: {"params": v["params"]} for p, v in sampler.variables.items()}
    assert jax.tree.structure(variables) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(want)):
        np.testing.assert_array_equal(a, b)


def test_missing_weights_and_unknown_model_are_explained(monkeypatch):
    monkeypatch.delenv(api.CHECKPOINT_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="python -m ptx.convert gfla"):
        api.load("gfla_fashion")
    with pytest.raises(ValueError, match="available"):
        api.load("nope_model", "random")
    assert "gfla_fashion" in ptx.list_models()


def test_cli_writes_image_and_animation(sampler, tmp_path, monkeypatch):
    sample_cli = importlib.import_module("ptx.sample")

    monkeypatch.setattr(api, "load", lambda *a, **k: sampler)
    Image.fromarray(_photo()).save(tmp_path / "p.png")
    np.save(tmp_path / "src.npy", _pose())
    (tmp_path / "poses").mkdir()
    for i, d in enumerate((-10, 10)):
        np.save(tmp_path / "poses" / f"{i}.npy", _pose(d))
    common = ["--checkpoint", "x", "--src", str(tmp_path / "p.png"), "--src-pose", str(tmp_path / "src.npy")]
    assert (
        sample_cli.main(
            [*common, "--pose", str(tmp_path / "poses" / "0.npy"), "--out", str(tmp_path / "o.png")]
        )
        == 0
    )
    assert Image.open(tmp_path / "o.png").size == sampler.image_size[::-1]
    assert (
        sample_cli.main([*common, "--poses", str(tmp_path / "poses"), "--out", str(tmp_path / "o.gif")]) == 0
    )
    assert Image.open(tmp_path / "o.gif").n_frames == 2


def test_source_encoded_once_matches_the_plain_forward(sampler):
    assert sampler._encode is not None  # GFLA can reuse its source features across poses
    image, src_kps, fr, _ = sampler.prepare_source(_photo(), _pose())
    targets = np.stack([fr.to_model(_pose(d)) for d in (-25, 5, 25)])
    reused = sampler.generate_poses(image, src_kps, targets)
    plain = sampler.generate(np.repeat(image[None], 3, 0), np.repeat(src_kps[None], 3, 0), targets)
    assert np.abs(reused.astype(int) - plain).max() <= 1


def test_rng_is_accepted_and_ignored_by_a_deterministic_method(sampler):
    # GFLA draws no noise: any rng gives the image of no rng; a bad rng is one clear error.
    import jax

    image, src_kps, fr, _ = sampler.prepare_source(_photo(), _pose())
    args = (image[None], src_kps[None], fr.to_model(_pose(10))[None])
    plain = sampler.generate(*args)
    np.testing.assert_array_equal(sampler.generate(*args, rng=7), plain)
    np.testing.assert_array_equal(sampler.generate(*args, rng=jax.random.key(8)), plain)
    np.testing.assert_array_equal(sampler.generate(*args, rng=jax.random.PRNGKey(9)), plain)
    with pytest.raises(TypeError, match="rng="):
        sampler.generate(*args, rng="seven")
    with pytest.raises(TypeError, match="rng="):
        sampler.generate(*args, rng=1.5)


def test_random_paper_sampler_needs_no_vgg_file():
    # The paper config demands the VGG19 file for training; sampling (even untrained) must not.
    sampler = api.sampler_for(api.model_config("gfla_fashion", "paper"), None)
    assert sampler.image_size == (256, 256)
    assert abs(sampler.frame_aspect - 256 / 176) < 1e-9


def test_a_training_workdir_loads_with_the_config_it_ran(tmp_path, tmp_path_factory):
    from train_fixtures import Recorder, cheap_compiles, shared_cache_dir, tiny_config

    from configs import common
    from ptx.train import logging as tlog
    from ptx.train import loop

    config = tiny_config(
        **{
            "stages": [common.stage("full", 1, ["gen", "disc"])],
            "mesh.shape": (1,),
            "ckpt.every_steps": 1,
            "log.tensorboard": False,
        }
    )
    tlog.write_config(config, tmp_path)  # as python -m ptx.main does
    with cheap_compiles(shared_cache_dir(tmp_path_factory)):
        loop.run(config, tmp_path, loader_factory=Recorder(config.data.image_size, config.data.batch_size))
    ran = api.run_config(tmp_path)  # config.json read back as the ConfigDict the run used
    assert ran == config and ran.stages[0].name == "full" and ran.data.image_size == (32, 16)
    sampler = ptx.load("toy_puppets", tmp_path)
    assert set(sampler.variables) == {"gen", "disc"}
    image = ptx.sample(_photo(), _pose(20), model="toy_puppets", checkpoint=tmp_path, src_pose=_pose())
    assert image.dtype == np.uint8 and image.shape == (32, 16, 3)
    with pytest.raises(api.CheckpointError, match="holds no weights|does not fit"):
        api.load("toy_puppets", tmp_path / "checkpoints" / "1" / "meta")


def test_sixteen_bit_and_animated_images(tmp_path):
    sixteen = tmp_path / "deep.png"
    Image.fromarray(np.full((6, 5), 32896, np.uint16)).save(sixteen)  # 32896 / 257 = 128
    arr = api.read_image(sixteen)
    assert arr.shape == (6, 5, 3) and np.all(arr == 128)  # scaled to 8 bits, not clipped to white
    assert np.all(api.read_image(np.full((2, 2, 3), 65535, np.uint16)) == 255)
    gif = tmp_path / "anim.gif"
    frames = [Image.fromarray(np.full((4, 4, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match="2 frames; using the first"):
        first = api.read_image(gif)
    assert abs(int(first.mean()) - 10) <= 2


def test_target_pose_far_outside_the_photo_is_refused(sampler):
    far = _pose() + np.float32(2000.0)
    with pytest.raises(ValueError, match="far outside"):
        sampler(_photo(), far, src_pose=_pose())


@pytest.fixture(scope="module")
def openpose_weights(golden_dir, tmp_path_factory):
    """The OpenPose golden's narrow random weights as a ptx.convert directory (what $PTX_OPENPOSE_WEIGHTS
    names), and the golden photo (a person)."""
    from ptx.convert import common
    from ptx.convert import openpose as convert_openpose
    from ptx.tools.check_golden import load_fixture

    arrays, _ = load_fixture(golden_dir / "openpose_body_small.npz")
    sd = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    cfg, players = convert_openpose.convert({"body": sd})
    out = common.write_converted(tmp_path_factory.mktemp("op") / "w", "openpose", cfg, players)
    photo = np.ascontiguousarray(arrays["input/image_bgr_uint8"][..., ::-1])
    return out, photo


def test_src_pose_auto_and_a_photo_as_pose(sampler, openpose_weights, monkeypatch, tmp_path):
    from ptx.pose import estimator

    weights, photo = openpose_weights
    monkeypatch.setenv("PTX_OPENPOSE_WEIGHTS", str(weights))
    kps = estimator.estimate_pose(photo)
    auto = sampler(photo, kps, src_pose="auto")
    np.testing.assert_array_equal(auto, sampler(photo, kps, src_pose=kps))
    by_photo = sampler(photo, photo, src_pose="auto")  # the target pose read off a photo
    assert by_photo.shape == auto.shape and by_photo.dtype == np.uint8
    sample_cli = importlib.import_module("ptx.sample")
    monkeypatch.setattr(api, "load", lambda *a, **k: sampler)
    Image.fromarray(photo).save(tmp_path / "p.png")
    args = ["--checkpoint", "x", "--src", str(tmp_path / "p.png"), "--src-pose", "auto"]
    assert sample_cli.main([*args, "--pose", str(tmp_path / "p.png"), "--out", str(tmp_path / "o.png")]) == 0
    assert Image.open(tmp_path / "o.png").size == sampler.image_size[::-1]


def test_cli_input_errors_are_one_line(sampler, tmp_path, monkeypatch, capsys):
    sample_cli = importlib.import_module("ptx.sample")
    monkeypatch.setattr(api, "load", lambda *a, **k: sampler)
    np.save(tmp_path / "src.npy", _pose())
    argv = [
        "--checkpoint",
        "x",
        "--src",
        str(tmp_path / "missing.jpg"),
        "--src-pose",
        str(tmp_path / "src.npy"),
    ]
    assert (
        sample_cli.main([*argv, "--pose", str(tmp_path / "src.npy"), "--out", str(tmp_path / "o.png")]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing.jpg" in err and "\n" not in err and "Traceback" not in err
