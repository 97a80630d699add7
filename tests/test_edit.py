"""ptx.edit on CASD's tiny variant (16x16) with random weights: region swaps, interpolation, names, parsing, CLI.

The weights are drawn with unit-scale fan-in variance and the attention gates open, so that a region's code
visibly changes the output (the reference init's N(0, 0.02) weights render a flat grey at this width).
"""

import json

import jax
import numpy as np
import pytest
from PIL import Image

import ptx
from configs import casd_fashion
from ptx import edit
from ptx.data import puppets
from ptx.methods import casd

pytestmark = pytest.mark.filterwarnings("ignore")


def _lively(shapes, seed=0):
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = str(path[-1].key)
        if name == "kernel":
            return (rng.standard_normal(leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1]))).astype(leaf.dtype)
        if name in ("scale", "gamma") or name.startswith("gamma_"):
            return np.ones(leaf.shape, leaf.dtype)
        if name == "rho":
            return np.full(leaf.shape, 0.5, leaf.dtype)
        return (0.1 * rng.standard_normal(leaf.shape)).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)


@pytest.fixture(scope="module")
def editor():
    config = casd_fashion.get_config("tiny")
    method = casd.build(config)
    size = tuple(config.data.image_size)
    kps = np.full((1, 18, 2), -1.0, np.float32)
    kps[0, :2] = [[3, 8], [6, 8]]
    batch = {"source_image": np.zeros((1, *size, 3), np.uint8), "target_keypoints": kps}
    shapes = jax.eval_shape(lambda k: method.init(k, batch), jax.random.key(0))
    return edit.Editor(method, _lively(shapes), size, 256 / 176)


def _render(seed, pose_seed=None):
    identity = puppets.sample_identity(seed)
    kps = puppets.sample_pose(seed if pose_seed is None else pose_seed, "fashion", identity=identity)
    return puppets.render(identity, kps, "fashion")


@pytest.fixture(scope="module")
def people():
    return {
        name: edit.Person(r["image"], r["keypoints"], r["parsing"])
        for name, r in (("a", _render(1)), ("b", _render(2)))
    }


def test_mix_endpoints_are_the_plain_renderings(editor, people):
    a, b = people["a"], people["b"]
    strip, parsing = editor(a, mix=(b, [0.0, 0.5, 1.0]), return_parsing=True)
    assert strip.shape == (3, *editor.image_size, 3) and strip.dtype == np.uint8
    assert parsing.shape == (3, *editor.image_size) and parsing.dtype == np.uint8
    plain_a = editor(a)
    a_pose = editor.frame(a).keypoints
    plain_b = editor(b, pose=a_pose, pose_frame="model")  # b's appearance in a's pose
    np.testing.assert_array_equal(strip[0], plain_a)
    np.testing.assert_array_equal(strip[2], plain_b)
    assert (
        np.abs(strip[1].astype(int) - strip[0]).max() > 0
        and np.abs(strip[1].astype(int) - strip[2]).max() > 0
    )

    # The editor's encode -> render is the recipe's plain prediction.
    framed = editor.frame(a)
    batch = {
        "source_image": framed.image[None],
        "source_parsing": framed.parsing[None],
        "target_keypoints": framed.keypoints[None],
    }
    out = jax.jit(editor.method.predict)(editor.variables, batch)
    want = np.clip(np.round((np.asarray(out["image"][0]) + 1) * 127.5), 0, 255)
    assert np.abs(want - plain_a).max() <= 1


def test_own_region_swap_changes_nothing(editor, people):
    a = people["a"]
    plain = editor(a)
    np.testing.assert_array_equal(editor(a, regions={"upper_clothes": a}), plain)
    np.testing.assert_array_equal(editor(a, regions={"head": a, "lower_clothes": a}), plain)


def test_swap_moves_only_that_regions_code(editor, people):
    a, b = editor.frame(people["a"]), editor.frame(people["b"])
    own = editor.style_codes(a)
    theirs = editor.style_codes(b)
    swapped = editor.style_codes(a, {"upper_clothes": people["b"], "head": people["b"]})
    moved = [editor.region_names.index(r) for r in ("upper_clothes", "hair", "face")]
    kept = [k for k in range(len(editor.region_names)) if k not in moved]
    np.testing.assert_array_equal(swapped[moved], theirs[moved])
    np.testing.assert_array_equal(swapped[kept], own[kept])
    assert np.abs(own[moved] - theirs[moved]).max() > 1e-3  # the two people's codes do differ there

    plain = editor(people["a"])
    tried_on = editor(people["a"], regions={"upper_clothes": people["b"]})
    assert np.abs(tried_on.astype(int) - plain).max() > 0
    # interpolating only the upper clothes all the way is the same swap
    strip = editor(people["a"], mix=(people["b"], [1.0], ["upper_clothes"]))
    np.testing.assert_array_equal(strip[0], tried_on)


def test_bad_region_names_list_the_valid_ones(editor, people):
    with pytest.raises(ValueError, match=r"unknown region 'shirt'; valid: background, lower_clothes, .*"
                       r"upper_clothes, .*head \(hair \+ face\)"):  # fmt: skip
        editor(people["a"], regions={"shirt": people["b"]})
    with pytest.raises(ValueError, match="mix: unknown region 'torso'"):
        editor(people["a"], mix=(people["b"], 2, ["torso"]))
    with pytest.raises(ValueError, match="'hair' is set by both 'head' and 'hair'"):
        editor(people["a"], regions={"head": people["b"], "hair": people["a"]})


def test_missing_parsing_is_one_line(editor, people):
    a = people["a"]
    with pytest.raises(ValueError, match="person: no parsing map given") as e:
        editor(edit.Person(a.image, a.pose))
    assert "\n" not in str(e.value) and "person_parsing=" in str(e.value)
    with pytest.raises(ValueError, match=r"regions\['upper_clothes'\]: no parsing map given") as e:
        editor(a, regions={"upper_clothes": people["b"].image})
    assert "\n" not in str(e.value)


def test_files_of_any_size_with_sidecars(editor, people, tmp_path):
    r = _render(1)
    Image.fromarray(r["image"]).save(tmp_path / "a.png")
    Image.fromarray(r["parsing"]).save(tmp_path / "a_parsing.png")
    kps = r["keypoints"]
    flat = [float(v) for y, x in kps for v in ((x, y, 1.0) if y >= 0 else (0, 0, 0))]
    (tmp_path / "a.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": flat}]}))
    np.testing.assert_array_equal(editor(tmp_path / "a.png"), editor(people["a"]))
    # a bigger photo of the same person (parsing resized with it) lands in the same frame
    big = edit.Person(
        np.asarray(Image.fromarray(r["image"]).resize((352, 512), Image.Resampling.NEAREST)),
        kps * 2 + 0.5,
        np.asarray(Image.fromarray(r["parsing"]).resize((352, 512), Image.Resampling.NEAREST)),
    )
    assert np.abs(editor(big).astype(int) - editor(people["a"])).mean() < 8


def test_cli_writes_pngs(editor, people, tmp_path, monkeypatch, capsys):
    for name, seed in (("a", 1), ("b", 2)):
        r = _render(seed)
        Image.fromarray(r["image"]).save(tmp_path / f"{name}.jpg")
        np.save(tmp_path / f"{name}_parsing.npy", r["parsing"])
        row = f"{name}.jpg:{[int(v) for v in r['keypoints'][:, 0]]}:{[int(v) for v in r['keypoints'][:, 1]]}"
        (tmp_path / f"{name}.csv").write_text(row + "\n")
    monkeypatch.setattr(edit, "load", lambda *a, **k: editor)
    assert edit.main(["--checkpoint", "x", "--person", str(tmp_path / "a.jpg"), "--region",
                      f"upper_clothes={tmp_path / 'b.jpg'}", "--out", str(tmp_path / "out" / "tryon.png"),
                      "--parsing-out", str(tmp_path / "parsing.png")]) == 0  # fmt: skip
    assert "wrote" in capsys.readouterr().out
    h, w = editor.image_size
    assert Image.open(tmp_path / "out" / "tryon.png").size == (w, h)
    assert np.asarray(Image.open(tmp_path / "parsing.png")).shape == (h, w, 3)
    assert edit.main(["--checkpoint", "x", "--person", str(tmp_path / "a.jpg"), "--mix", str(tmp_path / "b.jpg"),
                      "--steps", "4", "--out", str(tmp_path / "strip.png")]) == 0  # fmt: skip
    assert Image.open(tmp_path / "strip.png").size == (4 * w, h)
    with pytest.raises(SystemExit) as e:
        edit.main(["--checkpoint", "x", "--person", str(tmp_path / "a.jpg"), "--region",
                   f"shirt={tmp_path / 'b.jpg'}", "--out", str(tmp_path / "bad.png")])  # fmt: skip
    assert e.value.code == 2 and "unknown region 'shirt'; valid: background" in capsys.readouterr().err


def test_load_random_keeps_the_style_encoders_vgg():
    tiny = edit.load("casd_fashion", "random", variant="tiny")
    assert "vgg" in tiny.variables["gen"]  # the style encoder reads its VGG19 from there
    assert isinstance(tiny.method, edit.RegionEditor)
    assert tiny.region_names == casd.CASD_REGIONS and tiny.region_groups["head"] == ("hair", "face")
    assert callable(ptx.edit) and ptx.edit is edit  # the lazy export: the module, callable as the function
