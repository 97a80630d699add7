"""grain pair pipeline: Batch contract, resize scaling, flips, seeded order, resume, sharding, puppets auto-build."""

import sys

import numpy as np
import pytest
from data_fixtures import write_fashion, write_market
from PIL import Image

import data_builders
from ptx.data import pipeline
from ptx.data.keypoints import flip_keypoints
from ptx.data.parsing import LIP_FLIP_PERM


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    man = write_fashion(root / "manual", people=(3, 2), poses=3, edges=True, parsing=True)
    data_builders.build("deepfashion_pose", data_dir=root / "data", manual_dir=man.root)
    return man, str(root / "data")


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """Small images for the tests about order (shuffle, resume, shards): 18 train pairs."""
    root = tmp_path_factory.mktemp("pipe_market")
    man = write_market(root / "manual", people=(3, 1), poses=3)
    data_builders.build("market1501_pose", data_dir=root / "data", manual_dir=man.root)
    return man, str(root / "data")


def _cfg(data_dir, name="deepfashion_pose", **kw):
    kw.setdefault("names", True)
    return pipeline.default_data_config(name, "", data_dir=data_dir, **kw)


def _take(loader, n):
    it = iter(loader)
    return [next(it) for _ in range(n)]


def _by_name(man):
    return {n: p for split in man.images.values() for n, p in split.items()}, {
        n: k for split in man.keypoints.values() for n, k in split.items()
    }


def test_batch_contract_at_the_dataset_frame(data):
    man, data_dir = data
    (batch,) = _take(
        pipeline.make_loader(_cfg(data_dir, edges=True, parsing=True), split="train", batch_size=4, seed=0), 1
    )
    for role in ("source", "target"):
        assert batch[f"{role}_image"].shape == (4, 256, 176, 3) and batch[f"{role}_image"].dtype == np.uint8
        assert (
            batch[f"{role}_keypoints"].shape == (4, 18, 2) and batch[f"{role}_keypoints"].dtype == np.float32
        )
        assert batch[f"{role}_edge"].shape == (4, 256, 176) and batch[f"{role}_edge"].dtype == np.uint8
        assert batch[f"{role}_parsing"].shape == (4, 256, 176) and batch[f"{role}_parsing"].dtype == np.uint8
    files, kps = _by_name(man)
    pairs = set(man.pairs["train"])
    for i in range(4):
        src, dst = batch["source_name"][i], batch["target_name"][i]
        assert (src, dst) in pairs
        np.testing.assert_array_equal(
            batch["source_image"][i], np.asarray(Image.open(files[src]).convert("RGB"))
        )
        np.testing.assert_array_equal(batch["target_keypoints"][i], kps[dst])
        parsing = np.asarray(Image.open(man.root / "semantic_merge3" / (src[:-4] + ".png")))
        np.testing.assert_array_equal(batch["source_parsing"][i], parsing)


def test_resize_to_256x256_scales_keypoints(data):
    man, data_dir = data
    cfg = _cfg(data_dir, image_size=(256, 256), edges=True)
    (batch,) = _take(pipeline.make_loader(cfg, split="test", batch_size=3, seed=1), 1)
    files, kps = _by_name(man)
    for i in range(3):
        name = batch["source_name"][i]
        want = np.asarray(Image.open(files[name]).convert("RGB").resize((256, 256), Image.BILINEAR))
        np.testing.assert_array_equal(batch["source_image"][i], want)
        k, got = kps[name], batch["source_keypoints"][i]
        present = k[:, 0] >= 0
        np.testing.assert_allclose(got[present], k[present] * np.array([1.0, 256 / 176]), rtol=1e-6)
        assert np.all(got[~present] == -1)
        edge_file = man.root / "trainE" / "diff" / name.replace(".jpg", ".png").replace("fashion", "")
        want_edge = np.asarray(Image.open(edge_file).resize((256, 256), Image.NEAREST))
        np.testing.assert_array_equal(batch["source_edge"][i], want_edge)


def test_casd_square_files_at_256x256_and_at_the_frame(tmp_path):
    """CASD's 256x256 images and parsing with CSVs in the 256x176 frame: at 256x256 the batch holds the files
    as they are and keypoints scaled x * 256/176; at the frame, parsing is resized once, nearest neighbour."""
    man = write_fashion(
        tmp_path / "m", people=(1, 1), poses=2, layout="resize", image_size=(256, 256), parsing=True,
        parsing_size=(256, 256),
    )  # fmt: skip
    data_builders.build("deepfashion_pose", data_dir=tmp_path / "d", manual_dir=man.root)
    files, kps = _by_name(man)
    for size in ((256, 256), None):
        cfg = _cfg(str(tmp_path / "d"), image_size=size, parsing=True)
        (batch,) = _take(pipeline.make_loader(cfg, split="train", batch_size=2, seed=0), 1)
        for i in range(2):
            name = batch["source_name"][i]
            image = Image.open(files[name]).convert("RGB")
            parsing = Image.open(man.root / "semantic_merge3" / (name[:-4] + ".png"))
            k, got = kps[name], batch["source_keypoints"][i]
            if size is None:  # the keypoints' frame
                image, parsing = (
                    image.resize((176, 256), Image.BILINEAR),
                    parsing.resize((176, 256), Image.NEAREST),
                )
                np.testing.assert_array_equal(got, k)
            else:
                present = k[:, 0] >= 0
                np.testing.assert_allclose(got[present], k[present] * np.array([1.0, 256 / 176]), rtol=1e-6)
            np.testing.assert_array_equal(batch["source_image"][i], np.asarray(image))
            np.testing.assert_array_equal(batch["source_parsing"][i], np.asarray(parsing))


def test_square_keypoint_frame(tmp_path):
    man = write_fashion(
        tmp_path / "m", people=(1, 1), poses=2, image_size=(256, 256), keypoint_frame=(256, 256)
    )
    data_builders.build(
        "deepfashion_pose", data_dir=tmp_path / "d", manual_dir=man.root, keypoint_frame=(256, 256)
    )
    (batch,) = _take(pipeline.make_loader(_cfg(str(tmp_path / "d")), split="test", batch_size=2, seed=0), 1)
    files, kps = _by_name(man)
    assert batch["source_image"].shape == (2, 256, 256, 3)
    for i in range(2):
        np.testing.assert_array_equal(batch["target_keypoints"][i], kps[batch["target_name"][i]])


def test_flip_mirrors_images_and_swaps_keypoints(data):
    _, data_dir = data
    plain = _take(
        pipeline.make_loader(_cfg(data_dir, edges=True, parsing=True), split="train", batch_size=5, seed=3), 2
    )
    flipped = _take(
        pipeline.make_loader(
            _cfg(data_dir, edges=True, parsing=True, flip=True), split="train", batch_size=5, seed=3
        ),
        2,
    )
    seen = set()
    for a, b in zip(plain, flipped):
        np.testing.assert_array_equal(
            a["source_name"], b["source_name"]
        )  # flipping does not change the order
        for i in range(5):
            is_flipped = not np.array_equal(a["source_image"][i], b["source_image"][i])
            seen.add(is_flipped)
            for role in ("source", "target"):
                img, kps = a[f"{role}_image"][i], a[f"{role}_keypoints"][i]
                edge, parsing = a[f"{role}_edge"][i], a[f"{role}_parsing"][i]
                if is_flipped:
                    img, kps, edge = img[:, ::-1], flip_keypoints(kps, 176), edge[:, ::-1]
                    parsing = LIP_FLIP_PERM[parsing[:, ::-1]]
                np.testing.assert_array_equal(b[f"{role}_image"][i], img)
                np.testing.assert_array_equal(b[f"{role}_keypoints"][i], kps)
                np.testing.assert_array_equal(b[f"{role}_edge"][i], edge)
                np.testing.assert_array_equal(b[f"{role}_parsing"][i], parsing)
    assert seen == {True, False}


def _order(loader, n):
    return [(s, t) for b in _take(loader, n) for s, t in zip(b["source_name"], b["target_name"])]


def test_seeded_shuffle(market):
    man, data_dir = market
    cfg = _cfg(data_dir, "market1501_pose")
    a = _order(pipeline.make_loader(cfg, split="train", batch_size=6, seed=7), 3)
    assert a == _order(pipeline.make_loader(cfg, split="train", batch_size=6, seed=7), 3)
    assert a != _order(pipeline.make_loader(cfg, split="train", batch_size=6, seed=8), 3)
    assert sorted(a) == sorted(man.pairs["train"])  # one epoch = every pair once
    ordered = _order(
        pipeline.make_loader(cfg, split="train", batch_size=6, seed=7, shuffle=False, num_epochs=1), 3
    )
    assert ordered == man.pairs["train"]


def test_resume_continues_with_exactly_the_next_batch(market):
    _, data_dir = market
    cfg = _cfg(data_dir, "market1501_pose", flip=True)
    loader = pipeline.make_loader(cfg, split="train", batch_size=4, seed=5)
    it = iter(loader)
    for _ in range(5):  # crosses an epoch boundary (18 pairs)
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(4)]
    resumed = iter(pipeline.make_loader(cfg, split="train", batch_size=4, seed=5))
    resumed.set_state(state)
    for want in expected:
        got = next(resumed)
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])


def test_shards_are_disjoint(market):
    man, data_dir = market
    cfg = _cfg(data_dir, "market1501_pose")
    shards = [
        _order(
            pipeline.make_loader(
                cfg, split="train", batch_size=3, seed=2, num_epochs=1, shard_index=i, shard_count=2
            ),
            3,
        )
        for i in range(2)
    ]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == sorted(man.pairs["train"])
    with pytest.raises(StopIteration):
        _take(pipeline.make_loader(cfg, split="train", batch_size=3, seed=2, num_epochs=1, shard_count=2), 4)


def test_helpful_errors(data, tmp_path):
    _, data_dir = data
    with pytest.raises(FileNotFoundError, match="python -m data_builders market1501_pose --manual_dir"):
        pipeline.make_loader(
            pipeline.default_data_config("market1501_pose", "", data_dir=str(tmp_path)),
            split="train",
            batch_size=2,
            seed=0,
        )
    with pytest.raises(ValueError, match="no split 'val'"):
        pipeline.make_loader(_cfg(data_dir), split="val", batch_size=2, seed=0)
    with pytest.raises(ValueError, match="has no config 'fashion_huge'"):
        pipeline.make_loader(
            pipeline.default_data_config("puppets", "fashion_huge", data_dir=str(tmp_path)),
            split="train",
            batch_size=2,
            seed=0,
        )


def test_asking_for_edges_the_dataset_lacks(tmp_path):
    man = write_fashion(tmp_path / "m", people=(1, 1), poses=2)
    data_builders.build("deepfashion_pose", data_dir=tmp_path / "d", manual_dir=man.root)
    with pytest.raises(ValueError, match="asks for edges .* built without them"):
        pipeline.make_loader(_cfg(str(tmp_path / "d"), edges=True), split="train", batch_size=1, seed=0)


def test_puppets_are_built_on_first_use(tmp_path, capsys):
    pytest.importorskip("ptx.data.puppets")
    cfg = pipeline.default_data_config(
        "puppets", "fashion_tiny", data_dir=str(tmp_path), edges=True, parsing=True
    )
    (batch,) = _take(pipeline.make_loader(cfg, split="train", batch_size=2, seed=0), 1)
    assert "building puppets/fashion_tiny" in capsys.readouterr().err
    assert batch["source_image"].shape == (2, 256, 176, 3) and batch["target_edge"].shape == (2, 256, 176)
    _take(pipeline.make_loader(cfg, split="test", batch_size=2, seed=0), 1)
    assert "building" not in capsys.readouterr().err  # reused


def _has_rsho(view):
    """Target has its right shoulder."""
    return bool(view["target_keypoints"][2, 0] >= 0)


def _expected_rsho_pairs(man):
    kps = {n: k for n, k in man.keypoints["train"].items()}
    return [(s, t) for s, t in man.pairs["train"] if kps[t][2, 0] >= 0]


def test_pair_filter_runs_before_shuffling_and_sharding(market, capsys):
    man, data_dir = market
    cfg = _cfg(data_dir, "market1501_pose", image_size=(64, 32))
    want = _expected_rsho_pairs(man)
    assert 0 < len(want) < len(man.pairs["train"])  # the fixture has pairs to drop and to keep
    seen = []

    def spy(view):
        seen.append(view)
        return _has_rsho(view)

    spy.__doc__ = _has_rsho.__doc__
    loader = pipeline.make_loader(
        cfg, split="train", batch_size=1, seed=0, shuffle=False, num_epochs=1, pair_filter=spy
    )
    dropped = len(man.pairs["train"]) - len(want)
    msg = f"kept {len(want)} of {len(man.pairs['train'])} pairs (dropped {dropped}: Target has its right shoulder.)"
    assert msg in capsys.readouterr().err
    assert _order(loader, len(want)) == want  # the kept pairs, in their order, each once per epoch
    # the filter saw names and keypoints (in pixels of the batch images, read-only), no image
    assert len(seen) == len(man.pairs["train"]) and set(seen[0]) == {
        "source_name", "target_name", "source_keypoints", "target_keypoints",
    }  # fmt: skip
    first = seen[0]
    assert (first["source_name"], first["target_name"]) == man.pairs["train"][0]
    k = man.keypoints["train"][first["target_name"]]
    np.testing.assert_array_equal(first["target_keypoints"], np.where(k == -1, -1, k * 0.5))
    with pytest.raises(ValueError, match="read-only"):
        first["source_keypoints"][0, 0] = 3
    # shards split the filtered list; only shard 0 reports
    shards = [
        _order(
            pipeline.make_loader(
                cfg, split="train", batch_size=1, seed=4, num_epochs=1, shard_index=i, shard_count=2,
                pair_filter=_has_rsho,
            ),
            len(want) // 2,
        )
        for i in range(2)
    ]  # fmt: skip
    assert len(want) % 2 == 0 and not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == sorted(want)
    assert capsys.readouterr().err.count("kept ") == 1


def test_pair_filter_keeping_nothing_names_the_split(market):
    _, data_dir = market
    with pytest.raises(
        ValueError, match="pair filter \\(<lambda>\\) keeps none of the 18 pairs of split 'train'"
    ):
        pipeline.make_loader(
            _cfg(data_dir, "market1501_pose"),
            split="train",
            batch_size=1,
            seed=0,
            pair_filter=lambda v: False,
        )


def _parts(pair):
    """A Def-GAN-like host transform: per-pair arrays from the (flipped) keypoints, deterministic."""
    kps = pair["target_keypoints"]
    h, w = pair["target_image"].shape[:2]
    affine = np.zeros((10, 2, 3), np.float32)
    affine[:, 0, 0] = affine[:, 1, 1] = 1
    affine[:, :, 2] = kps[:10] - pair["source_keypoints"][:10]
    mask = np.zeros((10, h, w), np.float32)
    for i, (y, x) in enumerate(kps[:10]):
        if y >= 0:
            mask[i, max(0, int(y) - 2) : int(y) + 2, max(0, int(x) - 2) : int(x) + 2] = 1
    return {"affine": affine, "source_mask": mask, "target_keypoints": kps + 0}  # adds two, replaces one


def test_host_transform_fields_arrive_batched(market):
    _, data_dir = market
    cfg = _cfg(data_dir, "market1501_pose", flip=True)
    plain, transformed = (
        _take(pipeline.make_loader(cfg, split="train", batch_size=3, seed=1, host_transform=t), 2)
        for t in (None, _parts)
    )
    for a, b in zip(plain, transformed):
        assert set(b) == set(a) | {"affine", "source_mask"}
        assert b["affine"].shape == (3, 10, 2, 3) and b["affine"].dtype == np.float32
        assert b["source_mask"].shape == (3, 10, 128, 64)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
        for i in range(3):  # computed from the pair as batched: after resize and flip
            one = {k: v[i] for k, v in a.items()}
            np.testing.assert_array_equal(b["affine"][i], _parts(one)["affine"])
            np.testing.assert_array_equal(b["source_mask"][i], _parts(one)["source_mask"])
    with pytest.raises(TypeError, match="host transform '_not_a_dict' returned list"):

        def _not_a_dict(pair):
            return []

        _take(pipeline.make_loader(cfg, split="train", batch_size=1, seed=1, host_transform=_not_a_dict), 1)


def test_resume_with_filter_and_transform(market):
    _, data_dir = market
    cfg = _cfg(data_dir, "market1501_pose", flip=True)
    hooks = {"host_transform": _parts, "pair_filter": _has_rsho}
    it = iter(pipeline.make_loader(cfg, split="train", batch_size=2, seed=5, **hooks))
    for _ in range(6):  # crosses an epoch boundary of the filtered list
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(4)]
    resumed = iter(pipeline.make_loader(cfg, split="train", batch_size=2, seed=5, **hooks))
    resumed.set_state(state)
    for want in expected:
        got = next(resumed)
        assert got.keys() == want.keys()
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])


def test_no_tensorflow_imported():
    assert "tensorflow" not in sys.modules


@pytest.mark.slow
def test_resume_with_two_worker_processes(market):
    """Worker processes, with hooks that are closures (pickled by cloudpickle into the workers)."""
    _, data_dir = market
    cfg = _cfg(data_dir, "market1501_pose", flip=True)
    offset = np.float32(0.5)

    def shifted(pair):
        return {"shifted": pair["target_keypoints"] + offset}

    hooks = {"host_transform": shifted, "pair_filter": lambda view: _has_rsho(view)}
    it = iter(pipeline.make_loader(cfg, split="train", batch_size=4, seed=5, worker_count=2, **hooks))
    for _ in range(3):
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(4)]
    assert expected[0]["shifted"].shape == (4, 18, 2)
    resumed = iter(pipeline.make_loader(cfg, split="train", batch_size=4, seed=5, worker_count=2, **hooks))
    resumed.set_state(state)
    for want in expected:
        got = next(resumed)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])


def test_resume_through_grain_checkpoint_handler(market, tmp_path):
    """The way the trainer saves it (Orbax item handler): files written, iterator restored mid-stream."""
    import grain
    from etils import epath

    _, data_dir = market
    cfg = _cfg(data_dir, "market1501_pose", flip=True)
    it = iter(pipeline.make_loader(cfg, split="train", batch_size=4, seed=9))
    next(it)
    handler = grain.checkpoint.CheckpointHandler()
    handler.save(epath.Path(tmp_path), args=grain.checkpoint.CheckpointSave(it))
    want = next(it)
    resumed = iter(pipeline.make_loader(cfg, split="train", batch_size=4, seed=9))
    handler.restore(epath.Path(tmp_path), args=grain.checkpoint.CheckpointRestore(resumed))
    got = next(resumed)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


class _HookedMethod:
    """Only the two hooks of a recipe: a field added per pair on train pairs, a filter keeping pairs with a right
    shoulder."""

    def host_transform(self, split):
        if split != "train":
            return None
        return lambda pair: {"source_height": np.float32(pair["source_image"].shape[0])}

    def pair_filter(self, split):
        return _has_rsho


def test_trainer_loader_factory_applies_the_methods_hooks(market):
    from ptx.train import loop

    _, data_dir = market
    factory = loop.pipeline_loader_factory(_cfg(data_dir, "market1501_pose"), _HookedMethod())
    (batch,) = _take(factory(split="train", batch_size=2, seed=0), 1)
    assert batch["source_height"].shape == (2,)
    assert np.all(batch["target_keypoints"][:, 2, 0] >= 0)  # the filter's joint is present in every pair
    (test_batch,) = _take(factory(split="test", batch_size=2, seed=0, shuffle=False, num_epochs=1), 1)
    assert "source_height" not in test_batch
