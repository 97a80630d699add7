"""Official GFLA PyTorch weights (RenYurui/Global-Flow-Local-Attention) -> ptx variables, and golden parity.

Three checkpoint kinds, told apart by their keys: the stage-2 generator ``PoseGenerator`` (``source.*``,
``target.*``, ``flow_net.*``), the stage-1 ``PoseFlowNetGenerator`` (``flow_net.*`` only) and the
``ResDiscriminator`` (``block0.*``, ``encoder*.*``, ``conv.*`` with spectral norm). The ptx
``ptx.models.gfla.Config`` is inferred from the tensor shapes (widths, depths, attention layers and windows,
number of res blocks), or checked against one given. Every torch key must be used and every ptx variable
written (``ptx.convert.common.apply_rules``).

    python -m ptx.convert gfla --generator latest_net_G.pth [--discriminator latest_net_D.pth] \
        [--config configs/gfla_fashion.py] --out DIR

writes the layout every converter writes (``ptx.convert.common.write_converted``): DIR is an Orbax checkpoint
of ``{"gen": variables, "disc": variables}`` (the discriminator's spectral-norm vectors in its ``spectral``
collection) and ``DIR/ptx_convert.json`` records the model Config the weights fit. ``config.init_from = DIR``
and ``ptx.load(model, DIR)`` read it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ptx.convert import common
from ptx.convert.common import (
    ConversionError,
    Rule,
    apply_rules,
    conv_rules,
    count_prefix,
    join,
    norm_rules,
    shape_of,
)
from ptx.models import gfla

KINDS = ("generator", "flow", "discriminator")


# ----------------------------------------------------------------------------------------------------------
# Name mapping: one function per block kind, composed like the networks.


def _weight_key(sd: Mapping[str, Any], module: str) -> str:
    return join(module, "weight_orig") if join(module, "weight_orig") in sd else join(module, "weight")


def _pre_act_pair(dst: tuple, src: str, cfg: gfla.Config, *, second_transposed: bool = False) -> list[Rule]:
    """norm1 / conv1 / norm2 / conv2 of a pre-activation block: torch ``model.{0,2,3,5}`` (``model.{1,3}`` without norm)."""
    spect, norm = cfg.use_spect, cfg.norm != "none"
    idx = (0, 2, 3, 5) if norm else (None, 1, None, 3)
    rules = []
    if norm:
        rules += norm_rules((*dst, "norm1"), f"{src}.model.{idx[0]}")
        rules += norm_rules((*dst, "norm2"), f"{src}.model.{idx[2]}")
    rules += conv_rules((*dst, "conv1"), f"{src}.model.{idx[1]}", spectral=spect)
    rules += conv_rules((*dst, "conv2"), f"{src}.model.{idx[3]}", spectral=spect, transpose=second_transposed)
    return rules


def _res_decoder(dst: tuple, src: str, cfg: gfla.Config) -> list[Rule]:
    rules = _pre_act_pair(dst, src, cfg, second_transposed=True)
    return rules + conv_rules((*dst, "shortcut"), f"{src}.shortcut.0", spectral=cfg.use_spect, transpose=True)


def _pad_conv(dst: tuple, src: str, cfg: gfla.Config) -> list[Rule]:
    """Jump / Output (norm None): ``conv1`` registered a second time as ``model.2``."""
    return conv_rules((*dst, "conv"), f"{src}.conv1", spectral=cfg.use_spect, aliases=(f"{src}.model.2",))


def _encoder(dst: tuple, src: str, cfg: gfla.Config, n: int) -> list[Rule]:
    rules = _pre_act_pair((*dst, "block0"), f"{src}.block0", cfg)
    for i in range(n - 1):
        rules += _pre_act_pair((*dst, f"encoder{i}"), f"{src}.encoder{i}", cfg)
    return rules


def flow_net_rules(cfg: gfla.Config) -> list[Rule]:
    """``flow_net.*`` (same names in the stage-1 and stage-2 checkpoints)."""
    n = cfg.flow_layers
    rules = _encoder(("flow_net",), "flow_net", cfg, n)
    for i in range(n - min(cfg.attn_layer)):
        rules += _res_decoder(("flow_net", f"decoder{i}"), f"flow_net.decoder{i}", cfg)
        rules += _pad_conv(("flow_net", f"jump{i}"), f"flow_net.jump{i}", cfg)
        if n - i - 1 in cfg.attn_layer:
            rules += conv_rules(("flow_net", f"output{i}"), f"flow_net.output{i}")
            rules += conv_rules(("flow_net", f"mask{i}"), f"flow_net.mask{i}.0")
    return rules


def generator_rules(cfg: gfla.Config) -> list[Rule]:
    """The full ``PoseGenerator``: source net, target net (with attention), flow net."""
    rules = _encoder(("source",), "source", cfg, cfg.layers)
    rules += _encoder(("target",), "target", cfg, cfg.layers)
    for i in range(cfg.layers):
        if cfg.layers - i in cfg.attn_layer:
            fc = f"target.attn{i}.fully_connect_layer"
            rules += conv_rules(("target", f"attn{i}", "fc1"), f"{fc}.0")
            rules += conv_rules(("target", f"attn{i}", "fc2"), f"{fc}.2")
        if cfg.num_blocks == 1:
            rules += _res_decoder(("target", f"decoder{i}_up"), f"target.decoder{i}.0", cfg)
            continue
        for j in range(cfg.num_blocks - 1):
            rules += _pre_act_pair(("target", f"decoder{i}_res{j}"), f"target.decoder{i}.0.model.{j}", cfg)
        rules += _res_decoder(("target", f"decoder{i}_up"), f"target.decoder{i}.1", cfg)
    rules += _pad_conv(("target", "outconv"), "target.outconv", cfg)
    return rules + flow_net_rules(cfg)


def discriminator_rules(cfg: gfla.Config) -> list[Rule]:
    """``ResDiscriminator`` (norm none: ``model.{1,3}``, ``shortcut.1`` after the average pool; final ``conv``)."""
    spect = cfg.disc_use_spect
    rules = []
    for i in range(cfg.disc_layers):
        dst, src = ("block0",) if i == 0 else (f"encoder{i - 1}",), "block0" if i == 0 else f"encoder{i - 1}"
        rules += conv_rules((*dst, "conv1"), f"{src}.model.1", spectral=spect)
        rules += conv_rules((*dst, "conv2"), f"{src}.model.3", spectral=spect)
        rules += conv_rules((*dst, "shortcut"), f"{src}.shortcut.1", spectral=spect)
    return rules + conv_rules(("conv",), "conv", spectral=True)


RULES = {"generator": generator_rules, "flow": flow_net_rules, "discriminator": discriminator_rules}


# ----------------------------------------------------------------------------------------------------------
# Config inference from shapes.


def detect_kind(sd: Mapping[str, Any]) -> str:
    """'generator', 'flow' (stage-1 flow net) or 'discriminator', from the key names."""
    if any(k.startswith("source.") for k in sd) and any(k.startswith("target.") for k in sd):
        return "generator"
    if sd and all(k.startswith("flow_net.") for k in sd):
        return "flow"
    if any(k.startswith("block0.") for k in sd) and any(k.startswith("conv.") for k in sd):
        return "discriminator"
    raise ConversionError(
        f"not a GFLA generator, stage-1 flow net or discriminator state dict (first keys: {sorted(sd)[:6]})"
    )


def _cap_img_f(widths: list[int], ngf: int, base_img_f: int) -> int:
    """An img_f giving encoder widths ngf*min(2^i, img_f//ngf) = ``widths``: ``base_img_f`` when it does (the
    file shows img_f only through the widths), else the smallest that does."""
    if gfla.encoder_widths(ngf, base_img_f, len(widths)) == list(widths):
        return base_img_f
    unsaturated = ngf * 2 ** (len(widths) - 1)
    return widths[-1] if widths[-1] < unsaturated else unsaturated


def _encoder_widths(sd, prefix: str, n: int, conv_index: int) -> list[int]:
    names = ["block0"] + [f"encoder{i}" for i in range(n - 1)]
    return [shape_of(sd, _weight_key(sd, f"{prefix}{m}.model.{conv_index}"))[0] for m in names]


def _flow_fields(sd, base: gfla.Config) -> dict:
    norm = (
        "instance"
        if "flow_net.block0.model.0.weight" in sd and len(shape_of(sd, "flow_net.block0.model.0.weight")) == 1
        else "none"
    )
    ci = 2 if norm == "instance" else 1
    n = 1 + count_prefix(sd, "flow_net.encoder")
    widths = _encoder_widths(sd, "flow_net.", n, ci)
    attn = tuple(
        sorted(
            n - i - 1
            for i in range(count_prefix(sd, "flow_net.decoder"))
            if f"flow_net.output{i}.weight" in sd
        )
    )
    if not attn:
        raise ConversionError("flow net state dict has no flow heads (flow_net.output{i}.weight)")
    return dict(
        norm=norm,
        use_spect=join(f"flow_net.block0.model.{ci}", "weight_orig") in sd,
        flow_ngf=widths[0],
        flow_layers=n,
        flow_img_f=_cap_img_f(widths, widths[0], base.flow_img_f),
        attn_layer=attn,
    )


def infer_config(
    sd: Mapping[str, Any], base: gfla.Config | None = None, kind: str | None = None
) -> gfla.Config:
    """The ``gfla.Config`` whose model has exactly the shapes of ``sd``; fields a file cannot tell
    (activation, and for partial checkpoints the other networks' options) come from ``base``."""
    base = base or gfla.VARIANTS["fashion"]
    kind = kind or detect_kind(sd)
    if kind == "discriminator":
        n = 1 + count_prefix(sd, "encoder")
        widths = _encoder_widths(sd, "", n, 3)  # conv2 (model.3) carries the block's output width
        return dataclasses.replace(
            base,
            disc_ndf=widths[0],
            disc_layers=n,
            disc_img_f=_cap_img_f(widths, widths[0], base.disc_img_f),
            disc_use_spect="block0.model.1.weight_orig" in sd,
        )
    fields = _flow_fields(sd, base)
    if kind == "flow":
        attn = fields["attn_layer"]
        ks = dict(base.kernel_size)  # unused by the flow net; keep the base's, default 3
        fields["kernel_size"] = tuple((layer, ks.get(layer, 3)) for layer in attn)
        fields["layers"] = max(base.layers, max(attn))
        return dataclasses.replace(base, **fields)
    ci = 2 if fields["norm"] == "instance" else 1
    layers = 1 + count_prefix(sd, "source.encoder")
    widths = _encoder_widths(sd, "source.", layers, ci)
    attn, ks = [], []
    for i in range(layers):
        key = f"target.attn{i}.fully_connect_layer.0.weight"
        if key in sd:
            hidden, _, k, _ = shape_of(sd, key)
            attn.append(layers - i)
            ks.append((layers - i, k))
    if tuple(sorted(attn)) != fields["attn_layer"]:
        raise ConversionError(
            f"generator state dict: target net attends at layers {sorted(attn)} but the flow net predicts "
            f"flows for layers {list(fields['attn_layer'])}"
        )
    if "target.decoder0.1.shortcut.0.weight" in sd or "target.decoder0.1.shortcut.0.weight_orig" in sd:
        num_blocks = 1 + count_prefix(sd, "target.decoder0.0.model.")
    else:
        num_blocks = 1
    block0 = shape_of(sd, _weight_key(sd, f"source.block0.model.{ci}"))
    return dataclasses.replace(
        base,
        **fields,
        image_nc=block0[1],
        structure_nc=shape_of(sd, _weight_key(sd, f"target.block0.model.{ci}"))[1],
        output_nc=shape_of(sd, _weight_key(sd, "target.outconv.conv1"))[0],
        ngf=widths[0],
        img_f=_cap_img_f(widths, widths[0], base.img_f),
        layers=layers,
        num_blocks=num_blocks,
        kernel_size=tuple(ks),
        attn_hidden=hidden,
    )


# ----------------------------------------------------------------------------------------------------------
# Conversion.


def build_model(cfg: gfla.Config, kind: str):
    return {
        "generator": gfla.PoseGenerator,
        "flow": gfla.PoseFlowNetGenerator,
        "discriminator": gfla.ResDiscriminator,
    }[kind](cfg)


def abstract_variables(cfg: gfla.Config, kind: str) -> dict:
    """``jax.eval_shape`` of the ptx model's init (no memory used); the smallest valid input size."""
    model = build_model(cfg, kind)
    if kind == "discriminator":
        s = 2**cfg.disc_layers
        return jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, s, s, cfg.output_nc)))
    s = cfg.size_multiple
    img, pose = jnp.zeros((1, s, s, cfg.image_nc)), jnp.zeros((1, s, s, cfg.structure_nc))
    return jax.eval_shape(model.init, jax.random.key(0), img, pose, pose)


ROLES = {"generator": "gen", "discriminator": "disc"}  # command-line role -> ptx player
# Config fields no tensor shows: a loader takes them from its own config.
FIELDS_NOT_IN_WEIGHTS = ("activation", "attn_impl", "dtype")
_ARCH_FIELDS = tuple(f.name for f in dataclasses.fields(gfla.Config) if f.name not in FIELDS_NOT_IN_WEIGHTS)
_ROLE_KINDS = {"generator": ("generator", "flow"), "discriminator": ("discriminator",)}


def convert_state_dict(
    state_dict: Mapping[str, Any],
    cfg: gfla.Config | None = None,
    *,
    kind: str | None = None,
    what: str = "state dict",
    role: str | None = None,
) -> tuple[dict, gfla.Config, str]:
    """One official state dict -> (ptx variables, the Config used, kind). With ``cfg`` given, a state dict of
    a different architecture raises a ConversionError naming the differing fields."""
    state_dict = common.strip_module_prefix(state_dict)
    try:
        kind = kind or detect_kind(state_dict)
        inferred = infer_config(state_dict, cfg, kind)
    except ConversionError as e:
        raise ConversionError(f"{what}: {e}", role=role) from e
    if cfg is not None:
        common.require_config(cfg, inferred, what=f"{what} ({kind})", role=role)
    try:
        variables, _ = apply_rules(
            state_dict,
            RULES[kind](inferred),
            expected=abstract_variables(inferred, kind),
            what=f"{what} ({kind})",
        )
    except ConversionError as e:
        raise ConversionError(str(e), role=role) from e
    return variables, inferred, kind


def convert(
    state_dicts: Mapping[str, Mapping[str, Any]], cfg: gfla.Config | None = None
) -> tuple[gfla.Config, dict[str, dict]]:
    """``{role: official state dict}`` (roles of ``ROLES``) -> (the Config they fit, ``{player: variables}``).

    The generator role takes a stage-2 ``PoseGenerator`` or a stage-1 flow net; the Config's ``disc_*`` fields
    come from the discriminator when one is given."""
    unknown = sorted(set(state_dicts) - set(ROLES))
    if unknown:
        raise ConversionError(f"unknown roles {unknown}; GFLA has {sorted(ROLES)}")
    players, configs = {}, {}
    for role, sd in state_dicts.items():
        variables, inferred, kind = convert_state_dict(sd, cfg, what=f"{role} state dict", role=role)
        if kind not in _ROLE_KINDS[role]:
            raise ConversionError(
                f"{role} state dict holds a GFLA {kind}; expected a {' or '.join(_ROLE_KINDS[role])}",
                role=role,
            )
        players[ROLES[role]], configs[role] = variables, inferred
    if not configs:
        raise ConversionError("no state dicts given; expected at least a generator")
    merged = configs.get("generator", configs.get("discriminator"))
    if "discriminator" in configs:
        disc = configs["discriminator"]
        merged = dataclasses.replace(
            merged, **{f: getattr(disc, f) for f in _ARCH_FIELDS if f.startswith("disc_")}
        )
    return merged, players


def export(cfg: gfla.Config, players: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """The inverse of :func:`convert`: ``{player: variables}`` -> ``{role: state dict}`` with the official
    names and layouts (a ``gen`` holding only ``flow_net`` exports as a stage-1 flow net)."""
    out = {}
    for role, player in ROLES.items():
        if player not in players:
            continue
        variables = players[player]
        if role == "discriminator":
            rules = discriminator_rules(cfg)
        else:
            rules = generator_rules(cfg) if "source" in variables["params"] else flow_net_rules(cfg)
        out[role] = common.export_state_dict(variables, rules)
    return out


# ----------------------------------------------------------------------------------------------------------
# Golden parity (ptx.tools.check_golden).


def _nchw(x) -> np.ndarray:
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def _nhwc(x) -> jnp.ndarray:
    return jnp.asarray(np.transpose(x, (0, 2, 3, 1)))


def config_from_meta(meta: Mapping[str, Any], kind: str) -> gfla.Config:
    """The ptx Config of a fixture's recorded constructor options (torch argument names)."""
    ctor = dict(meta.get("constructor") or {})
    if not ctor:
        raise ConversionError("fixture sidecar has no 'constructor' options: not a GFLA model fixture")
    if ctor.get("use_coord"):
        raise ConversionError("use_coord=True (CoordConv) is not supported by ptx's GFLA")
    common = dict(norm=ctor.get("norm", "instance"), activation=ctor.get("activation", "LeakyReLU"))
    if kind == "discriminator":
        return gfla.Config(
            disc_ndf=ctor.get("ndf", 64),
            disc_img_f=ctor.get("img_f", 1024),
            disc_layers=ctor.get("layers", 6),
            disc_use_spect=ctor.get("use_spect", True),
            output_nc=ctor.get("input_nc", 3),
            activation=common["activation"],
        )
    attn = ctor.get("attn_layer", [1, 2])
    if kind == "flow":
        ks = meta.get("kernel_size_option_unused_by_net") or {}
        return gfla.Config(
            **common,
            image_nc=ctor.get("image_nc", 3),
            structure_nc=ctor.get("structure_nc", 18),
            flow_ngf=ctor.get("ngf", 64),
            flow_img_f=ctor.get("img_f", 1024),
            flow_layers=ctor.get("encoder_layer", 5),
            attn_layer=attn,
            kernel_size={int(a): int(dict(ks).get(str(a), 3)) for a in gfla._parse_layers(attn)},
            layers=max(3, max(gfla._parse_layers(attn))),
            use_spect=ctor.get("use_spect", True),
        )
    flow = dict(meta.get("flow_net_constructor") or {"ngf": 32, "img_f": 256, "encoder_layer": 5})
    return gfla.Config(
        **common,
        image_nc=ctor.get("image_nc", 3),
        structure_nc=ctor.get("structure_nc", 18),
        output_nc=ctor.get("output_nc", 3),
        ngf=ctor.get("ngf", 64),
        img_f=ctor.get("img_f", 1024),
        layers=ctor.get("layers", 6),
        num_blocks=ctor.get("num_blocks", 2),
        attn_layer=attn,
        kernel_size=ctor.get("extractor_kz", {"1": 5, "2": 5}),
        use_spect=ctor.get("use_spect", True),
        flow_ngf=flow.get("ngf", 32),
        flow_img_f=flow.get("img_f", 256),
        flow_layers=flow.get("encoder_layer", 5),
    )


def run_golden(
    arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """check_golden entry: model fixtures (``param/*`` state dict) and the op fixture (``meta['cases']``)."""
    state = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    if not state:
        if "cases" in meta:
            return _run_ops_golden(arrays, meta)
        raise ConversionError("fixture has neither 'param/*' arrays nor op 'cases': not a GFLA fixture")
    kind = detect_kind(state)
    cfg = config_from_meta(meta, kind)
    variables, _, _ = convert_state_dict(state, cfg, kind=kind, what="fixture state dict")
    model = build_model(cfg, kind)
    wanted = {k[len("output/") :]: v for k, v in arrays.items() if k.startswith("output/")}
    if kind == "discriminator":
        ((name, ref),) = wanted.items()
        return {name: (_nchw(jax.jit(model.apply)(variables, _nhwc(arrays["input/image"]))), ref)}
    inputs = [_nhwc(arrays[f"input/{n}"]) for n in ("source", "source_pose", "target_pose")]
    out = jax.jit(model.apply)(variables, *inputs)
    got = {f"flow_{i}": f for i, f in enumerate(out["flows"])} | {
        f"mask_{i}": m for i, m in enumerate(out["masks"])
    }
    if kind == "generator":
        got |= {"image": out["image"]} | {f"attn_softmax_{i}": a for i, a in enumerate(out["attn"])}
    missing = sorted(set(wanted) - set(got))
    if missing:
        raise ConversionError(f"fixture outputs {missing} are not produced by the ptx {kind} model")
    return {name: (_nchw(got[name]), ref) for name, ref in wanted.items()}


def _run_ops_golden(arrays, meta) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The CUDA-op fixture (gfla_ops): block_extractor, local_attn_reshape, resample2d outputs and gradients."""
    from ptx import ops

    results = {}
    for case, spec in meta["cases"].items():
        k = spec.get("kernel_size")
        if spec["op"] == "block_extractor":
            names = ("source", "flow_field")
            fn = lambda s, f, k=k: ops.blocks_to_image(ops.extract_blocks(s, f, k))  # noqa: E731
        elif spec["op"] == "local_attn_reshape":
            names = ("inputs",)
            fn = lambda a, k=k: ops.local_attn_reshape(a, k)  # noqa: E731
        elif spec["op"] == "resample2d":
            names = ("input1", "flow")
            fn = lambda x, f, s=spec: ops.gaussian_resample(x, f, s["kernel_size"], s["dilation"], s["sigma"])  # noqa: E731
        else:
            raise ConversionError(f"op fixture case {case}: unknown op {spec['op']!r}")
        args = [_nhwc(arrays[f"input/{case}/{n}"]) for n in names]
        proj = _nhwc(arrays[f"input/{case}/proj"])
        out, vjp = jax.vjp(fn, *args)
        grads = vjp(proj.astype(out.dtype))
        results[f"{case}/out"] = (_nchw(out), arrays[f"output/{case}/out"])
        for n, g in zip(names, grads):
            results[f"{case}/grad_{n}"] = (_nchw(g), arrays[f"grad/{case}/{n}"])
    return results


# ----------------------------------------------------------------------------------------------------------
# Command line.


def cli(argv: list[str] | None = None) -> int:
    """``python -m ptx.convert gfla``: official .pth files -> a ``ptx.convert`` directory."""
    return common.run_cli(
        argv,
        method="gfla",
        roles=ROLES,
        convert=convert,
        config_class=gfla.Config,
        doc=__doc__,
        fields_not_in_weights=FIELDS_NOT_IN_WEIGHTS,
    )
