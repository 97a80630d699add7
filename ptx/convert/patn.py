"""Official PATN / pSSIM PyTorch state dicts -> ptx variables, golden parity, and the ``patn`` convert CLI.

The original (``tengteng95/Pose-Transfer``, and the pSSIM fork, which keeps its network) saves
``<epoch>_net_netG.pth`` / ``_netD_PB.pth`` / ``_netD_PP.pth`` from ``state_dict()``; key names are
``nn.Sequential`` indices whose positions depend on the options (padding layers, dropout layers), so the layout
below is derived from the ptx ``Config`` and the config itself is inferred from the key names and shapes.

    python -m ptx.convert patn --generator latest_net_netG.pth [--disc-pose latest_net_netD_PB.pth]
        [--disc-image latest_net_netD_PP.pth] --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import re
import sys
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ptx.models import patn as model

StateDict = Mapping[str, np.ndarray]
# (torch module prefix, flax path of the module holding the parameters, kind)
Entry = tuple[str, tuple[str, ...], str]
IGNORED_SUFFIXES = ("num_batches_tracked",)


# ----------------------------------------------------------------------------------------------- layouts
def _conv_block_layout(
    torch_prefix: str,
    flax_path: tuple[str, ...],
    padding_type: str,
    use_dropout: bool,
    last_norm: bool,
    norm: str,
) -> list[Entry]:
    """Positions of the convs / norms inside one ``build_conv_block`` Sequential."""
    pad = 0 if padding_type == "zero" else 1
    conv0 = pad
    conv1 = conv0 + 3 + int(use_dropout) + pad
    out = [
        (f"{torch_prefix}.{conv0}", (*flax_path, "PadConv_0", "Conv2d_0"), "conv"),
        (f"{torch_prefix}.{conv0 + 1}", (*flax_path, "Norm_0"), norm),
        (f"{torch_prefix}.{conv1}", (*flax_path, "PadConv_1", "Conv2d_0"), "conv"),
    ]
    if last_norm:
        out.append((f"{torch_prefix}.{conv1 + 1}", (*flax_path, "Norm_1"), norm))
    return out


def _encoder_layout(torch_prefix: str, flax_path: tuple[str, ...], n_convs: int, norm: str) -> list[Entry]:
    out = []
    for i in range(n_convs):
        out.append((f"{torch_prefix}.{1 + 3 * i}", (*flax_path, f"Conv2d_{i}"), "conv"))
        out.append((f"{torch_prefix}.{2 + 3 * i}", (*flax_path, f"Norm_{i}"), norm))
    return out


def generator_layout(cfg: model.Config) -> list[Entry]:
    """Every parameterised module of ``PATNetwork`` with its ptx location."""
    n = cfg.n_downsampling + 1
    out = _encoder_layout("model.stream1_down", ("image_encoder",), n, cfg.norm)
    out += _encoder_layout("model.stream2_down", ("pose_encoder",), n, cfg.norm)
    for k in range(cfg.n_blocks):
        for stream, name, last_norm in ((1, "image", True), (2, "pose", False)):
            out += _conv_block_layout(
                f"model.att.{k}.conv_block_stream{stream}",
                (f"block_{k}", name),
                cfg.padding_type,
                cfg.use_dropout,
                last_norm,
                cfg.norm,
            )
    for i in range(cfg.n_downsampling):
        out.append((f"model.stream1_up.{3 * i}", ("decoder", f"ConvTranspose2d_{i}"), "convT"))
        out.append((f"model.stream1_up.{3 * i + 1}", ("decoder", f"Norm_{i}"), cfg.norm))
    out.append((f"model.stream1_up.{3 * cfg.n_downsampling + 1}", ("decoder", "Conv2d_0"), "conv"))
    return out


def discriminator_layout(cfg: model.Config) -> list[Entry]:
    """Every parameterised module of ``ResnetDiscriminator`` (``model.<idx>``) with its ptx location."""
    n = cfg.n_downsampling_d + 1
    out = _encoder_layout("model", ("encoder",), n, cfg.norm)
    first_block = 3 * n + 1
    for k in range(cfg.n_blocks_d):
        out += _conv_block_layout(
            f"model.{first_block + k}.conv_block",
            (f"block_{k}",),
            "reflect",
            cfg.use_dropout_d,
            True,
            cfg.norm,
        )
    return out


# ------------------------------------------------------------------------------------------- inference
def _strip(sd: StateDict) -> dict[str, np.ndarray]:
    """Drops DataParallel's ``module.`` prefix and torch bookkeeping buffers."""
    out = {}
    for k, v in sd.items():
        k = k[len("module.") :] if k.startswith("module.") else k
        if k.endswith(IGNORED_SUFFIXES):
            continue
        out[k] = np.asarray(v)
    return out


def _block_convs(sd: StateDict, prefix: str) -> list[int]:
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.weight$")
    return sorted(int(m.group(1)) for k, v in sd.items() if (m := pat.match(k)) and np.ndim(v) == 4)


def _padding_dropout(conv_idx: list[int], where: str) -> tuple[str, bool]:
    """(padding_type, use_dropout) from the two conv positions of a ``build_conv_block``."""
    table = {
        (1, 6): ("reflect", True),
        (1, 5): ("reflect", False),
        (0, 4): ("zero", True),
        (0, 3): ("zero", False),
    }
    key = tuple(conv_idx)
    if key not in table:
        raise ValueError(
            f"{where}: conv layers at Sequential positions {key}; expected one of {sorted(table)}"
        )
    return table[key]


def infer_generator_config(sd: StateDict, **overrides) -> model.Config:
    """The ``Config`` of a PATNetwork state dict (widths, depth, norm, padding/dropout from key positions).

    ReflectionPad2d and ReplicationPad2d leave the same keys; pass ``padding_type="replicate"`` to override.
    """
    sd = _strip(sd)
    first = sd.get("model.stream1_down.1.weight")
    if first is None:
        raise KeyError("not a PATN generator state dict: 'model.stream1_down.1.weight' is missing")
    down = _block_convs(sd, "model.stream1_down")
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"model\.att\.(\d+)\.", k))}
    if not blocks:
        raise KeyError("not a PATN generator state dict: no 'model.att.<k>.' keys")
    padding, dropout = _padding_dropout(_block_convs(sd, "model.att.0.conv_block_stream1"), "model.att.0")
    out_conv = sd[f"model.stream1_up.{3 * (len(down) - 1) + 1}.weight"]
    cfg = dict(
        ngf=int(first.shape[0]),
        n_blocks=max(blocks) + 1,
        n_downsampling=len(down) - 1,
        norm="batch" if "model.stream1_down.2.weight" in sd else "instance",
        use_dropout=dropout,
        padding_type=padding,
        image_nc=int(first.shape[1]),
        pose_nc=int(sd["model.stream2_down.1.weight"].shape[1]),
        output_nc=int(out_conv.shape[0]),
    )
    cfg.update(overrides)
    return model.Config(**cfg)


def infer_discriminator_config(sd: StateDict, base: model.Config | None = None) -> tuple[model.Config, int]:
    """(Config with the discriminator fields set, input channels) of a ResnetDiscriminator state dict."""
    sd = _strip(sd)
    if "model.1.weight" not in sd:
        raise KeyError("not a PATN ResnetDiscriminator state dict: 'model.1.weight' is missing")
    convs = _block_convs(sd, "model")
    blocks = sorted({int(m.group(1)) for k in sd if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    n_down = len(convs) - 1
    _, dropout = (
        _padding_dropout(_block_convs(sd, f"model.{blocks[0]}.conv_block"), "discriminator block")
        if (blocks)
        else ("reflect", True)
    )
    base = base or model.Config()
    cfg = dataclasses.replace(
        base,
        ndf=int(sd["model.1.weight"].shape[0]),
        n_blocks_d=len(blocks),
        n_downsampling_d=n_down,
        use_dropout_d=dropout,
        norm="batch" if "model.2.weight" in sd else "instance",
    )
    return cfg, int(sd["model.1.weight"].shape[1])


# ------------------------------------------------------------------------------------------ conversion
def _put(tree: dict, path: tuple[str, ...], leaf: str, value: np.ndarray) -> None:
    for p in path:
        tree = tree.setdefault(p, {})
    if leaf in tree:
        raise ValueError(f"two torch tensors map to {'/'.join(path)}/{leaf}")
    tree[leaf] = jnp.asarray(value, jnp.float32)


def convert_layout(sd: StateDict, layout: list[Entry], what: str) -> dict[str, dict]:
    """Apply a layout: torch tensors -> {"params": ..., "batch_stats": ...}; every key must be used."""
    sd = _strip(sd)
    used: set[str] = set()
    variables: dict[str, dict] = {"params": {}}

    def take(key: str) -> np.ndarray:
        if key not in sd:
            raise KeyError(f"{what}: expected key {key!r} is missing from the state dict")
        used.add(key)
        return sd[key]

    for prefix, path, kind in layout:
        if kind in ("conv", "convT"):
            w = take(f"{prefix}.weight")
            perm = (2, 3, 1, 0) if kind == "conv" else (2, 3, 0, 1)
            _put(variables["params"], path, "kernel", np.transpose(w, perm))
            if f"{prefix}.bias" in sd:
                _put(variables["params"], path, "bias", take(f"{prefix}.bias"))
        elif kind == "batch":
            bn = (*path, "BatchNorm_0")
            _put(variables["params"], bn, "scale", take(f"{prefix}.weight"))
            _put(variables["params"], bn, "bias", take(f"{prefix}.bias"))
            stats = variables.setdefault("batch_stats", {})
            _put(stats, bn, "mean", take(f"{prefix}.running_mean"))
            _put(stats, bn, "var", take(f"{prefix}.running_var"))
        else:  # instance norm, affine False: torch 0.3.1 checkpoints still carry unused running stats
            for leaf in ("running_mean", "running_var"):
                if f"{prefix}.{leaf}" in sd:
                    used.add(f"{prefix}.{leaf}")
    left = sorted(set(sd) - used)
    if left:
        raise ValueError(f"{what}: {len(left)} state dict keys were not used, e.g. {left[:5]}")
    return variables


def _check_against_init(variables: dict, module, inputs: tuple[jax.Array, ...], what: str) -> None:
    """Converted tree must equal the module's own init tree (names and shapes), via eval_shape."""
    want = jax.eval_shape(lambda *xs: module.init({"params": jax.random.key(0)}, *xs), *inputs)
    want = {k: v for k, v in want.items() if k in ("params", "batch_stats")}
    got_shapes = jax.tree.map(lambda a: tuple(a.shape), variables)
    want_shapes = jax.tree.map(lambda a: tuple(a.shape), want)
    if got_shapes != want_shapes:
        gf = dict(_flatten(got_shapes))
        wf = dict(_flatten(want_shapes))
        diff = sorted(set(gf.items()) ^ set(wf.items()))[:6]
        raise ValueError(f"{what}: converted variables do not match the ptx model; differing entries {diff}")


def _flatten(tree, prefix=()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _flatten(v, (*prefix, k))
    else:
        yield "/".join(prefix), tree


def _dummy(cfg: model.Config, channels: int, down: int) -> jax.ShapeDtypeStruct:
    s = 4 * 2**down
    return jax.ShapeDtypeStruct((1, s, s, channels), jnp.float32)


def convert_generator(sd: StateDict, cfg: model.Config | None = None) -> tuple[model.Config, dict]:
    """PATNetwork state dict -> (Config, {"params", ["batch_stats"]}) for ``model.Generator``."""
    cfg = cfg or infer_generator_config(sd)
    variables = convert_layout(sd, generator_layout(cfg), "PATN generator")
    gen = model.Generator(cfg)
    inputs = (_dummy(cfg, cfg.image_nc, cfg.n_downsampling), _dummy(cfg, cfg.pose_nc, cfg.n_downsampling))
    _check_against_init(variables, gen, inputs, "PATN generator")
    return cfg, variables


def convert_discriminator(sd: StateDict, cfg: model.Config | None = None) -> tuple[model.Config, dict]:
    """ResnetDiscriminator state dict -> (Config with the D fields inferred, variables)."""
    cfg, in_ch = infer_discriminator_config(sd, cfg)
    variables = convert_layout(sd, discriminator_layout(cfg), "PATN discriminator")
    _check_against_init(variables, model.Discriminator(cfg), (_dummy(cfg, in_ch, cfg.n_downsampling_d),), "D")
    return cfg, variables


# -------------------------------------------------------------------------------------------- goldens
def _nchw_to_nhwc(x: np.ndarray) -> jax.Array:
    return jnp.asarray(np.transpose(x, (0, 2, 3, 1)))


def _nhwc_to_nchw(x: jax.Array) -> np.ndarray:
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def _config_from_meta(sd: StateDict, meta: dict) -> model.Config:
    cons = meta.get("constructor", {})
    overrides = {}
    if "padding_type" in cons:
        overrides["padding_type"] = cons["padding_type"]
    cfg = infer_generator_config(sd, **overrides)
    for field, key in (
        ("norm", "norm"),
        ("ngf", "ngf"),
        ("n_blocks", "n_blocks"),
        ("use_dropout", "use_dropout"),
    ):
        if key in cons and cons[key] != getattr(cfg, field):
            raise ValueError(
                f"fixture says {key}={cons[key]!r} but its state dict implies {getattr(cfg, field)!r}"
            )
    return cfg


def run_golden(arrays: dict[str, np.ndarray], meta: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """PATN fixture: convert ``param/*``, run ``input/x1_P1`` + ``input/x2_BP1_BP2``, compare ``output/*``."""
    sd = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    cfg, variables = convert_generator(sd, _config_from_meta(sd, meta))
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
            raise ValueError("fixture has output/image_bn_batchstats but the generator has no batch norm")
        # Train-mode batch norm (batch statistics), dropout off; running statistics updates are discarded.
        fn = jax.jit(
            lambda v, a, b: gen.apply(v, a, b, train=True, dropout=False, mutable=["batch_stats"])[0]
        )
        got["image_bn_batchstats"] = fn(variables, image, pose)["image"]
    unknown = sorted(set(wanted) - set(got))
    if unknown:
        raise KeyError(f"PATN fixture outputs not produced by ptx: {unknown} (known: {sorted(got)})")
    return {f"output/{k}": (_nhwc_to_nchw(got[k]), v) for k, v in wanted.items()}


# ------------------------------------------------------------------------------------------------ CLI
def _load(path: str) -> dict[str, np.ndarray]:
    from ptx.convert import torch_io

    return torch_io.load_state_dict(path)


def convert_files(
    generator: str,
    disc_pose: str | None = None,
    disc_image: str | None = None,
    padding_type: str | None = None,
) -> tuple[model.Config, dict[str, dict]]:
    """Official ``.pth`` files -> (Config, {player: variables}) with the players of ``ptx.methods.patn``."""
    sd = _load(generator)
    cfg = infer_generator_config(sd, **({"padding_type": padding_type} if padding_type else {}))
    cfg, gen_vars = convert_generator(sd, cfg)
    players = {"gen": gen_vars}
    for player, path in (("disc_pose", disc_pose), ("disc_image", disc_image)):
        if path:
            cfg, players[player] = convert_discriminator(_load(path), cfg)
    return cfg, players


def save(out_dir: str | pathlib.Path, cfg: model.Config, players: dict[str, dict]) -> pathlib.Path:
    """``out/checkpoint`` (Orbax, ``{player: variables}``, what ``config.init_from`` reads) and
    ``out/ptx_convert.json`` (method, players, the inferred model Config), as ``ptx.convert.gfla`` writes."""
    import orbax.checkpoint as ocp

    out = pathlib.Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(out / "checkpoint", jax.tree.map(np.asarray, players))
    meta = {"method": "patn", "players": sorted(players), "model": dataclasses.asdict(cfg)}
    (out / "ptx_convert.json").write_text(json.dumps(meta, indent=1) + "\n")
    return out


def cli(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ptx.convert patn", description=__doc__.splitlines()[0])
    ap.add_argument("--generator", required=True, help="official <epoch>_net_netG.pth")
    ap.add_argument("--disc-pose", help="optional <epoch>_net_netD_PB.pth (pose-pair critic)")
    ap.add_argument("--disc-image", help="optional <epoch>_net_netD_PP.pth (image-pair critic)")
    ap.add_argument("--padding-type", choices=model.PADDINGS, help="only needed for 'replicate' models")
    ap.add_argument("--out", required=True, help="output directory (Orbax checkpoint + ptx_convert.json)")
    args = ap.parse_args(argv)
    cfg, players = convert_files(args.generator, args.disc_pose, args.disc_image, args.padding_type)
    out = save(args.out, cfg, players)
    n = sum(int(np.size(x)) for x in jax.tree.leaves(players["gen"]["params"]))
    print(f"PATN {cfg.norm} ngf={cfg.ngf} n_blocks={cfg.n_blocks}: {n:,} generator parameters -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
