"""OpenPose body weights (``body_pose_model.pth`` or ``pose_estimator.h5``) -> ptx variables; golden parity.

* ``body_pose_model.pth`` (pytorch-openpose, ControlNet): a flat state dict keyed by the Caffe layer names
  (``conv1_1.weight``); the module-prefixed names of ``bodypose_model.state_dict()`` (``model0.conv1_1.weight``)
  are accepted too. Mapped by name.
* ``pose_estimator.h5`` (Keras, the PATN / Def-GAN coordinate scripts; h5py needed): convolution layers by
  name when they carry the Caffe names, otherwise by creation order (``conv2d_1``, ``conv2d_2``, ... sorted by
  their number, or the file's layer order), every shape checked. Keras kernels (kh, kw, in, out) are read
  into the torch layout first, so one mapping serves both files.

The ptx ``Config`` (all widths, the number of stages) is inferred from the shapes. ``heatmap_relu`` is not in
the weights: it belongs to the pipeline (pytorch-openpose's extra ReLU) and defaults to True here.

    python -m ptx.convert openpose --weights body_pose_model.pth --out DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import re
import sys
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ptx.convert.common import (
    ConversionError,
    apply_rules,
    conv_rules,
    export_state_dict,
    read_converted,
    shape_of,
    write_converted,
)
from ptx.models.openpose.network import (
    STAGE1_KERNELS,
    STEM_CONVS,
    BodyPoseNet,
    Config,
    conv_shapes,
    stage_layers,
)

ROLES = {"body": "body"}
StateDict = Mapping[str, Any]
_MODULE_PREFIX = re.compile(r"^(module\.)?(model\d+(_\d+)?\.)?")


# ------------------------------------------------------------------------------------------------- reading
def canonical(state_dict: StateDict) -> dict[str, np.ndarray]:
    """Keys as the ``.pth`` file has them: drops ``module.`` and the ``model0.`` / ``model3_1.`` blocks."""
    out: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        name = _MODULE_PREFIX.sub("", key)
        if name in out:
            raise ConversionError(f"state dict has {key!r} and another key that both mean {name!r}")
        out[name] = np.asarray(value)
    return out


def read_h5(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A Keras ``.h5`` (whole model or weights only) -> a state dict with Caffe names in the torch layout."""
    import h5py

    with h5py.File(path, "r") as f:
        model_config = f.attrs.get("model_config", b"")
        if b"Lambda" in (model_config if isinstance(model_config, bytes) else str(model_config).encode()):
            warnings.warn(
                f"{path}: the model has Lambda layers (an in-model input normalisation?); ptx normalises "
                "outside the network as the dataset scripts do, so the estimate may be off",
                stacklevel=2,
            )
        group = f["model_weights"] if "model_weights" in f else f
        layers = []
        for raw in group.attrs["layer_names"]:
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            names = [
                n.decode() if isinstance(n, bytes) else str(n) for n in group[name].attrs["weight_names"]
            ]
            if names:
                arrays = [np.asarray(group[name][n]) for n in names]
                kernel = [a for a in arrays if a.ndim == 4]
                bias = [a for a in arrays if a.ndim == 1]
                if len(kernel) != 1 or len(bias) != 1:
                    raise ConversionError(
                        f"{path}: layer {name!r} holds {[a.shape for a in arrays]}; expected a conv"
                    )
                layers.append((name, kernel[0], bias[0]))
    return keras_layers_to_state_dict(layers, what=str(path))


def _creation_order(layers: list[tuple[str, np.ndarray, np.ndarray]]) -> list:
    """Auto-named Keras layers (``conv2d_7``) sorted by their creation number; other names keep file order."""
    numbers = [re.fullmatch(r".*_(\d+)", name) for name, _, _ in layers]
    if all(numbers) and len({int(m.group(1)) for m in numbers}) == len(layers):
        return [layer for _, layer in sorted(zip([int(m.group(1)) for m in numbers], layers))]
    return layers


def keras_layers_to_state_dict(
    layers: list[tuple[str, np.ndarray, np.ndarray]], what: str = "h5 file"
) -> dict:
    """[(layer name, kernel (kh, kw, in, out), bias)] -> {caffe name.weight / .bias} (torch layout)."""
    cfg = _infer_from_keras(layers, what)
    expected = list(conv_shapes(cfg))
    names = [name for name, _, _ in layers]
    if set(names) != set(expected):
        layers = _creation_order(layers)
        names = expected
    sd = {}
    for name, (_, kernel, bias) in zip(names, layers):
        sd[f"{name}.weight"] = np.transpose(kernel, (3, 2, 0, 1))
        sd[f"{name}.bias"] = bias
    return sd


def _infer_from_keras(layers, what: str) -> Config:
    """Widths from Keras layers in creation order (the stem, then stage 1 L1/L2, then L1/L2 per stage)."""
    by_name = {name: k for name, k, _ in layers}
    if set(conv_shapes(Config())) <= set(by_name) or "conv1_1" in by_name:
        sd = {f"{n}.weight": np.transpose(k, (3, 2, 0, 1)) for n, k in by_name.items()}
        return infer_config(sd, what=what)
    ordered = _creation_order(layers)
    outs = [k.shape[3] for _, k, _ in ordered]
    n_stem, n1, n = len(STEM_CONVS), len(STAGE1_KERNELS), len(stage_layers(2, 1))
    if len(outs) < n_stem + 2 * n1 or (len(outs) - n_stem - 2 * n1) % (2 * n):
        raise ConversionError(f"{what}: {len(outs)} conv layers do not make a stem + two-branch CPM stages")
    first_l2 = n_stem + n1
    cfg = Config(
        stem_widths=tuple(outs[:n_stem]),
        stage1_widths=tuple(outs[n_stem : n_stem + n1 - 1]),
        stage_widths=tuple(outs[n_stem + 2 * n1 : n_stem + 2 * n1 + n - 1]) or Config().stage_widths,
        n_stages=1 + (len(outs) - n_stem - 2 * n1) // (2 * n),
        paf_channels=outs[first_l2 - 1],
        heatmap_channels=outs[first_l2 + n1 - 1],
        in_channels=ordered[0][1].shape[2],
    )
    got = [tuple(k.shape) for _, k, _ in ordered]
    want = [(k, k, i, o) for k, i, o in conv_shapes(cfg).values()]
    if got != want:
        bad = next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)
        raise ConversionError(
            f"{what}: conv layer {bad} ({ordered[bad][0]!r}) has kernel {got[bad]}, expected {want[bad]} "
            f"(Keras layout kh, kw, in, out) for {list(conv_shapes(cfg))[bad]}"
        )
    return cfg


def load_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``.pth`` / ``.pt`` (torch or ptx's torch-free reader) or ``.h5`` / ``.hdf5`` -> canonical state dict."""
    path = pathlib.Path(path)
    if path.suffix.lower() in (".h5", ".hdf5", ".keras"):
        return read_h5(path)
    from ptx.convert import torch_io

    return canonical(torch_io.load_state_dict(path))


# ------------------------------------------------------------------------------------------------ mapping
def infer_config(state_dict: StateDict, *, heatmap_relu: bool = True, what: str = "state dict") -> Config:
    """The architecture of a (canonical or module-prefixed) state dict, from its names and shapes."""
    sd = canonical(state_dict)

    def out(name: str) -> int:
        return int(shape_of(sd, f"{name}.weight", what)[0])

    n_stages = 1
    while f"{stage_layers(n_stages + 1, 1)[0]}.weight" in sd:
        n_stages += 1
    return Config(
        stem_widths=tuple(out(n) for n in STEM_CONVS),
        stage1_widths=tuple(out(n) for n in stage_layers(1, 1)[:-1]),
        stage_widths=tuple(out(n) for n in stage_layers(2, 1)[:-1])
        if n_stages > 1
        else Config().stage_widths,
        n_stages=n_stages,
        paf_channels=out(stage_layers(1, 1)[-1]),
        heatmap_channels=out(stage_layers(1, 2)[-1]),
        in_channels=int(shape_of(sd, "conv1_1.weight", what)[1]),
        heatmap_relu=heatmap_relu,
    )


def torch_order(cfg: Config) -> list[str]:
    """Conv names in ``bodypose_model.state_dict()`` order: stem, every stage's L1, then every stage's L2."""
    names = list(STEM_CONVS)
    for branch in (1, 2):
        names += [n for stage in range(1, cfg.n_stages + 1) for n in stage_layers(stage, branch)]
    return names


def rules(cfg: Config) -> list:
    return [r for name in torch_order(cfg) for r in conv_rules((name,), name)]


def abstract_variables(cfg: Config) -> dict:
    import jax
    import jax.numpy as jnp

    image = jax.ShapeDtypeStruct((1, 16, 16, cfg.in_channels), jnp.float32)
    return jax.eval_shape(BodyPoseNet(cfg).init, jax.random.key(0), image)


def convert(
    state_dicts: Mapping[str, StateDict], cfg: Config | None = None
) -> tuple[Config, dict[str, dict]]:
    """``{"body": state dict}`` -> (Config, ``{"body": {"params": ...}}``). A given ``cfg`` whose architecture
    differs from the file's raises a ConversionError naming the fields (``heatmap_relu`` is taken from it)."""
    if set(state_dicts) != set(ROLES):
        raise ConversionError(f"openpose converts one role {sorted(ROLES)}, got {sorted(state_dicts)}")
    sd = canonical(state_dicts["body"])
    inferred = infer_config(sd, heatmap_relu=cfg.heatmap_relu if cfg else True)
    if cfg is not None and cfg != inferred:
        diff = [
            f"{f.name}: config {getattr(cfg, f.name)!r} vs file {getattr(inferred, f.name)!r}"
            for f in dataclasses.fields(Config)
            if getattr(cfg, f.name) != getattr(inferred, f.name)
        ]
        raise ConversionError("OpenPose weights do not match the given config: " + "; ".join(diff))
    expected = {"params": abstract_variables(inferred)["params"]}
    variables, _ = apply_rules(sd, rules(inferred), expected=expected, what="OpenPose body weights")
    return inferred, {"body": variables}


def export(cfg: Config, players: Mapping[str, dict]) -> dict[str, dict[str, np.ndarray]]:
    """Inverse of :func:`convert`: the ``body_pose_model.pth`` keys and layouts."""
    return {"body": export_state_dict(players["body"], rules(cfg))}


# ------------------------------------------------------------------------------------------------ goldens
def _run_network_golden(arrays: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import jax
    import jax.numpy as jnp

    sd = {k[len("param/") :]: v for k, v in arrays.items() if k.startswith("param/")}
    cfg, players = convert({"body": sd})
    image = jnp.asarray(np.transpose(arrays["input/image"], (0, 2, 3, 1)))

    def forward(variables, x):
        with jax.default_matmul_precision("highest"):  # no TF32 on GPUs (the card measured ~1e-3 with it)
            return BodyPoseNet(cfg).apply(variables, x, mutable=["intermediates"])

    fn = jax.jit(forward)
    (paf, heat), state = fn(players["body"], image)
    got = {name: value[0] for name, value in state["intermediates"].items()}
    got["paf"], got["heatmap"] = paf, heat
    results = {}
    for key, want in arrays.items():
        if key.startswith("output/"):
            name = key[len("output/") :]
            if name not in got:
                raise KeyError(f"fixture output {key} is not produced by ptx (known: {sorted(got)})")
            results[key] = (np.transpose(np.asarray(got[name]), (0, 3, 1, 2)), want)
    return results


def _run_postprocess_golden(arrays: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from ptx.models.openpose import pipeline, postprocess

    heat_full = arrays["input/heatmap_full"].astype(np.float64)
    paf_full = arrays["input/paf_full"].astype(np.float64)
    photo_hw = heat_full.shape[:2]
    got: dict[str, np.ndarray] = {}
    people = postprocess.find_people(heat_full, paf_full)
    got["output/candidate"], got["output/subset"] = people.candidates, people.subset
    got["output/keypoints_yx"] = people.best_keypoints()
    got["aux/special_k"] = np.asarray(people.special_k, np.int64)
    for k, conn in enumerate(people.connections):
        key = f"aux/connection_k{k:02d}"
        if conn is None:  # the references append an empty list there; keep the fixture's empty shape
            conn = np.zeros(np.shape(arrays[key]) if key in arrays and np.size(arrays[key]) == 0 else (0, 5))
        got[key] = conn
    got["aux/keypoints_yx_pafx4"] = postprocess.find_people(heat_full, 4 * paf_full).best_keypoints()
    got["aux/map_to_cord_yx"] = postprocess.map_to_cord(heat_full)

    zero_photo = np.zeros((*photo_hw, 3), np.uint8)
    for mode, group in (("openpose", "e2e_pto"), ("dataset", "e2e_keras")):
        if not any(k.startswith(group + "/") for k in arrays):
            continue
        inputs = pipeline.network_inputs(zero_photo, mode)
        outputs = []
        for s, item in enumerate(inputs):
            if mode == "openpose":
                paf = np.transpose(arrays[f"{group}/net_paf"][0], (1, 2, 0))
                heat = np.transpose(arrays[f"{group}/net_heatmap"][0], (1, 2, 0))
            else:
                paf, heat = arrays[f"{group}/net_paf_s{s}"][0], arrays[f"{group}/net_heatmap_s{s}"][0]
            want_hw = tuple(d // pipeline.STRIDE for d in item.image.shape[:2])
            if heat.shape[:2] != want_hw:
                raise AssertionError(
                    f"{group} scale {s}: net maps {heat.shape[:2]}, ptx's geometry gives {want_hw}"
                )
            outputs.append((paf.astype(np.float64), heat.astype(np.float64)))
        heat, paf = pipeline.combine(outputs, inputs, photo_hw, mode)
        people = postprocess.find_people(heat, paf)
        got[f"{group}/candidate"], got[f"{group}/subset"] = people.candidates, people.subset
        got[f"{group}/keypoints_yx"] = people.best_keypoints()
        got[f"{group}/map_to_cord_yx"] = postprocess.map_to_cord(heat)
        for key in arrays:
            m = re.fullmatch(rf"{group}/(heatmap|paf)_(avg|sum)_ch(\d+)", key)
            if m:
                got[key] = (heat if m.group(1) == "heatmap" else paf)[..., int(m.group(3))]
    results = {}
    for key, want in arrays.items():
        if key.startswith("input/") or "/net_" in key:
            continue
        if key not in got:
            raise KeyError(f"fixture output {key} is not produced by ptx")
        results[key] = (got[key], want)
    return results


def run_golden(arrays: dict[str, np.ndarray], meta: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``openpose_body_*`` fixtures: network outputs per stage; ``openpose_postprocess*``: peaks, limbs,
    people and both end-to-end pipelines from the recorded network maps."""
    if any(k.startswith("param/") for k in arrays):
        return _run_network_golden(arrays)
    if "input/heatmap_full" in arrays:
        return _run_postprocess_golden(arrays)
    raise ConversionError("not an OpenPose fixture: no param/* (network) and no input/heatmap_full (maps)")


# ---------------------------------------------------------------------------------------------------- CLI
def save(out_dir: str | os.PathLike, cfg: Config, players: Mapping[str, dict]) -> pathlib.Path:
    """The layout every converter writes (``ptx.convert.common.write_converted``); ``heatmap_relu`` is the
    Config field the weights do not show."""
    return write_converted(out_dir, "openpose", cfg, players, fields_not_in_weights=("heatmap_relu",))


def load(out_dir: str | os.PathLike) -> tuple[Config, dict[str, dict]]:
    """Inverse of :func:`save`."""
    method, model, players = read_converted(out_dir)
    if method != "openpose":
        raise ConversionError(f"{out_dir}: holds converted {method} weights; expected openpose ones")
    return Config(**model), players


def cli(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ptx.convert openpose", description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="body_pose_model.pth or pose_estimator.h5")
    ap.add_argument("--out", required=True, help="output directory (absent or empty)")
    args = ap.parse_args(argv)
    cfg, players = convert({"body": load_weights(args.weights)})
    out = save(args.out, cfg, players)
    n = sum(int(np.size(v)) for p in players["body"]["params"].values() for v in p.values())
    print(f"OpenPose body, {cfg.n_stages} stages: {n:,} parameters -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
