"""Def-GAN converter: golden parity through check_golden, the official key lists, and the original's Keras .h5
files (layer names and creation order as Keras 2.0.8 writes them) against the port's state dicts."""

import json

import numpy as np
import pytest

from ptx.convert import defgan as conv
from ptx.convert.common import ConversionError
from ptx.models import defgan
from ptx.tools import check_golden

FIXTURES = ("defgan_affine", "defgan_warp", "defgan_market_small")


def random_state_dict(shapes: dict, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(tuple(s), dtype=np.float32) for k, s in shapes.items()}


@pytest.fixture(scope="module")
def official(golden_dir):
    return json.loads((golden_dir / "defgan_official_keys.json").read_text())


@pytest.fixture(scope="module")
def small_state(golden_dir):
    with np.load(golden_dir / "defgan_market_small.npz") as z:
        return {k[len("param/") :]: z[k] for k in z.files if k.startswith("param/")}


# ------------------------------------------------------------------------------------------------------------
# Goldens.


def test_check_golden_passes_on_every_defgan_fixture(golden_dir, capsys):
    paths = [str(golden_dir / f"{name}.npz") for name in FIXTURES]
    assert check_golden.main(paths) == 0
    lines = capsys.readouterr().out.splitlines()
    outputs = {line.split()[1] for line in lines}
    assert {"output/image", "output/image_port_native_in", "output/skip_5", "output/masks"} <= outputs
    assert {"output/mask_max_16x8", "output/mask_avg_64x32", "output/full_128x64", "output/affine"} <= outputs
    print("\n".join(lines))


def test_geometry_tolerances_are_absolute(golden_dir):
    arrays, meta = check_golden.load_fixture(golden_dir / "defgan_affine.npz")
    arrays["output/affine"] = arrays["output/affine"] + np.float32(2e-4)  # rel ~2e-7, abs 2e-4
    with pytest.raises(AssertionError, match="output/affine"):
        conv.run_golden(arrays, meta)


# ------------------------------------------------------------------------------------------------------------
# Official (port) state dicts: names and shapes from defgan_official_keys.json, random values.


@pytest.mark.parametrize(
    "which,size",
    [("market_128x64", (128, 64)), pytest.param("fashion_256x256", (256, 256), marks=pytest.mark.slow)],
)
def test_official_state_dicts_round_trip(official, which, size):
    gen_sd = random_state_dict(official[f"generator_{which}"])
    disc_sd = random_state_dict(official["discriminator"], seed=1)
    cfg, players = conv.convert({"generator": gen_sd, "discriminator": disc_sd})
    assert cfg.image_size == size and cfg.warp_skip == "mask" and cfg.norm == "keras"
    assert cfg.encoder == defgan.default_filters(size)[0] and cfg.encoder_filters == ()
    assert cfg.disc_filters == (64, 128, 256, 512)
    exported = conv.export(cfg, players)
    for role, sd in (("generator", gen_sd), ("discriminator", disc_sd)):
        assert list(exported[role]) == list(sd)  # the same keys, in the port's order
        for k, v in sd.items():
            np.testing.assert_array_equal(exported[role][k], v, err_msg=k)


def test_config_that_disagrees_with_the_weights_raises(small_state):
    gen_sd = dict(small_state)
    with pytest.raises(ConversionError, match="encoder: config"):
        conv.convert({"generator": gen_sd}, defgan.VARIANTS["market"])
    with pytest.raises(ConversionError, match="warp_skip"):
        conv.convert({"generator": gen_sd}, defgan.VARIANTS["market_baseline"])
    # Fields weights cannot tell (frame, mask vs full, IN formula) are taken from the config.
    small = dict(encoder_filters=(8, 16, 32, 64, 64, 64), decoder_filters=(64, 64, 64, 32, 16, 3))
    cfg, _ = conv.convert({"generator": gen_sd}, defgan.Config(warp_skip="full", norm="torch", **small))
    assert (cfg.warp_skip, cfg.norm) == ("full", "torch")
    del gen_sd["decoder.net.2.net.3.bias"]
    with pytest.raises(ConversionError, match="missing"):
        conv.convert({"generator": gen_sd})


# ------------------------------------------------------------------------------------------------------------
# The original's Keras files.


class KerasNames:
    """Keras 2.0.8 automatic layer names: snake-case class name + a per-class counter in creation order."""

    def __init__(self, start: int):
        self.counters: dict[str, int] = {}
        self.start = start
        self.layers: list[tuple[str, dict]] = []

    def add(self, cls: str, weights: dict | None = None) -> None:
        n = self.counters.get(cls, self.start) + 1
        self.counters[cls] = n
        self.layers.append((f"{cls}_{n}", weights or {}))


def keras_layers_of(sd: dict, role: str, start: int = 0) -> list[tuple[str, dict]]:
    """The layers the original's ``make_generator`` / ``make_discriminator`` create, in creation order, holding
    ``sd``'s numbers in Keras layouts (conv (kh,kw,in,out), transposed conv (kh,kw,out,in))."""
    k = KerasNames(start)

    def conv(key, cls="conv2d"):
        w = {"kernel": np.transpose(sd[f"{key}.weight"], (2, 3, 1, 0))}
        if f"{key}.bias" in sd:
            w["bias"] = sd[f"{key}.bias"]
        k.add(cls, w)

    def norm(key):
        k.add("instance_normalization", {"gamma": sd[f"{key}.weight"], "beta": sd[f"{key}.bias"]})

    if role == "discriminator":
        k.add("concatenate")
        conv("net.0")
        last = max(int(key.split(".")[1]) for key in sd)
        for i in range(1, last + 1):
            k.add("leaky_re_lu"), k.add("zero_padding2d")
            conv(f"net.{i}.net.1")
            if f"net.{i}.net.2.weight" in sd:
                norm(f"net.{i}.net.2")
        k.add("activation"), k.add("flatten")
        return k.layers
    encoders = ["encoder"] if "encoder.net.0.weight" in sd else ["encoder_app", "encoder_pose"]
    levels = 1 + max(int(key.split(".")[2]) for key in sd if key.startswith(encoders[0]))
    for enc in encoders:
        k.add("concatenate")
        conv(f"{enc}.net.0")
        for i in range(1, levels):
            k.add("leaky_re_lu"), k.add("zero_padding2d")
            conv(f"{enc}.net.{i}.net.1")
            if f"{enc}.net.{i}.net.2.weight" in sd:
                norm(f"{enc}.net.{i}.net.2")
    for _ in range(4 if len(encoders) == 2 else 0):
        k.add("affine_transform_layer")
    for i in range(levels - 1):
        k.add("concatenate"), k.add("activation")
        conv(f"decoder.net.{i}.net.1", "conv2d_transpose")
        k.add("cropping2d")
        norm(f"decoder.net.{i}.net.3")
        if i < 3:
            k.add("dropout")
    k.add("concatenate"), k.add("activation")
    conv(f"decoder.net.{levels}")
    k.add("activation")
    return k.layers


def write_keras_h5(path, layers, *, model_save: bool = False, seed: int = 0) -> None:
    """A Keras-2.0.8-style weight file; layer groups listed in a shuffled order (Keras lists them by graph
    depth, which is not the creation order)."""
    h5py = pytest.importorskip("h5py")
    order = np.random.default_rng(seed).permutation(len(layers))
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if model_save else f
        root.attrs["layer_names"] = [layers[i][0].encode() for i in order]
        root.attrs["backend"], root.attrs["keras_version"] = b"tensorflow", b"2.0.8"
        for i in order:
            name, weights = layers[i]
            g = root.create_group(name)
            names = [f"{name}/{w}:0" for w in weights]
            g.attrs["weight_names"] = [n.encode() for n in names]
            for n, value in zip(names, weights.values()):
                g.create_dataset(n, data=value)


def assert_same_params(a, b):
    flat_a, flat_b = conv.export(*a), conv.export(*b)
    assert flat_a.keys() == flat_b.keys()
    for role in flat_a:
        assert flat_a[role].keys() == flat_b[role].keys()
        for key in flat_a[role]:
            np.testing.assert_array_equal(flat_a[role][key], flat_b[role][key], err_msg=key)


@pytest.mark.parametrize("model_save", [False, True])
def test_keras_h5_converts_like_the_port_state_dict(tmp_path, small_state, model_save):
    pytest.importorskip("h5py")
    cfg = defgan.Config(
        encoder_filters=(8, 16, 32, 64, 64, 64),
        decoder_filters=(64, 64, 64, 32, 16, 3),
        disc_filters=(8, 16, 32),
        image_size=(128, 64),
    )
    disc_sd = random_state_dict(
        {
            "net.0.weight": (8, 42, 4, 4),
            "net.0.bias": (8,),
            "net.1.net.1.weight": (16, 8, 4, 4),
            "net.1.net.2.weight": (1,),
            "net.1.net.2.bias": (1,),
            "net.2.net.1.weight": (32, 16, 4, 4),
            "net.2.net.2.weight": (1,),
            "net.2.net.2.bias": (1,),
            "net.3.net.1.weight": (1, 32, 4, 4),
        }  # fmt: skip
    )
    write_keras_h5(
        tmp_path / "g.h5", keras_layers_of(small_state, "generator", start=13), model_save=model_save
    )
    write_keras_h5(
        tmp_path / "d.h5", keras_layers_of(disc_sd, "discriminator"), model_save=model_save, seed=1
    )
    from_port = conv.convert({"generator": small_state, "discriminator": disc_sd}, cfg)
    from_keras = conv.convert(
        {
            "generator": conv.load_weights(tmp_path / "g.h5"),
            "discriminator": conv.load_weights(tmp_path / "d.h5"),
        },
        cfg,
    )
    assert from_keras[0] == from_port[0]
    assert_same_params(from_keras, from_port)
    inferred, _ = conv.convert(
        {"generator": small_state, "discriminator": disc_sd}
    )  # no config: all inferred
    assert inferred.disc_filters == (8, 16, 32) and inferred.encoder == cfg.encoder


def test_keras_baseline_generator_and_bad_names(tmp_path, small_state):
    pytest.importorskip("h5py")
    cfg = defgan.Config(
        warp_skip="none", encoder_filters=(8, 16, 32, 64, 64, 64), decoder_filters=(64, 64, 64, 32, 16, 3)
    )
    shapes = {k: v.shape for k, v in conv.export(cfg, {"gen": _abstract_params(cfg)})["generator"].items()}
    assert shapes["encoder.net.0.weight"] == (8, 39, 3, 3)
    sd = random_state_dict(shapes, seed=2)
    write_keras_h5(tmp_path / "b.h5", keras_layers_of(sd, "generator"))
    from_keras = conv.convert({"generator": conv.load_weights(tmp_path / "b.h5")})
    assert from_keras[0].warp_skip == "none"
    assert_same_params(from_keras, conv.convert({"generator": sd}))
    layers = keras_layers_of(sd, "generator")
    layers[1] = ("my_conv", layers[1][1])  # the first encoder conv, renamed
    with pytest.raises(ConversionError, match="automatic names"):
        conv.keras_state_dict([layer for layer in layers if layer[1]])


def _abstract_params(cfg):
    import jax

    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), conv.abstract_variables(cfg, "generator"))


def test_cli_writes_a_checkpoint(tmp_path, small_state):
    pytest.importorskip("h5py")
    from ptx.train import checkpoint

    write_keras_h5(tmp_path / "g.h5", keras_layers_of(small_state, "generator"))
    out = tmp_path / "out"
    argv = ["--generator", str(tmp_path / "g.h5"), "--set", "image_size=(128, 64)", "--out", str(out)]
    assert conv.cli(argv) == 0
    meta = json.loads((out / "ptx_convert.json").read_text())
    assert meta["method"] == "defgan" and meta["players"] == ["gen"]
    assert meta["model"]["encoder_filters"] == [8, 16, 32, 64, 64, 64]
    restored = checkpoint.load_params(out)
    kernel = restored["gen"]["params"]["decoder"]["Block_0"]["ConvTranspose2d_0"]["kernel"]
    np.testing.assert_array_equal(
        kernel, np.transpose(small_state["decoder.net.0.net.1.weight"], (2, 3, 0, 1))
    )
    assert (
        conv.cli(["--generator", str(tmp_path / "g.h5"), "--out", str(out)]) == 2
    )  # not empty: one-line error
