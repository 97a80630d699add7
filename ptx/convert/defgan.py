"""Def-GAN weights -> ptx variables: the PyTorch port's state dicts by name, the original's Keras ``.h5`` files
by layer creation order; golden parity for the geometry, warp and generator fixtures; ``python -m ptx.convert
defgan``.

**PyTorch port** (``ssfootball04/pose-transfer``, ``src_deformable``): ``encoder_app.net.*``,
``encoder_pose.net.*``, ``decoder.net.*`` (``src_baseline``: ``encoder.net.*`` + ``decoder.net.*``, the
``warp_skip="none"`` network) and the discriminator ``net.*``. ``net.0`` is the 3x3 (generator) or 4x4 'valid'
(discriminator) conv; ``net.i.net.1`` a block's conv, ``.net.2`` (down) / ``.net.3`` (up, after the crop) its
``InstanceNorm3d`` with (1,) ``weight``/``bias``. The decoder's final conv sits at ``decoder.net.{levels}``
(after the ReLU module). Widths, depth, input channels and ``use_input_pose`` come from the shapes; the image
size, ``warp_skip`` (``mask`` vs ``full`` have the same weights) and the instance-norm formula cannot be read
from weights and come from the given Config (defaults: the original's size rule for the depth, ``mask``,
``keras``).

**Keras** (the original, Keras 2.0.8 ``save_weights``; also ``model.save`` files with ``model_weights/``): layer
groups ``conv2d_N``, ``conv2d_transpose_N``, ``instance_normalization_N`` with ``kernel:0`` / ``bias:0`` /
``gamma:0`` / ``beta:0``. The file's ``layer_names`` follow Keras' ``model.layers``, which Keras sorts by graph
depth, not by the order the code creates them (the two encoders' layers can interleave there, and the
encoders' deeper layers have identical shapes, so a shape check would not catch a swap). The original never
names its layers, so every name carries Keras' per-class creation counter, and creation order is the code
order (appearance encoder, pose encoder, decoder, as the port's modules). Layers are matched by that counter,
class by class, and renamed to the port's keys; shapes are checked on the way into ptx. Kernel layouts: Keras Conv2D ``(kh, kw, in, out)`` and Conv2DTranspose ``(kh, kw, out, in)`` both
go to torch by ``transpose(3, 2, 0, 1)`` (no spatial flip). ``h5py`` is needed for ``.h5`` files only.

    python -m ptx.convert defgan --generator G.h5|G.pth [--discriminator D.h5|D.pth] \
        [--config configs/defgan_market.py] [--warp-skip mask|full] [--norm keras|torch] --out DIR
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
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
    norm_rules,
    shape_of,
)
from ptx.models import defgan

StateDict = Mapping[str, Any]
ROLES = {"generator": "gen", "discriminator": "disc"}
FIELDS_NOT_IN_WEIGHTS = ("image_size", "warp_skip", "norm")
_IGNORED = ("num_batches_tracked",)


# ----------------------------------------------------------------------------------------------------------
# Name mapping (port key -> ptx path), composed like the networks.


def _encoder_rules(dst: str, src: str, levels: int) -> list[Rule]:
    rules = conv_rules((dst, "Conv2d_0"), f"{src}.net.0")
    for i in range(1, levels):
        rules += conv_rules((dst, f"Block_{i}", "Conv2d_0"), f"{src}.net.{i}.net.1", bias=False)
        if i < levels - 1:
            rules += norm_rules((dst, f"Block_{i}", "KerasInstanceNorm_0"), f"{src}.net.{i}.net.2")
    return rules


def _decoder_rules(levels: int) -> list[Rule]:
    rules: list[Rule] = []
    for i in range(levels - 1):
        block = ("decoder", f"Block_{i}")
        rules += conv_rules(
            (*block, "ConvTranspose2d_0"), f"decoder.net.{i}.net.1", bias=False, transpose=True
        )
        rules += norm_rules((*block, "KerasInstanceNorm_0"), f"decoder.net.{i}.net.3")
    return rules + conv_rules(("decoder", "Conv_out"), f"decoder.net.{levels}")


def generator_rules(cfg: defgan.Config) -> list[Rule]:
    n = len(cfg.encoder)
    if cfg.warp_skip == "none":
        rules = _encoder_rules("encoder", "encoder", n)
    else:
        rules = _encoder_rules("encoder_app", "encoder_app", n) + _encoder_rules(
            "encoder_pose", "encoder_pose", n
        )
    return rules + _decoder_rules(n)


def discriminator_rules(cfg: defgan.Config) -> list[Rule]:
    rules = conv_rules(("Conv2d_0",), "net.0")
    last = len(cfg.disc_filters)
    for i in range(1, last + 1):
        rules += conv_rules((f"Block_{i}", "Conv2d_0"), f"net.{i}.net.1", bias=False)
        if i < last:
            rules += norm_rules((f"Block_{i}", "KerasInstanceNorm_0"), f"net.{i}.net.2")
    return rules


RULES = {"generator": generator_rules, "discriminator": discriminator_rules}


# ----------------------------------------------------------------------------------------------------------
# Config inference.


def _strip(sd: StateDict) -> dict[str, Any]:
    """Drops DataParallel's ``module.`` prefix and torch bookkeeping buffers."""
    out = {}
    for k, v in sd.items():
        k = k[len("module.") :] if k.startswith("module.") else k
        if not k.endswith(_IGNORED):
            out[k] = v
    return out


def detect_role(sd: StateDict) -> str:
    if "encoder_app.net.0.weight" in sd or "encoder.net.0.weight" in sd:
        return "generator"
    if "net.0.weight" in sd and "net.1.net.1.weight" in sd:
        return "discriminator"
    raise ConversionError(
        f"not a Def-GAN state dict: expected 'encoder_app.net.0.weight' (generator), 'encoder.net.0.weight' "
        f"(baseline generator) or 'net.0.weight' (discriminator); keys start with {sorted(sd)[:5]}"
    )


def _encoder_widths(sd: StateDict, prefix: str) -> tuple[int, ...]:
    levels = count_prefix(sd, f"{prefix}.net.")
    widths = [shape_of(sd, f"{prefix}.net.0.weight")[0]]
    widths += [shape_of(sd, f"{prefix}.net.{i}.net.1.weight")[0] for i in range(1, levels)]
    return tuple(widths)


def _default_size(levels: int) -> tuple[int, int]:
    """The frame the original's size rule implies for a depth (6: Market 128x64, 7: DeepFashion 256x256)."""
    if levels == 6:
        return (128, 64)
    if levels == 7:
        return (256, 256)
    m = 2 ** (levels - 1)
    return (2 * m, m)


def _with_filters(base: dict, enc: tuple[int, ...], dec: tuple[int, ...]) -> dict:
    """Explicit widths unless they are the original's size rule for the frame (kept as ``()`` then)."""
    rule = defgan.default_filters(base["image_size"])
    base["encoder_filters"] = () if enc == rule[0] else enc
    base["decoder_filters"] = () if dec == rule[1] else dec
    return base


def infer_config(sd: StateDict, role: str, base: defgan.Config | None = None) -> defgan.Config:
    """The ``Config`` a state dict implies; fields weights cannot tell come from ``base``."""
    sd = _strip(sd)
    fields = dataclasses.asdict(base) if base is not None else {}
    if role == "discriminator":
        levels = count_prefix(sd, "net.")
        widths = [shape_of(sd, "net.0.weight")[0]]
        widths += [shape_of(sd, f"net.{i}.net.1.weight")[0] for i in range(1, levels - 1)]
        if shape_of(sd, f"net.{levels - 1}.net.1.weight")[0] != 1:
            raise ConversionError(
                f"discriminator: the last block net.{levels - 1} must have 1 output channel"
            )
        fields["disc_filters"] = tuple(widths)
        if base is None:
            fields["image_size"] = (128, 64)
        return defgan.Config(**fields)
    baseline = "encoder.net.0.weight" in sd
    prefix = "encoder" if baseline else "encoder_app"
    enc = _encoder_widths(sd, prefix)
    levels = len(enc)
    dec = tuple(shape_of(sd, f"decoder.net.{i}.net.1.weight")[1] for i in range(levels - 1))
    dec += (shape_of(sd, f"decoder.net.{levels}.weight")[0],)
    first_in = shape_of(sd, f"{prefix}.net.0.weight")[1]
    if baseline:
        pose_nc = fields.get("pose_nc", 18)
        use_pose = fields.get("use_input_pose", True)
        image_nc = first_in - pose_nc * (2 if use_pose else 1)
        fields["warp_skip"] = "none"
    else:
        if _encoder_widths(sd, "encoder_pose") != enc:
            raise ConversionError("encoder_app and encoder_pose widths differ; Def-GAN's encoders are twins")
        pose_nc = shape_of(sd, "encoder_pose.net.0.weight")[1]
        use_pose = first_in > pose_nc
        image_nc = first_in - pose_nc if use_pose else first_in
        if fields.get("warp_skip", "mask") == "none":
            fields["warp_skip"] = "mask"
    fields.update(pose_nc=pose_nc, use_input_pose=use_pose, image_nc=image_nc)
    if base is None:
        fields["image_size"] = _default_size(levels)
    return defgan.Config(**_with_filters(fields, enc, dec))


# The fields weights decide, per role (compared on the resolved widths).
_WEIGHT_FIELDS = {
    "generator": ("encoder", "decoder", "image_nc", "pose_nc", "use_input_pose", "warp_skip"),
    "discriminator": ("disc_filters",),
}


def _check_against(cfg: defgan.Config, inferred: defgan.Config, role: str, what: str) -> None:
    diff = {}
    for f in _WEIGHT_FIELDS[role]:
        a, b = getattr(cfg, f), getattr(inferred, f)
        if f == "warp_skip":
            a, b = a == "none", b == "none"  # mask and full share their weights
        if a != b:
            diff[f] = (getattr(cfg, f), getattr(inferred, f))
    if diff:
        lines = ", ".join(f"{f}: config {a!r} vs file {b!r}" for f, (a, b) in diff.items())
        raise ConversionError(f"{what} ({role}) does not match the given config: {lines}")


# ----------------------------------------------------------------------------------------------------------
# Conversion.


def abstract_variables(cfg: defgan.Config, role: str) -> dict:
    """``jax.eval_shape`` of the ptx model's init: shapes only, nothing computed (full-size models are cheap)."""
    h, w = cfg.image_size
    img = jax.ShapeDtypeStruct((1, h, w, cfg.image_nc), jnp.float32)
    pose = jax.ShapeDtypeStruct((1, h, w, cfg.pose_nc), jnp.float32)
    if role == "discriminator":
        return jax.eval_shape(defgan.Discriminator(cfg).init, jax.random.key(0), img, pose, img, pose)
    t = cfg.num_transforms
    transforms = jax.ShapeDtypeStruct((1, t, 8), jnp.float32) if t else None
    masks = jax.ShapeDtypeStruct((1, t, h, w), jnp.float32) if cfg.warp_skip == "mask" else None
    gen = defgan.Generator(cfg)
    return jax.eval_shape(gen.init, jax.random.key(0), img, pose, pose, transforms, masks)


def convert_one(
    state_dict: StateDict,
    cfg: defgan.Config | None = None,
    *,
    role: str | None = None,
    what: str = "state dict",
    base: defgan.Config | None = None,
) -> tuple[defgan.Config, dict]:
    """One state dict -> (its Config, ptx variables ``{"params": ...}``). A given ``cfg`` must agree with the
    weights; ``base`` only supplies the fields weights cannot tell (e.g. the generator's, for a discriminator)."""
    sd = _strip(state_dict)
    role = role or detect_role(sd)
    inferred = infer_config(sd, role, cfg or base)
    if cfg is not None:
        _check_against(cfg, inferred, role, what)
    variables, _ = apply_rules(
        sd, RULES[role](inferred), expected=abstract_variables(inferred, role), what=f"{what} ({role})"
    )
    variables = {k: v for k, v in variables.items() if k == "params"}
    return inferred, variables


def convert(
    state_dicts: Mapping[str, StateDict], cfg: defgan.Config | None = None
) -> tuple[defgan.Config, dict]:
    """``{role: state dict}`` (roles of ``ROLES``) -> (Config, ``{player: variables}``)."""
    unknown = sorted(set(state_dicts) - set(ROLES))
    if unknown:
        raise ConversionError(f"unknown roles {unknown}; Def-GAN roles: {sorted(ROLES)}")
    if not state_dicts:
        raise ConversionError("no state dicts given")
    players: dict[str, dict] = {}
    result = cfg
    if "generator" in state_dicts:
        result, players["gen"] = convert_one(
            state_dicts["generator"], cfg, role="generator", what="generator"
        )
    if "discriminator" in state_dicts:
        result, players["disc"] = convert_one(
            state_dicts["discriminator"], cfg, role="discriminator", what="discriminator", base=result
        )
        expected = 2 * result.image_nc + (2 if result.use_input_pose else 1) * result.pose_nc
        got = shape_of(_strip(state_dicts["discriminator"]), "net.0.weight")[1]
        if got != expected:
            raise ConversionError(
                f"discriminator takes {got} input channels; the generator's config implies {expected}"
            )
    return result, players


def export(cfg: defgan.Config, players: Mapping[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """The inverse of :func:`convert`: ``{role: port-named state dict}`` (torch layouts)."""
    out = {}
    for role, player in ROLES.items():
        if player in players:
            out[role] = export_state_dict(players[player], RULES[role](cfg))
    return out


# ----------------------------------------------------------------------------------------------------------
# The original's Keras .h5 files.

_KERAS_NAME = re.compile(r"^(conv2d_transpose|conv2d|instance_normalization)_(\d+)$")


def read_keras_h5(path: str | pathlib.Path) -> list[tuple[str, dict[str, np.ndarray]]]:
    """``[(layer name, {"kernel"|"bias"|"gamma"|"beta": array})]`` of every layer with weights, file order."""
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("reading Keras .h5 weights needs h5py (pip install h5py)") from e
    out = []
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for name in root.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else str(name)
            group = root[name]
            weights = {}
            for wname in group.attrs.get("weight_names", []):
                wname = wname.decode() if isinstance(wname, bytes) else str(wname)
                leaf = wname.rsplit("/", 1)[-1].split(":")[0]
                weights[leaf] = np.asarray(group[wname])
            if weights:
                out.append((name, weights))
    return out


def _by_class(layers: list[tuple[str, dict]]) -> dict[str, list[dict]]:
    """Weighted layers grouped by Keras class, each group in creation order (the name's counter)."""
    groups: dict[str, list[tuple[int, dict]]] = {
        "conv2d": [],
        "conv2d_transpose": [],
        "instance_normalization": [],
    }
    for name, weights in layers:
        m = _KERAS_NAME.match(name)
        if m is None:
            raise ConversionError(
                f"Keras layer {name!r}: expected the original's automatic names (conv2d_N, conv2d_transpose_N, "
                "instance_normalization_N), whose counters give the creation order the mapping relies on"
            )
        groups[m.group(1)].append((int(m.group(2)), weights))
    return {k: [w for _, w in sorted(v, key=lambda t: t[0])] for k, v in groups.items()}


def _put_conv(sd: dict, key: str, weights: dict, bias: bool) -> None:
    sd[f"{key}.weight"] = np.transpose(weights["kernel"], (3, 2, 0, 1))
    if bias:
        if "bias" not in weights:
            raise ConversionError(f"Keras layer for {key}: expected a bias")
        sd[f"{key}.bias"] = weights["bias"]
    elif "bias" in weights:
        raise ConversionError(f"Keras layer for {key}: unexpected bias (the original's blocks have none)")


def _put_norm(sd: dict, key: str, weights: dict) -> None:
    sd[f"{key}.weight"], sd[f"{key}.bias"] = weights["gamma"], weights["beta"]


def _take(queue: list[dict], what: str) -> dict:
    if not queue:
        raise ConversionError(f"Keras file has too few layers: ran out at {what}")
    return queue.pop(0)


def keras_state_dict(layers: list[tuple[str, dict]], role: str | None = None) -> dict[str, np.ndarray]:
    """The original's Keras layers (:func:`read_keras_h5`) -> the PyTorch port's state dict (names, layouts)."""
    g = _by_class(layers)
    convs, ups, norms = g["conv2d"], g["conv2d_transpose"], g["instance_normalization"]
    role = role or ("generator" if ups else "discriminator")
    sd: dict[str, np.ndarray] = {}
    if role == "discriminator":
        n_blocks = len(convs) - 1
        if n_blocks < 1 or len(norms) != n_blocks - 1 or ups:
            raise ConversionError(
                f"Keras discriminator: {len(convs)} conv2d, {len(norms)} instance_normalization, {len(ups)} "
                "conv2d_transpose layers do not form the original's discriminator"
            )
        _put_conv(sd, "net.0", convs[0], bias=True)
        for i in range(1, n_blocks + 1):
            _put_conv(sd, f"net.{i}.net.1", convs[i], bias=False)
            if i < n_blocks:
                _put_norm(sd, f"net.{i}.net.2", norms[i - 1])
        return sd
    levels = len(ups) + 1
    if len(convs) == 2 * levels + 1:
        encoders = ("encoder_app", "encoder_pose")
    elif len(convs) == levels + 1:
        encoders = ("encoder",)
    else:
        raise ConversionError(
            f"Keras generator: {len(convs)} conv2d layers for {levels} levels; expected {2 * levels + 1} "
            f"(two encoders) or {levels + 1} (baseline)"
        )
    convs, norms = list(convs), list(norms)
    for enc in encoders:
        _put_conv(sd, f"{enc}.net.0", _take(convs, f"{enc} level 0"), bias=True)
        for i in range(1, levels):
            _put_conv(sd, f"{enc}.net.{i}.net.1", _take(convs, f"{enc} level {i}"), bias=False)
            if i < levels - 1:
                _put_norm(sd, f"{enc}.net.{i}.net.2", _take(norms, f"{enc} norm {i}"))
    for i in range(levels - 1):
        _put_conv(sd, f"decoder.net.{i}.net.1", ups[i], bias=False)
        _put_norm(sd, f"decoder.net.{i}.net.3", _take(norms, f"decoder norm {i}"))
    _put_conv(sd, f"decoder.net.{levels}", _take(convs, "decoder output conv"), bias=True)
    if convs or norms:
        raise ConversionError(f"Keras generator: {len(convs)} conv2d and {len(norms)} norm layers left over")
    return sd


def load_weights(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """A ``.h5`` (the original, Keras) or ``.pth`` (the port) file as a port-named state dict."""
    path = pathlib.Path(path)
    if path.suffix in (".h5", ".hdf5", ".keras"):
        return keras_state_dict(read_keras_h5(path))
    from ptx.convert.torch_io import load_state_dict

    return load_state_dict(path)


# ----------------------------------------------------------------------------------------------------------
# Golden parity (ptx.tools.check_golden): geometry, warp and model fixtures.


def _nhwc(x) -> jnp.ndarray:
    return jnp.asarray(np.transpose(x, (0, 2, 3, 1)))


def _nchw(x) -> np.ndarray:
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def _require(name: str, got, want, atol: float) -> None:
    """The geometry fixtures' own tolerances (absolute), stricter than check_golden's relative one."""
    err = (
        float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))))
        if np.size(want)
        else 0.0
    )
    if not err <= atol:
        raise AssertionError(f"{name}: max abs error {err:.3e} exceeds the fixture's tolerance {atol:g}")


def run_golden(
    arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """check_golden entry: told apart by contents (``param/*``: a network; ``input/feat_*``: the warp op;
    ``input/kp_from``: the part geometry)."""
    if any(k.startswith("param/") for k in arrays):
        return _run_model_golden(arrays, meta)
    if any(k.startswith("input/feat_") for k in arrays):
        return _run_warp_golden(arrays, meta)
    if "input/kp_from" in arrays:
        return _run_geometry_golden(arrays, meta)
    raise ConversionError("not a Def-GAN fixture: no param/*, input/feat_* or input/kp_from arrays")


def _run_geometry_golden(arrays, meta) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from ptx.data.heatmaps import gaussian_heatmaps
    from ptx.ops import affine

    kp_from, kp_to = arrays["input/kp_from"], arrays["input/kp_to"]
    size = tuple(meta.get("image_size_HW") or arrays["output/masks"].shape[-2:])
    sigma = float(meta.get("sigma", 6.0))
    got = {
        "output/affine": np.stack([affine.affine_transforms(a, b) for a, b in zip(kp_from, kp_to)]),
        "output/affine_full": np.stack([affine.uniform_transform(a, b) for a, b in zip(kp_from, kp_to)]),
        "output/masks": np.stack([affine.part_masks(b, size) for b in kp_to]),
    }
    for side, kp in (("from", kp_from), ("to", kp_to)):
        maps = gaussian_heatmaps(kp, size, sigma, keep_outside=True)
        got[f"output/pose_map_{side}"] = _nchw(maps)
    tolerances = {"output/affine": 1e-4, "output/affine_full": 1e-4, "output/masks": 0.0}
    # output/masks_skimage_installed follows newer scikit-image's boundary rule, not the paper's 0.13.
    results = {}
    for name, value in got.items():
        if name in arrays:
            _require(name, value, arrays[name], tolerances.get(name, 1e-6))
            results[name] = (value, arrays[name])
    return results


def _run_warp_golden(arrays, meta) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from ptx.ops.affine import affine_warp

    init = tuple(meta.get("init_image_size") or arrays["input/masks"].shape[-2:])
    masks = jnp.asarray(arrays["input/masks"])
    cases = {
        "mask_max": ("max", "input/affine", masks),
        "mask_avg": ("avg", "input/affine", masks),
        "full": ("max", "input/affine_full", None),
    }
    results = {}
    for key in sorted(k for k in arrays if k.startswith("input/feat_")):
        level = key[len("input/feat_") :]
        feat = _nhwc(arrays[key])
        for case, (agg, tr, m) in cases.items():
            name = f"output/{case}_{level}"
            if name in arrays:
                out = affine_warp(feat, jnp.asarray(arrays[tr]), m, init_image_size=init, aggregation=agg)
                results[name] = (_nchw(out), arrays[name])
        name = f"output/masks_{level}"
        if name in arrays:
            h, w = (int(s) for s in level.split("x"))
            rows, cols = np.arange(h) * init[0] // h, np.arange(w) * init[1] // w
            results[name] = (np.asarray(arrays["input/masks"])[:, :, rows][..., cols], arrays[name])
    return results


def config_from_meta(meta: Mapping[str, Any], state: StateDict) -> defgan.Config:
    """The fixture's recorded options (the port's constructor names) plus what the weights say."""
    ctor = dict(meta.get("ctor") or meta.get("constructor") or {})
    base = defgan.Config(
        image_size=tuple(ctor.get("image_size", (128, 64))),
        warp_skip={"None": "none", "none": "none"}.get(ctor.get("warp_skip"), ctor.get("warp_skip", "mask")),
        warp_agg=meta.get("warp_agg", ctor.get("warp_agg", "max")),
        encoder_filters=tuple(ctor.get("nfilters_enc", ())),
        decoder_filters=tuple(ctor.get("nfilters_dec", ())),
        use_input_pose=bool(ctor.get("use_input_pose", True)),
        pose_nc=int(ctor.get("pose_dim", 18)),
    )
    role = detect_role(state)
    cfg = infer_config(state, role, base)
    if role == "generator":
        _check_against(base, cfg, role, "fixture state dict")
    return cfg


def _run_model_golden(arrays, meta) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    state = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    cfg = config_from_meta(meta, state)
    role = detect_role(state)
    _, variables = convert_one(state, cfg, role=role, what="fixture state dict")
    wanted = {k: v for k, v in arrays.items() if k.startswith("output/")}
    x = _nhwc(arrays["input/x"])
    if role == "discriminator":
        ((name, ref),) = wanted.items()
        c = [cfg.image_nc, cfg.pose_nc, cfg.image_nc, cfg.pose_nc]
        splits = np.cumsum(c)[:-1]
        out = jax.jit(defgan.Discriminator(cfg).apply)(variables, *jnp.split(x, splits, axis=-1))
        return {name: (np.asarray(out).reshape(ref.shape), ref)}
    src_end = cfg.image_nc + (cfg.pose_nc if cfg.use_input_pose else 0)
    source, target_pose = x[..., : cfg.image_nc], x[..., src_end:]
    source_pose = x[..., cfg.image_nc : src_end] if cfg.use_input_pose else jnp.zeros_like(target_pose)
    transforms = jnp.asarray(arrays["input/warps"]) if "input/warps" in arrays else None
    masks = jnp.asarray(arrays["input/masks"]) if "input/masks" in arrays else None
    results = {}
    for norm, suffix in (("keras", ""), ("torch", "_port_native_in")):
        if f"output/image{suffix}" not in wanted:
            continue
        model = defgan.Generator(dataclasses.replace(cfg, norm=norm))

        def run(v, *a, model=model):
            return model.apply(v, *a, mutable=["intermediates"])

        out, inter = jax.jit(run)(variables, source, source_pose, target_pose, transforms, masks)
        results[f"output/image{suffix}"] = (_nchw(out["image"]), wanted[f"output/image{suffix}"])
        if norm == "keras":
            for name, (value,) in inter["intermediates"].items():
                if f"output/{name}" in wanted:
                    results[f"output/{name}"] = (_nchw(value), wanted[f"output/{name}"])
    missing = sorted(set(wanted) - set(results))
    if missing:
        raise ConversionError(f"fixture outputs {missing} are not produced by the ptx Def-GAN model")
    return results


# ----------------------------------------------------------------------------------------------------------
# Command line.


def cli(argv: list[str] | None = None) -> int:
    """``python -m ptx.convert defgan``: the original's Keras .h5 or the port's .pth files -> a ``ptx.convert``
    directory. ``--set image_size=(256,256) --set warp_skip=full --set norm=torch`` choose what weights cannot
    tell (defaults: the size rule's frame, mask, keras)."""
    from ptx.convert import common

    return common.run_cli(
        argv,
        method="defgan",
        roles=ROLES,
        convert=convert,
        config_class=defgan.Config,
        doc=cli.__doc__,
        required=(),
        fields_not_in_weights=FIELDS_NOT_IN_WEIGHTS,
        read=load_weights,
    )
