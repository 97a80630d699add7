"""Official SCA-GAN PyTorch weights (rocketappslab/SCA-GAN) -> ptx variables, the inverse, and golden parity.

The original trains two runs, each saving ``latest_netG.pth``, ``latest_netD_PB.pth``, ``latest_netD_PP.pth``:

* ``checkpoints/scagan_pctnet``: the PCT-Net (``ResnetGenerator``: ``prepro.*``, ``encoder.*``, ``residual.*``,
  ``decoder.*``, ``postpro.*``) and its two critics (edge + pose maps, edge + source edge);
* the IS-Net run: ``CSGenerator`` (``edge_generator.model_edge.*`` = a full PCT-Net with the batch-norm
  statistics that drifted during IS-Net training, ``enc_style.*`` (every tensor twice: ``enc_style.model.N``
  aliases ``head_0`` / ``down_{N-1}``), ``fc``, seven DeBlks, ``conv_img``) and its two critics.

Roles (``ROLES``) map the files to the players of ``ptx.methods.scagan``. Player ``gen`` is the ptx ``ISNet``
whose ``edge_generator`` is the PCT-Net: the IS-Net file fills all of it, with the embedded PCT-Net's weights
and running statistics (what the original's test uses); a PCT-Net file alone fills only ``edge_generator``
(what the recipe's first stage trains); given with the IS-Net file it must hold the same weights (its
statistics may differ and are not used). The model ``Config`` is inferred from names and shapes; the decoder's latent size is known only as
the product ``fc`` outputs / (8 nf): without a config, the sizes are those of the original's rule (height a
multiple of 32, widths from its hard-coded 256/176 aspect) with that many latent positions; a given config's
are checked against it.

    python -m ptx.convert scagan --isnet latest_netG.pth [--disc-pose ...] [--disc-image ...] --out DIR
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
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
    is_bookkeeping,
    join,
    linear_rules,
    norm_rules,
    require_config,
    run_cli,
    shape_of,
    strip_module_prefix,
)
from ptx.models import scagan as model

StateDict = Mapping[str, Any]

ROLES: dict[str, str] = {
    "pctnet": "gen",  # scagan_pctnet/latest_netG.pth -> gen's edge_generator only
    "pctnet_disc_pose": "edge_disc_pose",  # scagan_pctnet/latest_netD_PB.pth: cat(edge, target pose)
    "pctnet_disc_image": "edge_disc_image",  # scagan_pctnet/latest_netD_PP.pth: cat(edge, source edge)
    "isnet": "gen",  # IS-Net latest_netG.pth: the whole gen, PCT-Net included
    "disc_pose": "disc_pose",  # IS-Net latest_netD_PB.pth: cat(image, target pose)
    "disc_image": "disc_image",  # IS-Net latest_netD_PP.pth: cat(image, source image)
}
EDGE = (model.EDGE_GENERATOR,)  # where the PCT-Net sits in gen
PCT_IN_ISNET = "edge_generator.model_edge"
DECODER_NAMES = {"head_0": "head_0", "middle_0": "G_middle_0", "middle_1": "G_middle_1"} | {
    f"up_{i}": f"up_{i}" for i in range(4)
}
# Config fields no weight file determines (the others are inferred by the infer_*_fields functions).
FIELDS_NOT_IN_WEIGHTS = ("latent_size", "up_sizes", "content_weight")
ORIGINAL_ASPECT = 256.0 / 176.0  # hard-coded in CSGenerator's size computations


# ----------------------------------------------------------------------------------------------------------
# Name mapping.


def _bn(dst: tuple, src: str) -> list[Rule]:
    return norm_rules((*dst, "BatchNorm_0"), src, running_stats=True)


def pct_rules(cfg: model.Config, prefix: str = "", dst: tuple = ()) -> list[Rule]:
    """PCT-Net ``ResnetGenerator`` (batch norm, reflect padding, no dropout) at torch ``prefix``."""
    p = lambda name: join(prefix, name)  # noqa: E731
    enc = (*dst, "encoder")
    rules = conv_rules((*enc, "Conv2d_0"), p("prepro.1"), bias=False) + _bn((*enc, "Norm_0"), p("prepro.2"))
    for i in range(cfg.edge_downsampling):
        rules += conv_rules((*enc, f"Conv2d_{i + 1}"), p(f"encoder.{3 * i}"), bias=False)
        rules += _bn((*enc, f"Norm_{i + 1}"), p(f"encoder.{3 * i + 1}"))
    for k in range(cfg.edge_blocks):
        block, src = (*dst, f"block_{k}"), p(f"residual.{k}.conv_block")
        rules += conv_rules((*block, "PadConv_0", "Conv2d_0"), f"{src}.1", bias=False) + _bn(
            (*block, "Norm_0"), f"{src}.2"
        )
        rules += conv_rules((*block, "PadConv_1", "Conv2d_0"), f"{src}.5", bias=False) + _bn(
            (*block, "Norm_1"), f"{src}.6"
        )
    dec = (*dst, "decoder")
    for i in range(cfg.edge_downsampling):
        rules += conv_rules((*dec, f"ConvTranspose2d_{i}"), p(f"decoder.{3 * i}"), bias=False, transpose=True)
        rules += _bn((*dec, f"Norm_{i}"), p(f"decoder.{3 * i + 1}"))
    return rules + conv_rules((*dec, "Conv2d_0"), p("postpro.1"))


def _residual_conv_block(dst: tuple, src: str, alias: str) -> list[Rule]:
    rules = []
    for name in ("conv1", "skip", "conv2"):
        rules += conv_rules((*dst, name), f"{src}.{name}.conv", aliases=(f"{alias}.{name}.conv",))
    return rules


def _spade(dst: tuple, src: str) -> list[Rule]:
    return (
        conv_rules((*dst, "shared"), f"{src}.mlp_shared.0")
        + conv_rules((*dst, "gamma"), f"{src}.mlp_gamma")
        + conv_rules((*dst, "beta"), f"{src}.mlp_beta")
    )


def isnet_rules(cfg: model.Config) -> list[Rule]:
    """``CSGenerator`` without its PCT-Net -> everything of the ``gen`` player but ``edge_generator``."""
    names = ["head_0"] + [f"down_{i}" for i in range(cfg.style_downsampling)]
    rules = []
    for n, name in enumerate(names):
        rules += _residual_conv_block(("style_encoder", name), f"enc_style.{name}", f"enc_style.model.{n}")
    rules += linear_rules(("fc",), "fc")
    for ptx_name, torch_name in DECODER_NAMES.items():
        for conv in ("s1", "e1", "e2", "s2", "p1", "p2"):
            rules += conv_rules((ptx_name, f"conv_{conv}"), f"{torch_name}.conv_{conv}")
            rules += _spade((ptx_name, f"norm_{conv}"), f"{torch_name}.norm_{conv}")
    return rules + conv_rules(("conv_img",), "conv_img")


def disc_rules(cfg: model.Config) -> list[Rule]:
    """``ResnetDiscriminator`` (instance norm without affine: convs only, all biased)."""
    rules = []
    for i in range(cfg.n_downsampling_d + 1):
        rules += conv_rules(("encoder", f"Conv2d_{i}"), f"model.{1 + 3 * i}")
    first = 3 * (cfg.n_downsampling_d + 1) + 1
    second = 6 if cfg.use_dropout_d else 5
    for k in range(cfg.n_blocks_d):
        src = f"model.{first + k}.conv_block"
        rules += conv_rules((f"block_{k}", "PadConv_0", "Conv2d_0"), f"{src}.1")
        rules += conv_rules((f"block_{k}", "PadConv_1", "Conv2d_0"), f"{src}.{second}")
    return rules


# ----------------------------------------------------------------------------------------------------------
# Config inference.


def _indices(sd: StateDict, pattern: str) -> list[int]:
    pat = re.compile(pattern)
    return sorted({int(m.group(1)) for k in sd if (m := pat.match(k))})


def infer_pct_fields(sd: StateDict, prefix: str = "") -> dict[str, Any]:
    first = shape_of(sd, join(prefix, "prepro.1.weight"), "PCT-Net state dict")
    edge_nc = shape_of(sd, join(prefix, "postpro.1.weight"), "PCT-Net state dict")[0]
    pose2 = first[1] - edge_nc
    if pose2 <= 0 or pose2 % 2:
        raise ConversionError(
            f"PCT-Net first conv takes {first[1]} channels; expected edge ({edge_nc}) + 2 x pose maps"
        )
    convs = _indices(sd, re.escape(join(prefix, "encoder.")) + r"(\d+)\.weight$")
    return dict(
        edge_ngf=first[0],
        edge_blocks=count_prefix(sd, join(prefix, "residual.")),
        edge_downsampling=sum(
            1 for i in convs if len(shape_of(sd, join(prefix, f"encoder.{i}.weight"))) == 4
        ),
        pose_nc=pose2 // 2,
        edge_nc=edge_nc,
    )


def infer_isnet_fields(sd: StateDict) -> dict[str, Any]:
    what = "IS-Net state dict"
    head = shape_of(sd, "enc_style.head_0.conv1.conv.weight", what)
    return dict(
        image_nc=head[1],
        style_ngf=head[0],
        style_downsampling=count_prefix(sd, "enc_style.down_"),
        nf=shape_of(sd, "conv_img.weight", what)[1],
        z_dim=shape_of(sd, "fc.weight", what)[1],
        spade_hidden=shape_of(sd, "head_0.norm_s1.mlp_shared.0.weight", what)[0],
    )


def infer_disc_fields(sd: StateDict) -> tuple[dict[str, Any], int]:
    """(discriminator Config fields, input channels)."""
    what = "ResnetDiscriminator state dict"
    first = shape_of(sd, "model.1.weight", what)
    convs = [i for i in _indices(sd, r"model\.(\d+)\.weight$") if len(shape_of(sd, f"model.{i}.weight")) == 4]
    blocks = _indices(sd, r"model\.(\d+)\.conv_block\.")
    dropout = True
    if blocks:
        inner = _indices(sd, rf"model\.{blocks[0]}\.conv_block\.(\d+)\.weight$")
        if inner not in ([1, 6], [1, 5]):
            raise ConversionError(f"{what}: block convs at positions {inner}; expected [1, 6] or [1, 5]")
        dropout = inner == [1, 6]
    fields = dict(
        ndf=first[0], n_blocks_d=len(blocks), n_downsampling_d=len(convs) - 1, use_dropout_d=dropout
    )
    return fields, first[1]


def _kind(sd: StateDict) -> str:
    if any(k.startswith(PCT_IN_ISNET + ".") for k in sd):
        return "isnet"
    if "prepro.1.weight" in sd:
        return "pctnet"
    if "model.1.weight" in sd:
        return "disc"
    return "unknown"


# ----------------------------------------------------------------------------------------------------------
# Conversion.


def _error(role: str, message: str) -> ConversionError:
    return ConversionError(f"{role}: {message}", role=role)  # the shared CLI names the role's file


@functools.lru_cache(maxsize=16)
def _abstract(cfg: model.Config, kind: str, in_channels: int = 0) -> dict:
    """``jax.eval_shape`` of a ptx module's init (no memory, no compile; traced once per config)."""
    key = jax.random.key(0)
    h, w = cfg.image_size
    if kind == "disc":
        x = jnp.zeros((1, 4 * 2**cfg.n_downsampling_d, 4 * 2**cfg.n_downsampling_d, in_channels))
        return jax.eval_shape(model.Discriminator(cfg).init, key, x)
    s = 4 * 2**cfg.edge_downsampling
    edge, pose = jnp.zeros((1, s, s, cfg.edge_nc)), jnp.zeros((1, s, s, cfg.pose_nc))
    net = model.ISNet(cfg)
    if kind == "pctnet":
        return model.as_isnet_variables(jax.eval_shape(model.PCTNet(cfg).init, key, edge, pose, pose))
    image, z = jnp.zeros((1, h, w, cfg.image_nc)), jnp.zeros((1, cfg.z_dim))
    return jax.eval_shape(lambda: net.init(key, image, edge, pose, pose, z))


def infer_config(
    state_dicts: Mapping[str, StateDict], cfg: model.Config | None = None, *, base: model.Config | None = None
) -> model.Config:
    """The Config all given files fit; with ``cfg``, differing fields raise a ConversionError naming them.
    Fields the weights cannot tell (sizes, content weight) come from ``cfg``, else ``base``, else defaults."""
    fields: dict[str, Any] = {}
    for role, sd in state_dicts.items():
        kind = _kind(sd)
        if kind == "isnet":
            got = infer_pct_fields(sd, PCT_IN_ISNET) | infer_isnet_fields(sd)
        elif kind == "pctnet":
            got = infer_pct_fields(sd)
        elif kind == "disc":
            got = infer_disc_fields(sd)[0]
        else:
            raise _error(role, f"not an SCA-GAN state dict (first keys {sorted(sd)[:4]})")
        expected_kind = {"pctnet": "pctnet", "isnet": "isnet"}.get(role, "disc")
        if kind != expected_kind:
            names = {"isnet": "an IS-Net", "pctnet": "a PCT-Net", "disc": "a ResnetDiscriminator"}
            raise _error(
                role, f"holds {names[kind]} state dict; the {role} role takes {names[expected_kind]}"
            )
        if cfg is not None:
            require_config(cfg, dataclasses.replace(cfg, **got), what=f"{role} state dict", role=role)
        for f, v in got.items():
            if f in fields and fields[f] != v:
                raise _error(role, f"{f}={v!r} disagrees with another file's {f}={fields[f]!r}")
            fields[f] = v
    inferred = dataclasses.replace(cfg or base or model.Config(), **fields)
    if "isnet" in state_dicts:
        n = shape_of(state_dicts["isnet"], "fc.weight")[0]
        if cfg is None and base is None:
            inferred = _with_latent_of(inferred, n // (8 * inferred.nf))
        lh, lw = inferred.latent_size
        if n != 8 * inferred.nf * lh * lw:
            raise _error(
                "isnet",
                f"fc has {n} outputs = 8 x nf ({inferred.nf}) x {n // (8 * inferred.nf)} latent positions, but "
                f"the config's latent_size {inferred.latent_size} has {lh * lw}; give a Config made with "
                "models.scagan.for_image_size for the training image size",
            )
    return inferred


def _with_latent_of(cfg: model.Config, positions: int) -> model.Config:
    """The sizes of the original's rule (height multiple of 32, width from the 256/176 aspect) whose latent map
    has ``positions`` positions; ``cfg`` unchanged when none has (the caller then reports the mismatch)."""
    for lh in range(1, 257):
        if lh * round(lh / ORIGINAL_ASPECT) == positions:
            latent, ups = model.decoder_sizes(lh * 2**model.N_UPSAMPLING, ORIGINAL_ASPECT)
            return dataclasses.replace(cfg, latent_size=latent, up_sizes=ups)
    return cfg


def convert(
    state_dicts: Mapping[str, StateDict], cfg: model.Config | None = None
) -> tuple[model.Config, dict[str, dict]]:
    """{role: official state dict} -> (Config, {player: flax variables}); every key used, every leaf written."""
    unknown = sorted(set(state_dicts) - set(ROLES))
    if unknown:
        raise ConversionError(f"unknown roles {unknown}; SCA-GAN roles: {sorted(ROLES)}")
    sds = {role: strip_module_prefix(sd) for role, sd in state_dicts.items()}
    cfg = infer_config(sds, cfg)
    players: dict[str, dict] = {}
    for role, sd in sds.items():
        what = f"{role} state dict"
        if role == "isnet":
            rules = pct_rules(cfg, PCT_IN_ISNET, EDGE) + isnet_rules(cfg)
            players["gen"], _ = apply_rules(
                sd, rules, expected=_abstract(cfg, "isnet"), ignore=is_bookkeeping, what=what
            )
        elif role == "pctnet":
            gen, _ = apply_rules(
                sd,
                pct_rules(cfg, "", EDGE),
                expected=_abstract(cfg, "pctnet"),
                ignore=is_bookkeeping,
                what=what,
            )
            if "isnet" in sds:
                _check_same_weights(gen, sds["isnet"], cfg)
            else:
                players["gen"] = gen
        else:
            _, in_ch = infer_disc_fields(sd)
            players[ROLES[role]], _ = apply_rules(
                sd, disc_rules(cfg), expected=_abstract(cfg, "disc", in_ch), what=what
            )
    return cfg, players


def _check_same_weights(pct: dict, isnet: StateDict, cfg: model.Config) -> None:
    """The IS-Net's embedded PCT-Net is the PCT-Net file's network (its statistics may have drifted)."""
    embedded, _ = apply_rules(
        {k: v for k, v in isnet.items() if k.startswith(PCT_IN_ISNET + ".")},
        pct_rules(cfg, PCT_IN_ISNET, EDGE),
        ignore=is_bookkeeping,
    )
    a, b = jax.tree.leaves(pct["params"]), jax.tree.leaves(embedded["params"])
    if any(not np.array_equal(x, y) for x, y in zip(a, b)):
        raise _error("pctnet", "its weights differ from the PCT-Net embedded in the isnet file")


def export(cfg: model.Config, players: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """{player: variables} -> {role: official state dict}: ``gen`` becomes the IS-Net file when it holds more
    than the PCT-Net, else the PCT-Net file."""
    out: dict[str, dict[str, np.ndarray]] = {}
    if "gen" in players:
        gen = players["gen"]
        full = set(gen["params"]) - set(EDGE)
        role, prefix = ("isnet", PCT_IN_ISNET) if full else ("pctnet", "")
        sd = export_state_dict(gen, pct_rules(cfg, prefix, EDGE) + (isnet_rules(cfg) if full else []))
        for key in [k for k in sd if k.endswith(".running_mean")]:
            sd[key[: -len("running_mean")] + "num_batches_tracked"] = np.zeros((), np.int64)
        out[role] = sd
    for role, player in ROLES.items():
        if player != "gen" and player in players:
            out[role] = export_state_dict(players[player], disc_rules(cfg))
    return out


# ----------------------------------------------------------------------------------------------------------
# Golden parity (ptx.tools.check_golden).

# fixture output name -> (intermediates path in the ptx model, or None for a returned array)
_PCT_OUTPUTS = {"fake_EP2": None, "encoder": ("encoded",), "residual": ("residual",)}
_ISNET_OUTPUTS = {
    "fake_EP2": None,
    "image": None,
    "style": ("style",),
    "fc": ("latent",),
    **{torch: (ptx, "output") for ptx, torch in DECODER_NAMES.items()},
}


def _nchw(x) -> np.ndarray:
    x = np.asarray(x)
    return np.transpose(x, (0, 3, 1, 2)) if x.ndim == 4 else x


def _nhwc(x) -> jax.Array:
    return jnp.asarray(np.transpose(x, (0, 2, 3, 1)))


def _pick(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for p in path:
        tree = tree[p]
    return tree[0]  # sow keeps a tuple


def _fixture_config(sd: StateDict, meta: Mapping[str, Any], height: int) -> model.Config:
    """Sizes as the original computes them: ``fineSize // 32``, widths from the hard-coded 256/176 aspect."""
    opt = (meta.get("constructor") or {}).get("opt") or {}
    fine = int(opt.get("fineSize", height))
    n_up = int(opt.get("G_n_upampling", model.N_UPSAMPLING))
    if n_up != model.N_UPSAMPLING:
        raise ConversionError(
            f"fixture G_n_upampling={n_up}; the IS-Net decoder upsamples {model.N_UPSAMPLING}x"
        )
    latent, ups = model.decoder_sizes(fine, ORIGINAL_ASPECT)
    base = dataclasses.replace(model.Config(), latent_size=latent, up_sizes=ups)
    if "content_weight" in opt:
        base = dataclasses.replace(base, content_weight=float(opt["content_weight"]))
    return infer_config({"isnet": sd}, base=base)


def run_golden(
    arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """PCT-Net or IS-Net fixture: convert ``param/*``, run ``input/*`` in eval mode, pair every ``output/*``."""
    sd = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    wanted = {k[len("output/") :]: v for k, v in arrays.items() if k.startswith("output/")}
    edge, pose, shifted = (_nhwc(arrays[f"input/input_{n}"]) for n in ("EP1", "BP2", "BEP2"))
    if _kind(sd) == "pctnet":
        cfg, players = convert({"pctnet": sd})
        net, table = model.PCTNet(cfg), _PCT_OUTPUTS
        fn = functools.partial(net.apply, mutable=["intermediates"])
        out, state = jax.jit(fn)(model.edge_variables(players["gen"]), edge, pose, shifted)
        returned = {"fake_EP2": out["edge"]}
    elif _kind(sd) == "isnet":
        cfg = _fixture_config(sd, meta, arrays["input/input_P1"].shape[2])
        cfg, players = convert({"isnet": sd}, cfg)
        net, table = model.ISNet(cfg), _ISNET_OUTPUTS
        image, z = _nhwc(arrays["input/input_P1"]), jnp.asarray(arrays["input/z"])
        out, state = jax.jit(lambda v, *a: net.apply(v, *a, mutable=["intermediates"]))(
            players["gen"], image, edge, pose, shifted, z
        )
        returned = {"fake_EP2": out["edge"], "image": out["image"]}
    else:
        raise ConversionError(
            f"fixture state dict is neither a PCT-Net nor an IS-Net (keys {sorted(sd)[:4]})"
        )
    unknown = sorted(set(wanted) - set(table))
    if unknown:
        raise ConversionError(f"fixture outputs {unknown} are not produced by ptx (known: {sorted(table)})")
    got = {
        name: returned[name] if table[name] is None else _pick(state["intermediates"], table[name])
        for name in wanted
    }
    return {f"output/{name}": (_nchw(got[name]), ref) for name, ref in wanted.items()}


# ----------------------------------------------------------------------------------------------------------
# Command line.


def cli(argv: list[str] | None = None) -> int:
    """``python -m ptx.convert scagan --isnet FILE [...] --out DIR``: official weights -> an Orbax checkpoint."""
    return run_cli(
        argv,
        method="scagan",
        roles=ROLES,
        convert=convert,
        config_class=model.Config,
        doc=__doc__,
        required=(),
        fields_not_in_weights=FIELDS_NOT_IN_WEIGHTS,
    )


if __name__ == "__main__":
    sys.exit(cli())
