"""TFDS builders from tiny manual directories in the originals' formats; bad input; interrupted builds."""

import io
import os
import sys

import numpy as np
import pytest
from data_fixtures import write_fashion, write_market, write_pairs
from PIL import Image

import data_builders
from data_builders import _common
from ptx.data.annotations import AnnotationError, DataFileError
from ptx.data.parsing import NO_REGION, UNLABELLED, merge_lip


def _records(builder, split):
    return builder.as_data_source(split=split)


def _check_against_manual(builder, man):
    meta = builder.info.metadata
    assert meta["frame"] == list(man.frame)
    for split in ("train", "test"):
        src = _records(builder, split)
        names = [r["name"].decode() for r in src]
        assert sorted(names) == sorted(man.images[split])  # each image once
        for rec in src:
            name = rec["name"].decode()
            with Image.open(man.images[split][name]) as im:
                np.testing.assert_array_equal(rec["image"], np.asarray(im.convert("RGB")))
            np.testing.assert_array_equal(rec["keypoints"], man.keypoints[split][name])
        table = meta["pairs"][split]
        pairs = [(names[a], names[b]) for a, b in zip(table["from"], table["to"])]
        assert pairs == man.pairs[split]


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    root = tmp_path_factory.mktemp("fashion")
    man = write_fashion(root / "manual", edges=True, parsing=True)
    return man, data_builders.build("deepfashion_pose", data_dir=root / "data", manual_dir=man.root)


def test_fashion_from_folders_with_edges_and_parsing(fashion):
    man, builder = fashion
    _check_against_manual(builder, man)
    meta = builder.info.metadata
    assert meta["has_edge"] and meta["has_parsing"]
    rec = _records(builder, "test")[0]
    name = rec["name"].decode()
    assert rec["identity"].decode() == name[: name.rfind("id0") + 10]
    edge_file = man.root / "trainE" / "diff" / name.replace(".jpg", ".png").replace("fashion", "")
    np.testing.assert_array_equal(rec["edge"][..., 0], np.asarray(Image.open(edge_file)))
    parsing = np.asarray(Image.open(man.root / "semantic_merge3" / (name[:-4] + ".png")))
    np.testing.assert_array_equal(rec["parsing"][..., 0], parsing)


def test_images_are_stored_once_as_the_files_bytes(fashion):
    man, builder = fashion
    src = builder.as_data_source(
        split="train", decoders={"image": __import__("tensorflow_datasets").decode.SkipDecoding()}
    )
    assert len(src) == len(man.images["train"]) < len(man.pairs["train"])
    rec = src[0]
    assert rec["image"] == man.images["train"][rec["name"].decode()].read_bytes()


def test_fashion_from_img_highres_tree_and_lst(tmp_path):
    man = write_fashion(tmp_path / "m", layout="highres", prefix="fashion-", image_size=(512, 352))
    # a name in neither list stays out; a non-.jpg line is skipped as the originals skip it
    extra = tmp_path / "m" / "img_highres" / "MEN" / "Denim" / "id_00000099" / "01_1_front.jpg"
    extra.parent.mkdir(parents=True)
    extra.write_bytes(man.images["train"][next(iter(man.images["train"]))].read_bytes())
    with open(tmp_path / "m" / "train.lst", "a") as f:
        f.write("readme.txt\n")
    builder = data_builders.build("deepfashion_pose", data_dir=tmp_path / "d", manual_dir=man.root)
    _check_against_manual(builder, man)
    assert _records(builder, "train")[0]["image"].shape == (512, 352, 3)  # stored at full resolution
    assert builder.info.metadata["skipped"]["train"] == {"lines of train.lst not ending in .jpg": 1}
    assert not builder.info.metadata["has_edge"]


def test_market_and_bounding_box_folders(tmp_path):
    man = write_market(tmp_path / "m")
    (man.root / "test").rename(man.root / "bounding_box_test")
    man.images["test"] = {n: man.root / "bounding_box_test" / n for n in man.images["test"]}
    builder = data_builders.build("market1501_pose", data_dir=tmp_path / "d", manual_dir=man.root)
    _check_against_manual(builder, man)
    assert _records(builder, "train")[0]["identity"].decode() == "0002"


def test_no_tensorflow_imported():
    assert "tensorflow" not in sys.modules


def _expect_failed_build(man, tmp_path, match, error=DataFileError):
    data_dir = tmp_path / "data"
    with pytest.raises(error, match=match) as e:
        data_builders.build("deepfashion_pose", data_dir=data_dir, manual_dir=man.root)
    builder = data_builders.get_builder("deepfashion_pose", data_dir=data_dir)
    assert not builder.is_prepared()
    assert not any((data_dir / "deepfashion_pose").glob("*/dataset_info.json"))
    assert not any(p.name.startswith("incomplete") for p in (data_dir / "deepfashion_pose").glob("*"))
    return str(e.value)


def _small(tmp_path, **kw):
    return write_fashion(tmp_path / "m", people=(1, 1), poses=2, **kw)


def _first(man, split="train"):
    return next(iter(man.images[split]))


def test_missing_csv(tmp_path):
    man = _small(tmp_path)
    (man.root / "fasion-annotation-test.csv").unlink()
    msg = _expect_failed_build(man, tmp_path, "annotation CSV for split 'test' not found")
    assert "fasion-annotation-test.csv" in msg


def test_missing_image_folder(tmp_path):
    man = _small(tmp_path)
    for f in (man.root / "test").iterdir():
        f.unlink()
    (man.root / "test").rmdir()
    _expect_failed_build(man, tmp_path, "images for split 'test' not found.*test")


@pytest.mark.parametrize(
    "line, match",
    [
        ("broken-row", "line 4: expected 3 ':'-separated fields"),
        ("x.jpg:[1, 2]:[3, 4]", "line 4.*expected 18 keypoints"),
    ],
)
def test_malformed_annotation_rows(tmp_path, line, match):
    man = _small(tmp_path)
    with open(man.root / "fasion-annotation-train.csv", "a") as f:
        f.write(line + "\n")
    msg = _expect_failed_build(man, tmp_path, match, AnnotationError)
    assert "fasion-annotation-train.csv" in msg


def test_truncated_image(tmp_path):
    man = _small(tmp_path)
    path = man.images["train"][_first(man)]
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    msg = _expect_failed_build(man, tmp_path, "unreadable or truncated image")
    assert str(path) in msg


@pytest.mark.parametrize("what", ["image", "parsing"])
def test_map_of_wrong_aspect(tmp_path, what):
    """256x176 and 256x256 (CASD's squashed copies) show the whole frame; a transposed 176x256 does not."""
    man = _small(tmp_path, parsing=True)
    name = _first(man, "test")
    if what == "image":
        path = man.images["test"][name]
        Image.fromarray(np.zeros((176, 256, 3), np.uint8)).save(path, format="JPEG")
    else:
        path = man.root / "semantic_merge3" / (name[:-4] + ".png")
        Image.fromarray(np.zeros((176, 256), np.uint8)).save(path)
    msg = _expect_failed_build(man, tmp_path, "is 176x256 .*expected 256x176 .* or 256x256 ")
    assert str(path) in msg


def test_casd_square_images_and_parsing(tmp_path):
    """CASD's files: 256x256 images in train_resize/ and test_resize/, 256x256 semantic_merge3 maps, CSVs in
    the usual 256x176 frame: they build as they are (keypoints stay in their frame, maps at their size)."""
    man = write_fashion(
        tmp_path / "m", people=(1, 1), poses=2, layout="resize", image_size=(256, 256), parsing=True,
        parsing_size=(256, 256), prefix="fashion-resize-",
    )  # fmt: skip
    builder = data_builders.build("deepfashion_pose", data_dir=tmp_path / "d", manual_dir=man.root)
    _check_against_manual(builder, man)
    assert builder.info.metadata["frame"] == [256, 176]
    rec = _records(builder, "train")[0]
    assert rec["image"].shape == (256, 256, 3) and rec["parsing"].shape == (256, 256, 1)
    parsing = np.asarray(Image.open(man.root / "semantic_merge3" / (rec["name"].decode()[:-4] + ".png")))
    np.testing.assert_array_equal(rec["parsing"][..., 0], parsing)


def test_csvs_in_a_square_keypoint_frame(tmp_path):
    """CSVs in 256x256 pixels fail with the file, the line and the option; with the option they build."""
    man = write_fashion(
        tmp_path / "m", people=(1, 1), poses=2, image_size=(256, 256), keypoint_frame=(256, 256)
    )
    msg = _expect_failed_build(
        man, tmp_path, r"fasion-annotation-train.csv line \d+: joint \d+ \(\w+\) at \(y, x\) = .* outside the "
        r"256x176 keypoint frame .*--keypoint_frame 256x256", AnnotationError,
    )  # fmt: skip
    assert "x in 0..175" in msg
    builder = data_builders.build(
        "deepfashion_pose", data_dir=tmp_path / "d", manual_dir=man.root, keypoint_frame=(256, 256)
    )
    _check_against_manual(builder, man)
    assert builder.info.metadata["frame"] == [256, 256]
    with pytest.raises(DataFileError, match="built with the keypoint frame 256x256, not 512x352"):
        data_builders.build(
            "deepfashion_pose", data_dir=tmp_path / "d", manual_dir=man.root, keypoint_frame=(512, 352)
        )
    with pytest.raises(ValueError, match="keypoint_frame 256x100 does not have the aspect"):
        data_builders.get_builder("deepfashion_pose", data_dir=tmp_path / "e", keypoint_frame=(256, 100))


def test_pair_naming_unknown_image(tmp_path):
    man = _small(tmp_path)
    with open(man.root / "fasion-pairs-train.csv", "a") as f:
        f.write(f"2,{_first(man)},nobody.jpg\n")
    _expect_failed_build(man, tmp_path, "fasion-pairs-train.csv line 4: .*'nobody.jpg', which has no row in")


def test_pair_naming_annotated_image_missing_from_folder(tmp_path):
    man = _small(tmp_path)
    name = _first(man)
    man.images["train"][name].unlink()
    _expect_failed_build(man, tmp_path, f"line 2: .*{name}.*which is not in")


def test_missing_edge_file(tmp_path):
    man = _small(tmp_path, edges=True)
    edge = man.root / "trainE" / "diff" / _first(man, "test").replace(".jpg", ".png").replace("fashion", "")
    edge.unlink()
    _expect_failed_build(man, tmp_path, f"edge map not found: expected the file .*{edge.name}")


def test_skipped_items_are_counted(tmp_path):
    man = _small(tmp_path, parsing=True)
    with open(man.root / "fasion-annotation-train.csv", "a") as f:
        f.write("ghost.jpg:" + ":".join(["[" + ", ".join(["-1"] * 18) + "]"] * 2) + "\n")
    path = man.root / "semantic_merge3" / (_first(man, "test")[:-4] + ".png")
    labels = np.asarray(Image.open(path)).copy()
    labels[:3, :5] = 30  # labels a parser may leave besides LIP's 0..19: CASD puts them in no region
    labels[10, 10] = 200
    Image.fromarray(labels).save(path)
    builder = data_builders.build("deepfashion_pose", data_dir=tmp_path / "d", manual_dir=man.root)
    skipped = builder.info.metadata["skipped"]
    assert skipped["train"] == {"annotated images not in the image folder and in no pair": 1}
    assert skipped["test"] == {_common.OUT_OF_RANGE_MAPS: 1, _common.OUT_OF_RANGE_PIXELS: 16}
    # reread from disk: the tallies are part of the dataset
    again = data_builders.get_builder("deepfashion_pose", data_dir=tmp_path / "d")
    assert again.info.metadata["skipped"] == skipped
    test = {r["name"].decode(): r for r in _records(again, "test")}
    stored = test[_first(man, "test")]["parsing"][..., 0]
    np.testing.assert_array_equal(stored, np.where(labels >= 20, UNLABELLED, labels))
    assert np.all(merge_lip(stored)[labels >= 20] == NO_REGION)


def test_interrupted_build_never_reads_as_complete(tmp_path, monkeypatch):
    man = _small(tmp_path)
    calls = []
    original = _common.read_person_image

    def dying(path, shapes):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed mid-build")
        return original(path, shapes)

    monkeypatch.setattr(_common, "read_person_image", dying)
    _expect_failed_build(man, tmp_path, "killed mid-build", KeyboardInterrupt)
    monkeypatch.setattr(_common, "read_person_image", original)
    builder = data_builders.build("deepfashion_pose", data_dir=tmp_path / "data", manual_dir=man.root)
    assert builder.is_prepared() and len(_records(builder, "train")) == 2


def test_puppets_tiny(tmp_path):
    pytest.importorskip("ptx.data.puppets")
    builder = data_builders.build("puppets", data_dir=tmp_path, config="market_tiny")
    meta = builder.info.metadata
    n_train, n_test, poses = data_builders.puppets.SIZES["tiny"]
    train, test = _records(builder, "train"), _records(builder, "test")
    assert len(train) == n_train * poses and len(test) == n_test * poses
    rec = train[0]
    assert rec["image"].shape == (128, 64, 3) and rec["edge"].shape == (128, 64, 1)
    assert rec["parsing"].shape == (128, 64, 1) and rec["parsing"].max() < 20
    ids = {split: {r["identity"].decode() for r in src} for split, src in (("train", train), ("test", test))}
    assert len(ids["train"]) == n_train and not ids["train"] & ids["test"]
    table = meta["pairs"]["train"]
    assert len(table["from"]) == n_train * poses * (poses - 1)
    for a, b in zip(table["from"], table["to"]):
        assert a != b and train[a]["identity"] == train[b]["identity"]
    assert meta["has_edge"] and meta["has_parsing"]
    jpeg = io.BytesIO()
    Image.fromarray(rec["image"]).save(jpeg, format="PNG")  # decodable, plain uint8 image


def test_killed_build_process_leaves_nothing_that_reads_as_complete(tmp_path):
    """SIGKILL mid-build (no Python cleanup runs): the leftover is an 'incomplete' folder, never the dataset."""
    import os
    import signal
    import subprocess
    import time

    man = _small(tmp_path)
    data_dir = tmp_path / "data"
    script = (
        "import time, data_builders\n"
        "from data_builders import _common\n"
        "orig = _common.read_person_image\n"
        "def slow(p, f):\n"
        "    print('writing', flush=True); time.sleep(60); return orig(p, f)\n"
        "_common.read_person_image = slow\n"
        f"data_builders.build('deepfashion_pose', data_dir={str(data_dir)!r}, manual_dir={str(man.root)!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        while (line := proc.stdout.readline()) and line.strip() != b"writing":
            pass
        assert line.strip() == b"writing"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.1)
    leftovers = list((data_dir / "deepfashion_pose").glob("*"))
    assert leftovers and all("incomplete" in p.name for p in leftovers)
    assert not data_builders.get_builder("deepfashion_pose", data_dir=data_dir).is_prepared()
    builder = data_builders.build("deepfashion_pose", data_dir=data_dir, manual_dir=man.root)
    assert builder.is_prepared() and len(_records(builder, "test")) == 2
    # The successful re-run removed the killed build's debris.
    assert not [p for p in (data_dir / "deepfashion_pose").rglob("incomplete*")]


def test_duplicate_and_self_pairs_are_counted_and_no_pairs_is_an_error(tmp_path):
    man = _small(tmp_path)
    a, b = list(man.images["train"])[:2]
    write_pairs(man.root / "fasion-pairs-train.csv", [(a, b), (a, b), (b, b)])
    builder = data_builders.build("deepfashion_pose", data_dir=tmp_path / "d", manual_dir=man.root)
    skipped = builder.info.metadata["skipped"]["train"]
    assert skipped[_common.DUPLICATE_PAIRS] == 1 and skipped[_common.SELF_PAIRS] == 1
    write_pairs(man.root / "fasion-pairs-test.csv", [])
    msg = _expect_failed_build(man, tmp_path / "again", "no pairs")
    assert "fasion-pairs-test.csv" in msg


def test_changed_sources_are_not_silently_reused(tmp_path):
    man = _small(tmp_path)
    data_builders.build("deepfashion_pose", data_dir=tmp_path / "d", manual_dir=man.root)
    data_builders.build(
        "deepfashion_pose", data_dir=tmp_path / "d", manual_dir=man.root
    )  # same files: reused
    path = man.images["train"][_first(man)]
    path.write_bytes(path.read_bytes())  # a newer file
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(DataFileError, match="other versions of the files"):
        data_builders.build("deepfashion_pose", data_dir=tmp_path / "d", manual_dir=man.root)


def test_command_line(tmp_path, capsys):
    from data_builders.__main__ import main

    man = write_market(tmp_path / "m", people=(1, 1), poses=2)
    assert main(["market1501_pose", "--data_dir", str(tmp_path / "d"), "--manual_dir", str(man.root)]) == 0
    out = capsys.readouterr().out
    assert "market1501_pose/train: 2 images, 2 pairs" in out and "keypoint frame: 128x64" in out
    args = ["market1501_pose", "--data_dir", str(tmp_path / "d3"), "--manual_dir", str(man.root)]
    assert main([*args, "--keypoint_frame", "256x256"]) == 1
    assert (
        "keypoint_frame 256x256 does not have the aspect of the dataset's images (128x64)"
        in capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        main([*args, "--keypoint_frame", "big"])
    assert "expected HxW" in capsys.readouterr().err
    (man.root / "market-pairs-test.csv").unlink()
    assert main(["market1501_pose", "--data_dir", str(tmp_path / "d2"), "--manual_dir", str(man.root)]) == 1
    assert "market-pairs-test.csv" in capsys.readouterr().err
