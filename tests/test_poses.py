"""Pose inputs: every accepted form, every rejected one, and the photo framing round trip."""

import json

import numpy as np
import pytest

from ptx.data import framing, poses
from ptx.data.video import write_animation


def _pose():
    k = np.full((18, 2), -1.0, np.float32)
    k[0], k[1], k[2], k[5], k[10], k[13] = [40, 88], [60, 88], [62, 70], [62, 106], [220, 80], [221, 96]
    return k


def test_array_roundtrip_and_missing_marker():
    k = poses.read_pose(_pose(), frame=(256, 176))
    assert k.shape == (18, 2) and k.dtype == np.float32
    assert np.all(k[3] == -1)


def test_csv_row_and_file(tmp_path):
    k = _pose().astype(int)
    row = f"img.jpg:{json.dumps(k[:, 0].tolist())}:{json.dumps(k[:, 1].tolist())}"
    np.testing.assert_array_equal(poses.read_pose(row), k)
    f = tmp_path / "one.csv"
    f.write_text("name:keypoints_y:keypoints_x\n" + row + "\n")
    np.testing.assert_array_equal(poses.read_pose(f), k)


@pytest.mark.parametrize("n_joints", [18, 25])
def test_openpose_json_coco18_and_body25(tmp_path, n_joints):
    k = _pose()
    joints = np.zeros((n_joints, 3))
    coco_idx = range(18) if n_joints == 18 else poses.BODY25_TO_COCO18
    for j, src in enumerate(coco_idx):
        if k[j, 0] >= 0:
            joints[src] = [k[j, 1], k[j, 0], 0.9]
    f = tmp_path / "p_keypoints.json"
    f.write_text(json.dumps({"people": [{"pose_keypoints_2d": joints.ravel().tolist()}]}))
    np.testing.assert_allclose(poses.read_pose(f), k)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((17, 2)), "shape"),
        (np.full((18, 2), np.nan), "NaN"),
        (np.full((18, 2), -1.0), "at least 2"),
        ("name:[1,2]:[3]", "18 integers"),
        ("name:[1,2", "3 ':'-separated|JSON"),
    ],
)
def test_bad_poses_are_explained(bad, match):
    with pytest.raises(poses.PoseError, match=match):
        poses.read_pose(bad)


def test_out_of_frame_and_missing_file(tmp_path):
    with pytest.raises(poses.PoseError, match="outside the 100x176 image"):
        poses.read_pose(_pose(), frame=(100, 176))
    with pytest.raises(poses.PoseError, match="does not exist"):
        poses.read_pose(tmp_path / "nope.json")
    empty = tmp_path / "e.json"
    empty.write_text('{"people": []}')
    with pytest.raises(poses.PoseError, match="no 'people'"):
        poses.read_pose(empty)


def test_framing_maps_pixels_and_keypoints_consistently():
    yy, xx = np.mgrid[0:300, 0:500]
    photo = np.stack([yy * 0.8, xx * 0.5, (yy + xx) * 0.3], -1).astype(np.uint8)
    k = np.full((18, 2), -1.0, np.float32)
    k[0], k[1], k[10], k[13] = [60, 250], [90, 250], [260, 240], [262, 270]
    img, km, fr = framing.fit_to_frame(photo, k, (256, 176))
    assert img.shape == (256, 176, 3)
    np.testing.assert_allclose(fr.to_photo(km)[k[:, 0] >= 0], k[k[:, 0] >= 0], atol=1e-3)
    for j in (0, 1, 10):
        y, x = np.round(km[j]).astype(int)
        assert np.abs(img[y, x].astype(int) - photo[int(k[j, 0]), int(k[j, 1])]).max() <= 2
    back = framing.paste_back(img, fr, photo)
    assert back.shape == photo.shape
    assert np.abs(back[80:200, 200:300].astype(int) - photo[80:200, 200:300]).max() <= 2


def test_framing_keeps_a_dataset_image_as_a_plain_resize():
    photo = np.zeros((256, 176, 3), np.uint8)
    k = _pose()
    k[0] = [5, 88]
    k[10] = [250, 80]
    img, km, fr = framing.fit_to_frame(photo, k, (256, 256), aspect=256 / 176)
    assert fr.box == (0.0, 0.0, 256.0, 176.0)
    np.testing.assert_allclose(km[0], [5, 88 * 256 / 176], rtol=1e-6)


def test_gif_writer(tmp_path):
    frames = [np.full((8, 6, 3), i * 40, np.uint8) for i in range(4)]
    p = write_animation(frames, tmp_path / "a.gif", fps=5)
    from PIL import Image

    assert Image.open(p).n_frames == 4
    with pytest.raises(ValueError, match="unknown format"):
        write_animation(frames, tmp_path / "a.xyz")
