"""ptx.convert.gfla: official key sets, config inference at other layouts, aliases, spectral-norm parity, CLI."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ptx.convert import common
from ptx.convert import gfla as conv
from ptx.models import gfla

# name in gfla_official_keys.json -> (kind, ptx preset it must infer to, parameter count from the card)
OFFICIAL = {
    "fashion_generator": ("generator", "fashion", 14_047_395),
    "market_generator": ("generator", "market", 12_926_471),
    "fashion_flow_net_stage1": ("flow", "fashion", 6_608_212),
    "fashion_discriminator": ("discriminator", "fashion", 664_577),
    "market_discriminator": ("discriminator", "market", 238_209),
}


@pytest.fixture(scope="module")
def official_keys(golden_dir):
    return json.loads((golden_dir / "gfla_official_keys.json").read_text())


def _zeros_state_dict(entries) -> dict[str, np.ndarray]:
    # Zero-stride views: the full-size models need no memory here.
    return {e["key"]: np.broadcast_to(np.zeros((), np.float32), e["shape"]) for e in entries}


def _shapes(tree) -> dict:
    return {p: tuple(v.shape) for p, v in common.flatten(tree).items()}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_checkpoints_convert_exactly(official_keys, name):
    kind, preset, n_params = OFFICIAL[name]
    entry = official_keys[name]
    sd = _zeros_state_dict(entry["keys"])
    assert len(sd) == entry["num_state_dict_entries"]
    variables, cfg, got_kind = conv.convert_state_dict(
        sd, what=name
    )  # strict: every key used, every ptx leaf written
    assert got_kind == kind
    want_cfg = gfla.VARIANTS[preset]
    fields = {
        "generator": [f for f in conv._ARCH_FIELDS if not f.startswith("disc_")],
        "flow": ["flow_ngf", "flow_img_f", "flow_layers", "attn_layer", "norm", "use_spect"],
        "discriminator": [f for f in conv._ARCH_FIELDS if f.startswith("disc_")],
    }[kind]
    assert {f: getattr(cfg, f) for f in fields} == {f: getattr(want_cfg, f) for f in fields}
    abstract = conv.abstract_variables(want_cfg, kind)  # jax.eval_shape of the preset's init
    assert _shapes(variables) == _shapes(abstract)
    assert sum(int(np.prod(s)) for p, s in _shapes(abstract).items() if p[0] == "params") == n_params
    # The explicit rule report: nothing missing, nothing left over (aliases counted as used).
    _, report = common.apply_rules(sd, conv.RULES[kind](cfg), expected=abstract, strict=False)
    assert report.ok, report.describe()


def test_stage1_flow_net_shares_the_generator_path(official_keys):
    flow_keys = {e["key"]: e["shape"] for e in official_keys["fashion_flow_net_stage1"]["keys"]}
    gen_keys = {e["key"]: e["shape"] for e in official_keys["fashion_generator"]["keys"]}
    assert flow_keys == {k: v for k, v in gen_keys.items() if k.startswith("flow_net.")}
    cfg = gfla.VARIANTS["fashion"]
    stage1 = _shapes(conv.abstract_variables(cfg, "flow")["params"])
    full = _shapes(conv.abstract_variables(cfg, "generator")["params"])
    assert stage1 and stage1 == {p: s for p, s in full.items() if p[0] == "flow_net"}


def test_problems_are_reported(official_keys):
    sd = dict(_zeros_state_dict(official_keys["market_generator"]["keys"]))
    with pytest.raises(common.ConversionError, match="attn_layer"):
        conv.convert_state_dict(sd, gfla.VARIANTS["fashion"], what="market G")  # wrong config for the file
    bad = dict(sd)
    bad["target.outconv.model.2.weight"] = np.ones(sd["target.outconv.model.2.weight"].shape, np.float32)
    with pytest.raises(common.ConversionError, match="alias_mismatch"):
        conv.convert_state_dict(bad)
    extra = dict(sd, **{"target.extra.weight": np.zeros(3, np.float32)})
    with pytest.raises(common.ConversionError, match="target.extra.weight"):
        conv.convert_state_dict(extra)
    missing = {k: v for k, v in sd.items() if k != "flow_net.mask2.0.bias"}
    with pytest.raises(common.ConversionError, match="flow_net.mask2.0.bias"):
        conv.convert_state_dict(missing)
    with pytest.raises(common.ConversionError, match="not a GFLA"):
        conv.convert_state_dict({"foo.weight": np.zeros(2)})


# A market-layout model at other widths, depth of res blocks and size: exported with the official names, then
# converted back by shape inference alone.
SYNTH = gfla.Config(
    ngf=8,
    img_f=24,
    layers=3,
    num_blocks=3,
    attn_layer=(2,),
    kernel_size="2=3",
    flow_ngf=4,
    flow_img_f=16,
    disc_ndf=4,
    disc_img_f=8,
    disc_layers=3,
)


@pytest.fixture(scope="module")
def synthetic():
    model = gfla.PoseGenerator(SYNTH)
    rng = np.random.default_rng(0)
    src = jnp.asarray(rng.uniform(-1, 1, (1, 64, 32, 3)), jnp.float32)
    pose = jnp.asarray(rng.uniform(0, 1, (2, 1, 64, 32, 18)), jnp.float32)
    # Random values everywhere (norm affines included, so a swapped scale/bias would show); eval_shape
    # instead of a compiled init, which costs far more CPU than it saves.
    shapes = jax.eval_shape(model.init, jax.random.key(1), src, pose[0], pose[1])
    variables = jax.tree.map(lambda s: (0.3 * rng.normal(size=s.shape)).astype(np.float32), shapes)
    return model, variables, (src, pose[0], pose[1])


def test_synthetic_market_layout_round_trip(synthetic):
    model, variables, inputs = synthetic
    sd = common.export_state_dict(variables, conv.generator_rules(SYNTH))
    assert "target.decoder0.0.model.1.model.5.weight" in sd  # num_blocks=3: two res blocks per stage
    assert (
        "target.attn1.fully_connect_layer.0.weight" in sd
        and "target.attn0.fully_connect_layer.0.weight" not in sd
    )
    back, cfg, kind = conv.convert_state_dict(sd)
    assert kind == "generator"
    assert (cfg.ngf, cfg.img_f, cfg.num_blocks, cfg.attn_layer, cfg.kernel_sizes) == (8, 24, 3, (2,), {2: 3})
    assert (cfg.flow_ngf, cfg.flow_img_f, cfg.flow_layers) == (4, 16, 5)
    jax.tree.map(np.testing.assert_array_equal, back, jax.tree.map(np.asarray, variables))
    flows_only = {k: v for k, v in sd.items() if k.startswith("flow_net.")}
    stage1, cfg1, kind1 = conv.convert_state_dict(flows_only)
    assert kind1 == "flow" and cfg1.attn_layer == (2,)
    jax.tree.map(np.testing.assert_array_equal, stage1["params"]["flow_net"], back["params"]["flow_net"])


def _torch_discriminator(torch, cfg: gfla.Config):
    """A torch ResDiscriminator written from the reference card (sec. 3), with torch's own spectral norm."""
    nn, sn = torch.nn, torch.nn.utils.spectral_norm
    act = nn.LeakyReLU(0.1)

    class Block(nn.Module):
        def __init__(self, cin, cout, hidden):
            super().__init__()
            self.model = nn.Sequential(
                act, sn(nn.Conv2d(cin, hidden, 3, 1, 1)), act, sn(nn.Conv2d(hidden, cout, 4, 2, 1))
            )
            self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), sn(nn.Conv2d(cin, cout, 1)))

        def forward(self, x):
            return self.model(x) + self.shortcut(x)

    class D(nn.Module):
        def __init__(self):
            super().__init__()
            widths = gfla.encoder_widths(cfg.disc_ndf, cfg.disc_img_f, cfg.disc_layers)
            self.block0 = Block(3, widths[0], widths[0])
            for i in range(1, len(widths)):
                setattr(self, f"encoder{i - 1}", Block(widths[i - 1], widths[i], widths[i - 1]))
            self.conv = sn(nn.Conv2d(widths[-1], 1, 1))
            self.n = len(widths)

        def forward(self, x):
            x = self.block0(x)
            for i in range(self.n - 1):
                x = getattr(self, f"encoder{i}")(x)
            return self.conv(act(x))

    return D()


def test_discriminator_spectral_norm_parity():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    cfg = dataclasses.replace(SYNTH, disc_ndf=4, disc_img_f=16, disc_layers=3)
    d = _torch_discriminator(torch, cfg)
    x = torch.randn(2, 3, 32, 16)
    with torch.no_grad():
        for _ in range(3):  # training forwards: power iterations move weight_u / weight_v
            d(torch.randn(2, 3, 32, 16))
    sd = {k: v.numpy().copy() for k, v in d.state_dict().items()}
    variables, got_cfg, kind = conv.convert_state_dict(sd, what="torch D")
    assert kind == "discriminator" and got_cfg.disc_layers == 3 and got_cfg.disc_ndf == 4
    model = gfla.ResDiscriminator(got_cfg)
    xj = jnp.asarray(x.numpy().transpose(0, 2, 3, 1))
    d.eval()
    with torch.no_grad():
        want_eval = d(x).numpy()
    got_eval = jax.jit(model.apply)(variables, xj)
    np.testing.assert_allclose(np.asarray(got_eval).transpose(0, 3, 1, 2), want_eval, rtol=1e-4, atol=1e-5)
    d.train()
    with torch.no_grad():
        want_train = d(x).numpy()  # one more power iteration, then the forward
    got_train, state = jax.jit(lambda v, x: model.apply(v, x, update_stats=True, mutable=["spectral"]))(
        variables, xj
    )
    np.testing.assert_allclose(np.asarray(got_train).transpose(0, 3, 1, 2), want_train, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        state["spectral"]["block0"]["conv2"]["u"], d.block0.model[3].weight_u.numpy(), rtol=1e-4, atol=1e-6
    )


def test_cli_writes_the_common_layout(tmp_path, synthetic, monkeypatch, capsys):
    from ptx.convert import __main__ as convert_main
    from ptx.convert import torch_io

    _, variables, _ = synthetic
    d_vars = jax.eval_shape(gfla.ResDiscriminator(SYNTH).init, jax.random.key(0), jnp.zeros((1, 64, 32, 3)))
    d_vars = jax.tree.map(lambda s: np.full(s.shape, 0.5, np.float32), d_vars)
    files = conv.export(SYNTH, {"gen": variables, "disc": d_vars})
    monkeypatch.setattr(torch_io, "load_state_dict", lambda path, **_: files[str(path).rsplit("/", 1)[-1]])
    out = tmp_path / "converted"
    argv = ["gfla", "--generator", "generator", "--discriminator", "discriminator", "--out", str(out)]
    assert convert_main.main(argv) == 0
    meta = json.loads((out / common.META_FILE).read_text())
    assert (
        meta["players"] == ["disc", "gen"] and meta["model"]["ngf"] == 8 and meta["model"]["disc_layers"] == 3
    )
    assert meta["fields_not_in_weights"] == sorted(conv.FIELDS_NOT_IN_WEIGHTS)
    from ptx import api
    from ptx.train import checkpoint

    restored = checkpoint.load_params(out)  # what config.init_from reads
    np.testing.assert_array_equal(
        restored["gen"]["params"]["target"]["attn1"]["fc1"]["kernel"],
        variables["params"]["target"]["attn1"]["fc1"]["kernel"],
    )
    assert set(restored["disc"]) == {"params", "spectral"}
    sampled, _ = api.load_variables(out)  # what ptx.sample reads
    assert set(sampled) == {"gen", "disc"}
    capsys.readouterr()
    assert convert_main.main(argv) == 2  # a second run refuses to overwrite
    assert "is not empty" in capsys.readouterr().err


def test_other_option_sets_round_trip():
    # Deeper nets, one block per decoder stage, three attention layers (k=1 included), spectral norm in G.
    cfg = gfla.Config(
        ngf=8,
        img_f=64,
        layers=4,
        num_blocks=1,
        attn_layer=(2, 3, 4),
        kernel_size="2=3,3=3,4=1",
        use_spect=True,
        flow_ngf=4,
        flow_img_f=32,
    )
    shapes = conv.abstract_variables(cfg, "generator")
    rng = np.random.default_rng(5)
    variables = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), shapes)
    sd = common.export_state_dict(variables, conv.generator_rules(cfg))
    assert "target.decoder0.0.shortcut.0.weight_orig" in sd and "flow_net.jump0.model.2.weight_u" in sd
    back, inferred, _ = conv.convert_state_dict(sd)
    jax.tree.map(np.testing.assert_array_equal, back, variables)
    assert (inferred.layers, inferred.num_blocks, inferred.use_spect) == (4, 1, True)
    assert inferred.kernel_sizes == {2: 3, 3: 3, 4: 1}


def test_stage1_conversion_loads_as_a_flow_only_sampler(tmp_path):
    from ptx import api

    cfg = gfla.Config(**api.model_config("gfla_fashion", "tiny").model.to_dict())
    rng = np.random.default_rng(2)
    flow = jax.tree.map(
        lambda s: rng.normal(size=s.shape).astype(np.float32), conv.abstract_variables(cfg, "flow")
    )
    state_dicts = conv.export(cfg, {"gen": flow})
    assert set(state_dicts["generator"]) and all(k.startswith("flow_net.") for k in state_dicts["generator"])
    got_cfg, players = conv.convert(state_dicts, cfg)
    common.write_converted(tmp_path / "stage1", "gfla", got_cfg, players)
    sampler = api.load("gfla_fashion", tmp_path / "stage1", variant="tiny")  # fits the config's flow stage
    assert set(sampler.variables["gen"]["params"]) == {"flow_net"}
