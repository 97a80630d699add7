"""Official CASD PyTorch weights (xyzhouo/CASD) -> ptx variables, the inverse, golden parity, and the CLI.

The original saves ``<epoch>_net_netG.pth`` (``ADGen``, the frozen VGG19 included), ``_net_netD_PB.pth`` and
``_net_netD_PP.pth`` from ``state_dict()``. Released files may carry DataParallel's ``module.`` prefix and may
lack the AdaIN blocks' dummy ``running_mean`` / ``running_var`` buffers (the original's loader deletes them
before loading): both are accepted. The ptx :class:`ptx.models.casd.Config` is inferred from the names and
shapes (every width, the MLP depth, the numbers of AdaIN / SPADE / upsampling blocks, the regions), or checked
against a given one. Every torch key is used and every ptx variable written (``common.apply_rules``).

    python -m ptx.convert casd --generator latest_net_netG.pth [--disc-pose latest_net_netD_PB.pth] \
        [--disc-image latest_net_netD_PP.pth] --out DIR

Converted weights default to the original's batch-statistics normalisation (``Config.spade_stats="batch"``);
see ``ptx.models.casd`` for the per-sample mode.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ptx.convert.common import (
    ConversionError,
    Rule,
    apply_rules,
    conv_rules,
    count_prefix,
    export_state_dict,
    linear_rules,
    norm_rules,
    role_errors,
    shape_of,
)
from ptx.models import casd
from ptx.nn import vgg as vgg_lib

StateDict = Mapping[str, Any]
ROLES = {"generator": "gen", "disc_pose": "disc_pose", "disc_image": "disc_image"}
# Config fields a state dict does not determine (run-time choices).
RUNTIME_FIELDS = ("spade_stats", "spade_group")
FIELDS_NOT_IN_WEIGHTS = RUNTIME_FIELDS  # the name every converter uses
GEN_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(casd.Config)
    if f.name not in RUNTIME_FIELDS and f.name not in ("ndf", "n_downsampling_d")
)
DISC_FIELDS = ("ndf", "n_downsampling_d")
_VGG_INDEX = vgg_lib.torchvision_indices("vgg19")  # conv1_1 -> 0, conv2_1 -> 5, ...
_ILN_SHAPES = {"style": lambda c: (1, c, 1), "pose": lambda c: (1, c, 1, 1), "pose_0": lambda c: (1, c, 1, 1)}


# ----------------------------------------------------------------------------------------------------------
# Name mapping, one function per block, composed like the network.


def _params_rule(dst: tuple, src: str, layout: str = "copy") -> Rule:
    return Rule(("params", *dst), src, layout)


def _encoder_block(dst: tuple, src: str) -> list[Rule]:
    """``blocks.EncoderBlock`` from the original's pre-activation ``EncoderBlock`` (``model.{0,2,3,5}``)."""
    return (
        norm_rules((*dst, "norm1"), f"{src}.model.0")
        + conv_rules((*dst, "conv1"), f"{src}.model.2")
        + norm_rules((*dst, "norm2"), f"{src}.model.3")
        + conv_rules((*dst, "conv2"), f"{src}.model.5")
    )


def _style_encoder(cfg: casd.Config) -> list[Rule]:
    rules = []
    for conv, idx in _VGG_INDEX.items():
        dst = ("vgg", "enc_style", "vgg", conv)
        rules += [
            Rule((*dst, "kernel"), f"enc_style.vgg.{idx}.weight", "conv"),
            Rule((*dst, "bias"), f"enc_style.vgg.{idx}.bias"),
        ]
    for i in range(1, 5):
        rules += conv_rules(("enc_style", f"conv{i}"), f"enc_style.conv{i}.conv")
    return rules + conv_rules(("enc_style", "out_conv"), "enc_style.model0.0")


def _content_encoder(cfg: casd.Config) -> list[Rule]:
    rules = _encoder_block(("enc_content", "block0"), "enc_content.block0")
    for i in range(len(cfg.content_widths) - 1):
        rules += _encoder_block(("enc_content", f"encoder{i}"), f"enc_content.encoder{i}")
    rules += norm_rules(("enc_content", "out_norm"), "enc_content.model0.0")
    return rules + conv_rules(("enc_content", "out_conv"), "enc_content.model0.2")


def _gammas(n: int) -> list[Rule]:
    names = {"1": "gamma_out", "2": "gamma_unused", "3": "gamma_ffn", "style_sa": "gamma_sa"}
    return [_params_rule(("dec", f"attn{n}", dst), f"dec.gamma{n}_{src}") for src, dst in names.items()]


def _attention(n: int) -> list[Rule]:
    dst = ("dec", f"attn{n}")
    rules = conv_rules((*dst, "value_sa"), f"dec.value{n}_conv_sa")
    for torch_name, ptx_name in (("style", "norm_style"), ("pose", "norm_x"), ("pose_0", "norm_content")):
        rules += [
            _params_rule((*dst, ptx_name, p), f"dec.LN_{n}_{torch_name}.{p}")
            for p in ("rho", "gamma", "beta")
        ]
    for torch_name, ptx_name in (("query", "query"), ("key", "key"), ("value", "value")):
        rules += conv_rules((*dst, ptx_name), f"dec.{torch_name}{n}_conv")
    return rules + conv_rules((*dst, "query_content"), f"dec.query{n}_conv_0")


def _ffn(n: int) -> list[Rule]:
    dst = ("dec", f"attn{n}")
    return conv_rules((*dst, "ffn_fc1"), f"dec.FFN{n}_1.fc1") + conv_rules(
        (*dst, "ffn_fc2"), f"dec.FFN{n}_1.fc2"
    )


def _decoder(cfg: casd.Config) -> list[Rule]:
    rules = [r for n in casd.ATTENTION_BLOCKS for r in _gammas(n)]
    for i in range(cfg.mlp_layers):
        rules += linear_rules(("dec", f"mlp{i}"), f"dec.mlp.model.{i}.fc")
    rules += linear_rules(("dec", "fc"), "dec.fc.fc")
    for i in range(cfg.n_adain):
        for j in (1, 2):
            rules += conv_rules(("dec", f"adain{i}", f"conv{j}"), f"dec.model0_{i}.0.model{j}.0.conv")
    for i in range(cfg.n_spade):
        src = f"dec.model0_{cfg.n_adain + i}.0"
        for j in (1, 2):
            rules += conv_rules(("dec", f"spade{i}", f"conv{j}"), f"{src}.model{j}.0.conv")
        for j in (1, 2):
            for k in (0, 1):
                rules += conv_rules(
                    ("dec", f"spade{i}", f"style{j}_conv{k + 1}"), f"{src}.models{j}.{k}.conv"
                )
    for i in range(cfg.n_upsample):
        src = f"dec.model1.{2 * i + 1}"
        rules += [_params_rule(("dec", f"up{i}_norm", p), f"{src}.norm.{p}") for p in ("gamma", "beta")]
        rules += conv_rules(("dec", f"up{i}_conv"), f"{src}.conv")
    rules += conv_rules(("dec", "out_conv"), "dec.model2.0.conv")
    for n in casd.ATTENTION_BLOCKS:
        rules += _attention(n)
    return rules + [r for n in casd.ATTENTION_BLOCKS for r in _ffn(n)]


def generator_rules(cfg: casd.Config) -> list[Rule]:
    """Every tensor of ``ADGen`` (in the original's key order) and its ptx location."""
    return _style_encoder(cfg) + _content_encoder(cfg) + _decoder(cfg)


def discriminator_rules(cfg: casd.Config) -> list[Rule]:
    """``ResnetDiscriminator`` (n_blocks 0, instance norm): convs at ``model.1``, ``model.4``, ``model.7``..."""
    rules = conv_rules(("conv0",), "model.1")
    for i in range(cfg.n_downsampling_d):
        rules += conv_rules((f"conv{i + 1}",), f"model.{3 * i + 4}")
    return rules


# ----------------------------------------------------------------------------------------------------------
# State-dict clean-up (both directions) and config inference.


def _is_dummy_buffer(key: str) -> bool:
    return key.endswith(("running_mean", "running_var", "num_batches_tracked"))


def canonical(state_dict: StateDict) -> dict[str, np.ndarray]:
    """Drops a DataParallel ``module.`` prefix and the never-used running statistics, and flattens the ILN
    parameters ((1, C, 1) / (1, C, 1, 1) in torch) to the (C,) vectors ptx keeps."""
    keys = list(state_dict)
    strip = bool(keys) and all(k.startswith("module.") for k in keys)
    out = {}
    for key, value in state_dict.items():
        name = key[len("module.") :] if strip else key
        if _is_dummy_buffer(name):
            continue
        value = np.asarray(value)
        if name.startswith("dec.LN_"):
            value = value.reshape(-1)
        out[name] = value
    return out


def _official_generator(sd: dict[str, np.ndarray], cfg: casd.Config) -> dict[str, np.ndarray]:
    """ILN parameters back to torch shapes, and the AdaIN dummy buffers (zeros / ones) the original saves."""
    out = {}
    for key, value in sd.items():
        if key.startswith("dec.LN_"):
            kind = key.split(".")[1].split("_", 2)[2]  # LN_3_pose_0 -> pose_0
            value = value.reshape(_ILN_SHAPES[kind](cfg.dim))
        for i in range(cfg.n_adain):
            for j in (1, 2):
                if key == f"dec.model0_{i}.0.model{j}.0.conv.weight":
                    out[f"dec.model0_{i}.0.model{j}.0.norm.running_mean"] = np.zeros(cfg.dim, np.float32)
                    out[f"dec.model0_{i}.0.model{j}.0.norm.running_var"] = np.ones(cfg.dim, np.float32)
        out[key] = value
    return out


def _out(sd, key: str, what: str) -> int:
    return int(shape_of(sd, key, what)[0])


def infer_generator_fields(sd: dict[str, np.ndarray], what: str = "generator") -> dict[str, Any]:
    """Architecture fields of a (canonical) ``ADGen`` state dict."""
    if "enc_content.block0.model.2.weight" not in sd or "dec.fc.fc.weight" not in sd:
        raise ConversionError(
            f"{what}: not a CASD generator state dict (no enc_content.block0 / dec.fc keys); keys start with "
            f"{sorted(sd)[:4]}"
        )
    n_content = 1 + count_prefix(sd, "enc_content.encoder")
    content = [_out(sd, "enc_content.block0.model.2.weight", what)]
    content += [_out(sd, f"enc_content.encoder{i}.model.2.weight", what) for i in range(n_content - 1)]
    dim = _out(sd, "enc_content.model0.2.weight", what)
    blocks = count_prefix(sd, "dec.model0_")
    spade = [i for i in range(blocks) if f"dec.model0_{i}.0.models1.0.conv.weight" in sd]
    n_adain = blocks - len(spade)
    if spade != list(range(n_adain, blocks)):
        raise ConversionError(
            f"{what}: AdaIN blocks must precede the SPADE blocks; SPADE at dec.model0_{spade}"
        )
    n_up = len([k for k in sd if k.startswith("dec.model1.") and k.endswith(".conv.weight")])
    if n_up != n_content:
        raise ConversionError(f"{what}: {n_up} decoder upsamplings but {n_content} content encoder blocks")
    mlp_layers = count_prefix(sd, "dec.mlp.model.")
    head = _out(sd, f"dec.mlp.model.{mlp_layers - 1}.fc.weight", what)
    if head % (4 * dim):
        raise ConversionError(f"{what}: MLP output {head} is not a multiple of 4 * dim = {4 * dim}")
    return dict(
        pose_nc=int(shape_of(sd, "enc_content.block0.model.2.weight", what)[1]),
        image_nc=int(shape_of(sd, "enc_style.conv1.conv.weight", what)[1]),
        regions=_out(sd, "dec.query3_conv_0.weight", what),
        dim=dim,
        content_widths=tuple(content),
        vgg_widths=tuple(
            _out(sd, f"enc_style.vgg.{_VGG_INDEX[f'conv{b}_1']}.weight", what) for b in range(1, 6)
        ),
        style_widths=tuple(_out(sd, f"enc_style.conv{i}.conv.weight", what) for i in range(1, 5)),
        mlp_dim=_out(sd, "dec.mlp.model.0.fc.weight", what),
        mlp_layers=mlp_layers,
        n_res=head // (4 * dim),
        n_adain=n_adain,
        n_spade=len(spade),
    )


def infer_discriminator_fields(sd: dict[str, np.ndarray], what: str = "discriminator") -> tuple[dict, int]:
    """(``ndf``, ``n_downsampling_d``) and the input channels of a ResnetDiscriminator state dict."""
    if "model.1.weight" not in sd:
        raise ConversionError(f"{what}: not a ResnetDiscriminator state dict ('model.1.weight' missing)")
    convs = [k for k in sd if k.startswith("model.") and k.endswith(".weight") and np.ndim(sd[k]) == 4]
    if any(".conv_block." in k for k in sd):
        raise ConversionError(f"{what}: residual blocks (n_layers_D > 0) are not CASD's discriminator")
    fields = {"ndf": _out(sd, "model.1.weight", what), "n_downsampling_d": len(convs) - 1}
    return fields, int(shape_of(sd, "model.1.weight", what)[1])


def _check_against(cfg: casd.Config | None, inferred: dict[str, Any], what: str) -> None:
    if cfg is None:
        return
    diff = {f: (getattr(cfg, f), v) for f, v in inferred.items() if getattr(cfg, f) != v}
    if diff:
        lines = ", ".join(f"{f}: config {a!r} vs file {b!r}" for f, (a, b) in diff.items())
        raise ConversionError(f"{what} does not match the given config: {lines}")


def _abstract_generator(cfg: casd.Config) -> dict:
    s = cfg.size_multiple
    args = (
        jnp.zeros((1, s, s, cfg.pose_nc)),
        jnp.zeros((1, s, s, cfg.image_nc)),
        jnp.zeros((1, s, s, cfg.regions)),
    )
    return jax.eval_shape(casd.Generator(cfg).init, jax.random.key(0), *args)


def _abstract_discriminator(cfg: casd.Config, channels: int) -> dict:
    s = 2 ** (cfg.n_downsampling_d + 1)
    return jax.eval_shape(casd.Discriminator(cfg).init, jax.random.key(0), jnp.zeros((1, s, s, channels)))


def _disc_channels(cfg: casd.Config, role: str) -> int:
    """D_PB judges (image, 30 pose maps) = 33 channels; D_PP (image, source image) = 6."""
    return cfg.image_nc + (cfg.pose_nc if role == "disc_pose" else cfg.image_nc)


# ----------------------------------------------------------------------------------------------------------
# The converter interface.


def convert(
    state_dicts: Mapping[str, StateDict], cfg: casd.Config | None = None
) -> tuple[casd.Config, dict[str, dict]]:
    """{role: official state dict} -> (Config, {player: variables}); roles as :data:`ROLES`.

    Fields not determined by the given files come from ``cfg`` (or the defaults); a ``cfg`` that disagrees with
    a file raises a :class:`ConversionError` naming the differing fields.
    """
    unknown = sorted(set(state_dicts) - set(ROLES))
    if unknown:
        raise ConversionError(f"unknown CASD roles {unknown}; expected some of {sorted(ROLES)}")
    sds = {role: canonical(sd) for role, sd in state_dicts.items()}
    fields: dict[str, Any] = {}
    channels: dict[str, int] = {}
    if "generator" in sds:
        with role_errors("generator"):
            inferred = infer_generator_fields(sds["generator"])
            _check_against(cfg, inferred, "generator state dict")
        fields.update(inferred)
    for role in ("disc_pose", "disc_image"):
        if role in sds:
            with role_errors(role):
                inferred, channels[role] = infer_discriminator_fields(sds[role], role)
                _check_against(cfg, inferred, f"{role} state dict")
                for f, v in inferred.items():
                    if fields.setdefault(f, v) != v:
                        raise ConversionError(f"the two discriminators disagree on {f}: {fields[f]} vs {v}")
    base = cfg or casd.Config()
    used = dataclasses.replace(base, **fields)
    players: dict[str, dict] = {}
    if "generator" in sds:
        with role_errors("generator"):
            players["gen"], _ = apply_rules(
                sds["generator"],
                generator_rules(used),
                expected=_abstract_generator(used),
                what="CASD generator",
            )
    for role in ("disc_pose", "disc_image"):
        if role in sds:
            with role_errors(role):
                want = _disc_channels(used, role)
                if channels[role] != want:
                    raise ConversionError(
                        f"{role}: the file's first conv takes {channels[role]} channels, expected {want}"
                    )
                players[ROLES[role]], _ = apply_rules(
                    sds[role],
                    discriminator_rules(used),
                    expected=_abstract_discriminator(used, want),
                    what=f"CASD {role}",
                )
    return used, players


def export(cfg: casd.Config, players: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """The inverse of :func:`convert`: {player: variables} -> {role: official state dict} (names, layouts,
    ILN shapes and the AdaIN dummy buffers as the original saves them; no ``module.`` prefix)."""
    out = {}
    for role, player in ROLES.items():
        if player not in players:
            continue
        if role == "generator":
            out[role] = _official_generator(export_state_dict(players[player], generator_rules(cfg)), cfg)
        else:
            out[role] = export_state_dict(players[player], discriminator_rules(cfg))
    return out


# ----------------------------------------------------------------------------------------------------------
# Golden parity (ptx.tools.check_golden).


def _nchw(x) -> np.ndarray:
    x = np.asarray(x)
    return np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x


def _nhwc(x) -> jnp.ndarray:
    return jnp.asarray(np.transpose(np.asarray(x, np.float32), (0, 2, 3, 1)))


def _check_width_meta(cfg: casd.Config, meta: Mapping[str, Any]) -> None:
    """The fixture's recorded widths (when present) must be the ones its state dict implies."""
    widths = dict(meta.get("width_config") or {})
    expect = {"dec_dim": cfg.dim, "mlp_dim": cfg.mlp_dim, "K_regions": cfg.regions, "n_res": cfg.n_res}
    if "style_dim" in widths:
        expect["style_dim"] = cfg.regions * cfg.dim
    if "vgg19_widths" in widths:
        expect["vgg19_widths"] = list(cfg.vgg_widths)
    bad = {k: (widths[k], v) for k, v in expect.items() if k in widths and widths[k] != v}
    if bad:
        raise ConversionError(f"fixture width_config disagrees with its state dict: {bad}")


def run_golden(
    arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Generator fixture: ``param/*`` state dict, ``input/{img_A, img_B, sem_B}`` (NCHW), ``output/*``:
    image, energy3, energy4, style_codes (B, K*dim, 1, 1), and optionally content / adain_out / attn3_out /
    attn4_out. Batch statistics as the original (the fixture's whole batch)."""
    sd = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    if not sd:
        raise ConversionError("fixture has no 'param/*' arrays: not a CASD model fixture")
    cfg, players = convert({"generator": sd})
    _check_width_meta(cfg, meta)
    gen = casd.Generator(cfg)
    inputs = [_nhwc(arrays[f"input/{n}"]) for n in ("img_A", "img_B", "sem_B")]
    fn = jax.jit(lambda v, *xs: gen.apply(v, *xs, mutable=["intermediates"]))
    out, state = fn(players["gen"], *inputs)
    got = {k: out[k] for k in ("image", "energy3", "energy4", "content")}
    got["style_codes"] = out["style_codes"].reshape(
        out["style_codes"].shape[0], 1, 1, -1
    )  # -> (B, K*dim, 1, 1)
    got |= {k: v[0] for k, v in _sown(state).items()}
    wanted = {k[len("output/") :]: v for k, v in arrays.items() if k.startswith("output/")}
    missing = sorted(set(wanted) - set(got))
    if missing:
        raise ConversionError(
            f"fixture outputs {missing} are not produced by ptx's CASD (known: {sorted(got)})"
        )
    return {name: (_nchw(got[name]), ref) for name, ref in wanted.items()}


def _sown(state: Mapping[str, Any]) -> dict[str, tuple]:
    """Intermediates sown by the decoder ({name: (value,)}), whatever module path they sit under."""
    found = {}

    def walk(tree):
        for key, value in tree.items():
            if isinstance(value, tuple):
                found[key] = value
            elif isinstance(value, Mapping):
                walk(value)

    walk(state.get("intermediates", {}))
    return found


# ----------------------------------------------------------------------------------------------------------
# Command line.


def cli(argv: list[str] | None = None) -> int:
    """``python -m ptx.convert casd``: official .pth files -> a ``ptx.convert`` directory."""
    from ptx.convert import common

    return common.run_cli(
        argv,
        method="casd",
        roles=ROLES,
        convert=convert,
        config_class=casd.Config,
        doc=__doc__,
        fields_not_in_weights=RUNTIME_FIELDS,
    )
