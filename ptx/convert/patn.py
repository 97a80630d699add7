"""Official PATN / pSSIM PyTorch state dicts -> ptx variables, golden parity, and the ``patn`` convert CLI.

The original (``tengteng95/Pose-Transfer``, and the pSSIM fork, which keeps its network) saves
``<epoch>_net_netG.pth`` / ``_netD_PB.pth`` / ``_netD_PP.pth`` from ``state_dict()``; key names are
``nn.Sequential`` indices whose positions depend on the options (padding layers, dropout layers), so the
mapping (``ptx.convert.common.Rule`` s) is derived from the ptx ``Config``, and the Config itself is inferred
from the key names and shapes: widths, depths, number of blocks, norm, zero or reflect padding, dropout.
Reflect and replicate padding leave the same keys: ``--set padding_type=replicate`` (or a ``--config``) says so.

    python -m ptx.convert patn --generator latest_net_netG.pth [--disc-pose latest_net_netD_PB.pth]
        [--disc-image latest_net_netD_PP.pth] [--config configs/patn_fashion.py] --out DIR

writes the layout every converter writes (``ptx.convert.common.write_converted``).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ptx.convert import common
from ptx.convert.common import ConversionError, Rule, shape_of
from ptx.models import patn as model

StateDict = Mapping[str, np.ndarray]
ROLES = {"generator": "gen", "disc_pose": "disc_pose", "disc_image": "disc_image"}  # CLI role -> player
# Config fields no tensor shows (pose-map rendering): a loader takes them from its own config.
FIELDS_NOT_IN_WEIGHTS = ("heatmap", "heatmap_sigma")
GENERATOR_FIELDS = (
    "ngf",
    "n_blocks",
    "n_downsampling",
    "norm",
    "use_dropout",
    "padding_type",
    "image_nc",
    "pose_nc",
    "output_nc",
)
DISCRIMINATOR_FIELDS = ("ndf", "n_blocks_d", "n_downsampling_d", "use_dropout_d", "norm")


# ----------------------------------------------------------------------------------------------- layouts
class _Layout:
    """The rules of one network, plus where its affine-free instance norms sit (files saved by torch 0.3
    carry unused running statistics there)."""

    def __init__(self, norm: str):
        self.norm = norm
        self.rules: list[Rule] = []
        self.stat_free_norms: set[str] = set()

    def conv(self, dst: tuple[str, ...], src: str, *, bias: bool, transpose: bool = False) -> None:
        self.rules += common.conv_rules(dst, src, bias=bias, transpose=transpose)

    def norm_layer(self, dst: tuple[str, ...], src: str) -> None:
        if self.norm == "batch":
            self.rules += common.norm_rules((*dst, "BatchNorm_0"), src, running_stats=True)
        else:
            self.stat_free_norms.add(src)

    def ignored(self, key: str) -> bool:
        module, _, leaf = key.rpartition(".")
        legacy = leaf in ("running_mean", "running_var") and module in self.stat_free_norms
        return legacy or common.is_bookkeeping(key)

    def encoder(self, dst: tuple[str, ...], src: str, n_convs: int, bias: bool) -> None:
        """7x7 conv + (n_convs - 1) stride-2 convs, each followed by a norm and a ReLU: ``src.{1+3i}``."""
        for i in range(n_convs):
            self.conv((*dst, f"Conv2d_{i}"), f"{src}.{1 + 3 * i}", bias=bias)
            self.norm_layer((*dst, f"Norm_{i}"), f"{src}.{2 + 3 * i}")

    def conv_block(
        self, dst: tuple[str, ...], src: str, *, padding: str, dropout: bool, last_norm: bool, bias: bool
    ) -> None:
        """``build_conv_block``: [pad] conv norm ReLU [dropout] [pad] conv [norm]."""
        pad = 0 if padding == "zero" else 1
        conv0 = pad
        conv1 = conv0 + 3 + int(dropout) + pad
        self.conv((*dst, "PadConv_0", "Conv2d_0"), f"{src}.{conv0}", bias=bias)
        self.norm_layer((*dst, "Norm_0"), f"{src}.{conv0 + 1}")
        self.conv((*dst, "PadConv_1", "Conv2d_0"), f"{src}.{conv1}", bias=bias)
        if last_norm:
            self.norm_layer((*dst, "Norm_1"), f"{src}.{conv1 + 1}")


def generator_layout(cfg: model.Config) -> _Layout:
    """``PATNetwork``: two encoders, ``n_blocks`` attention blocks (two conv blocks each), the decoder."""
    out = _Layout(cfg.norm)
    n = cfg.n_downsampling + 1
    out.encoder(("image_encoder",), "model.stream1_down", n, cfg.use_bias)
    out.encoder(("pose_encoder",), "model.stream2_down", n, cfg.use_bias)
    for k in range(cfg.n_blocks):
        for stream, name, last_norm in ((1, "image", True), (2, "pose", False)):
            out.conv_block(
                (f"block_{k}", name),
                f"model.att.{k}.conv_block_stream{stream}",
                padding=cfg.padding_type,
                dropout=cfg.use_dropout,
                last_norm=last_norm,
                bias=cfg.use_bias,
            )
    for i in range(cfg.n_downsampling):
        out.conv(
            ("decoder", f"ConvTranspose2d_{i}"),
            f"model.stream1_up.{3 * i}",
            bias=cfg.use_bias,
            transpose=True,
        )
        out.norm_layer(("decoder", f"Norm_{i}"), f"model.stream1_up.{3 * i + 1}")
    out.conv(("decoder", "Conv2d_0"), f"model.stream1_up.{3 * cfg.n_downsampling + 1}", bias=True)
    return out


def discriminator_layout(cfg: model.Config) -> _Layout:
    """``ResnetDiscriminator``: encoder (``model.{1+3i}``), then residual conv blocks (``model.<j>.conv_block``)."""
    out = _Layout(cfg.norm)
    n = cfg.n_downsampling_d + 1
    out.encoder(("encoder",), "model", n, cfg.use_bias)
    for k in range(cfg.n_blocks_d):
        out.conv_block(
            (f"block_{k}",),
            f"model.{3 * n + 1 + k}.conv_block",
            padding="reflect",
            dropout=cfg.use_dropout_d,
            last_norm=True,
            bias=cfg.use_bias,
        )
    return out


# ------------------------------------------------------------------------------------------- inference
def _conv_positions(sd: StateDict, prefix: str) -> list[int]:
    """Sequential indices ``i`` with a 4-d ``{prefix}.{i}.weight`` (the convs of that Sequential)."""
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.weight$")
    return sorted(int(m.group(1)) for k, v in sd.items() if (m := pat.match(k)) and np.ndim(v) == 4)


def _padding_dropout(sd: StateDict, prefix: str, what: str) -> tuple[str, bool]:
    """(padding, dropout) of a ``build_conv_block`` from its two conv positions; padding 'zero' or 'padded'."""
    table = {
        (1, 6): ("padded", True),
        (1, 5): ("padded", False),
        (0, 4): ("zero", True),
        (0, 3): ("zero", False),
    }
    key = tuple(_conv_positions(sd, prefix))
    if key not in table:
        raise ConversionError(
            f"{what}: {prefix} has convs at Sequential positions {key}; expected one of {sorted(table)}"
        )
    return table[key]


def _norm_of(sd: StateDict, first_norm: str) -> str:
    return "batch" if f"{first_norm}.weight" in sd else "instance"


def infer_generator_config(
    sd: StateDict, base: model.Config | None = None, what: str = "generator"
) -> model.Config:
    """``base`` with the fields a PATNetwork state dict determines (``GENERATOR_FIELDS``) read from it."""
    base = base or model.Config()
    if "model.stream1_down.1.weight" not in sd:
        raise ConversionError(
            f"{what}: has no 'model.stream1_down.1.weight' (first keys: {sorted(sd)[:3]}); expected a PATNetwork "
            "generator state dict"
        )
    first = shape_of(sd, "model.stream1_down.1.weight", what)
    n_down = len(_conv_positions(sd, "model.stream1_down")) - 1
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"model\.att\.(\d+)\.", k))}
    if not blocks:
        raise ConversionError(f"{what}: no 'model.att.<k>.' keys; expected a PATNetwork state dict")
    padding, dropout = _padding_dropout(sd, "model.att.0.conv_block_stream1", what)
    if padding == "padded":  # reflect and replicate leave the same keys
        padding = base.padding_type if base.padding_type != "zero" else "reflect"
    return dataclasses.replace(
        base,
        ngf=first[0],
        n_blocks=max(blocks) + 1,
        n_downsampling=n_down,
        norm=_norm_of(sd, "model.stream1_down.2"),
        use_dropout=dropout,
        padding_type=padding,
        image_nc=first[1],
        pose_nc=shape_of(sd, "model.stream2_down.1.weight", what)[1],
        output_nc=shape_of(sd, f"model.stream1_up.{3 * n_down + 1}.weight", what)[0],
    )


def infer_discriminator_config(
    sd: StateDict, base: model.Config | None = None, what: str = "discriminator"
) -> tuple[model.Config, int]:
    """(``base`` with the ``DISCRIMINATOR_FIELDS`` of a ResnetDiscriminator state dict, its input channels)."""
    base = base or model.Config()
    if "model.1.weight" not in sd:
        raise ConversionError(
            f"{what}: has no 'model.1.weight' (first keys: {sorted(sd)[:3]}); expected a ResnetDiscriminator "
            "state dict"
        )
    first = shape_of(sd, "model.1.weight", what)
    blocks = sorted({int(m.group(1)) for k in sd if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    dropout = _padding_dropout(sd, f"model.{blocks[0]}.conv_block", what)[1] if blocks else base.use_dropout_d
    cfg = dataclasses.replace(
        base,
        ndf=first[0],
        n_blocks_d=len(blocks),
        n_downsampling_d=len(_conv_positions(sd, "model")) - 1,
        use_dropout_d=dropout,
        norm=_norm_of(sd, "model.2"),
    )
    return cfg, first[1]


# ------------------------------------------------------------------------------------------ conversion
def _dummy(channels: int, down: int) -> jax.ShapeDtypeStruct:
    s = 4 * 2**down
    return jax.ShapeDtypeStruct((1, s, s, channels), jnp.float32)


def abstract_variables(cfg: model.Config, role: str, in_channels: int | None = None) -> dict[str, Any]:
    """``jax.eval_shape`` of the network's init: the variables a conversion must fill (no memory used)."""
    if role == "generator":
        net, inputs = (
            model.Generator(cfg),
            (_dummy(cfg.image_nc, cfg.n_downsampling), _dummy(cfg.pose_nc, cfg.n_downsampling)),
        )
    else:
        net, inputs = (
            model.Discriminator(cfg),
            (_dummy(in_channels or discriminator_channels(cfg, role), cfg.n_downsampling_d),),
        )
    shapes = jax.eval_shape(lambda *xs: net.init({"params": jax.random.key(0)}, *xs), *inputs)
    return {k: v for k, v in shapes.items() if k in ("params", "batch_stats")}  # not sown intermediates


def discriminator_channels(cfg: model.Config, role: str) -> int:
    """The critic's input: the (target or generated) image with the target pose maps or the source image."""
    return cfg.output_nc + (cfg.pose_nc // 2 if role == "disc_pose" else cfg.image_nc)


def _convert_one(role: str, sd: StateDict, cfg: model.Config) -> dict[str, Any]:
    """One network's variables, ``cfg`` being the config already inferred for it."""
    if role == "generator":
        layout, expected = generator_layout(cfg), abstract_variables(cfg, role)
    else:
        in_ch = shape_of(sd, "model.1.weight", role)[1]
        want = discriminator_channels(cfg, role)
        if in_ch != want:
            raise ConversionError(
                f"{role} state dict: its first conv takes {in_ch} channels; expected {want} (target image + "
                f"{'target pose maps' if role == 'disc_pose' else 'source image'}): is it the other critic?",
                role=role,
            )
        layout, expected = discriminator_layout(cfg), abstract_variables(cfg, role, in_ch)
    try:
        variables, _ = common.apply_rules(
            sd, layout.rules, expected=expected, ignore=layout.ignored, what=f"{role} state dict"
        )
    except ConversionError as e:
        raise ConversionError(str(e), role=role) from e
    return variables


def convert(
    state_dicts: Mapping[str, StateDict], cfg: model.Config | None = None
) -> tuple[model.Config, dict[str, dict]]:
    """``{role: official state dict}`` (roles of ``ROLES``) -> (the Config they fit, ``{player: variables}``).

    The generator fixes ``GENERATOR_FIELDS``, the critics ``DISCRIMINATOR_FIELDS`` (both critics share them,
    and ``norm`` is shared with the generator); with ``cfg`` given, every field must agree with it."""
    unknown = sorted(set(state_dicts) - set(ROLES))
    if unknown or not state_dicts:
        raise ConversionError(f"roles {unknown or 'none'} given; expected some of {list(ROLES)}")
    current = cfg or model.Config()
    fixed = {f.name for f in dataclasses.fields(model.Config)} if cfg is not None else set()
    players = {}
    for role in sorted(state_dicts, key=list(ROLES).index):  # generator first: its widths size the critics
        sd = common.strip_module_prefix(state_dicts[role])
        what = f"{role} state dict"
        try:
            if role == "generator":
                inferred, fields = infer_generator_config(sd, current, what), GENERATOR_FIELDS
            else:
                inferred, fields = infer_discriminator_config(sd, current, what)[0], DISCRIMINATOR_FIELDS
        except ConversionError as e:
            raise ConversionError(str(e), role=role) from e
        differ = [f for f in fields if f in fixed and getattr(inferred, f) != getattr(current, f)]
        if differ:
            against = "the given config" if cfg is not None else "the networks before it"
            there = "config" if cfg is not None else "before"
            lines = ", ".join(
                f"{f}: {there} {getattr(current, f)!r}, weights {getattr(inferred, f)!r}" for f in differ
            )
            raise ConversionError(
                f"{what} does not match {against}: {lines}; expected one PATN config", role=role
            )
        current, fixed = inferred, fixed | set(fields)
        players[ROLES[role]] = _convert_one(role, sd, current)
    return current, players


def export(cfg: model.Config, players: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """The inverse of :func:`convert`: ``{player: variables}`` -> ``{role: state dict}`` with the official
    names and layouts (no ``num_batches_tracked``, which the original never reads)."""
    out = {}
    for role, player in ROLES.items():
        if player in players:
            layout = generator_layout(cfg) if role == "generator" else discriminator_layout(cfg)
            out[role] = common.export_state_dict(players[player], layout.rules)
    return out


# -------------------------------------------------------------------------------------------- goldens
def _nchw_to_nhwc(x: np.ndarray) -> jax.Array:
    return jnp.asarray(np.transpose(x, (0, 2, 3, 1)))


def _nhwc_to_nchw(x: jax.Array) -> np.ndarray:
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def _config_from_meta(sd: StateDict, meta: Mapping[str, Any]) -> model.Config:
    """The fixture's generator Config: inferred from its state dict, checked against the recorded options."""
    cons = meta.get("constructor", {})
    base = model.Config(padding_type=cons.get("padding_type", "reflect"))
    cfg = infer_generator_config(sd, base, "fixture state dict")
    for field in ("norm", "ngf", "n_blocks", "use_dropout", "n_downsampling", "padding_type", "output_nc"):
        if field in cons and cons[field] != getattr(cfg, field):
            raise ConversionError(
                f"fixture says {field}={cons[field]!r} but its state dict implies {getattr(cfg, field)!r}"
            )
    return cfg


def run_golden(
    arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """PATN fixture: convert ``param/*``, run ``input/x1_P1`` + ``input/x2_BP1_BP2``, compare ``output/*``."""
    sd = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    cfg, players = convert({"generator": sd}, _config_from_meta(sd, meta))
    variables = players["gen"]
    gen = model.Generator(cfg)
    image, pose = _nchw_to_nhwc(arrays["input/x1_P1"]), _nchw_to_nhwc(arrays["input/x2_BP1_BP2"])
    wanted = {k[len("output/") :]: v for k, v in arrays.items() if k.startswith("output/")}

    out, state = jax.jit(lambda v, a, b: gen.apply(v, a, b, mutable=["intermediates"]))(
        variables, image, pose
    )
    got = {name: vals[0] for name, vals in state["intermediates"].items()}
    got["image"] = out["image"]
    if "image_bn_batchstats" in wanted:
        if cfg.norm != "batch":
            raise ConversionError(
                "fixture has output/image_bn_batchstats but the generator has no batch norm"
            )
        # Train-mode batch norm (batch statistics), dropout off; running statistics updates are discarded.
        fn = jax.jit(
            lambda v, a, b: gen.apply(v, a, b, train=True, dropout=False, mutable=["batch_stats"])[0]
        )
        got["image_bn_batchstats"] = fn(variables, image, pose)["image"]
    unknown = sorted(set(wanted) - set(got))
    if unknown:
        raise ConversionError(f"PATN fixture outputs not produced by ptx: {unknown} (known: {sorted(got)})")
    return {f"output/{k}": (_nhwc_to_nchw(got[k]), v) for k, v in wanted.items()}


# ------------------------------------------------------------------------------------------------ CLI
def cli(argv: list[str] | None = None) -> int:
    """``python -m ptx.convert patn``: official .pth files -> a ``ptx.convert`` directory."""
    return common.run_cli(
        argv,
        method="patn",
        roles=ROLES,
        convert=convert,
        config_class=model.Config,
        doc=__doc__,
        fields_not_in_weights=FIELDS_NOT_IN_WEIGHTS,
    )
