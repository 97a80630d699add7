"""Where arrays live: the mesh, the train state's layout (replicated or FSDP by regex rules), batches.

Only the trainer (and the pipeline's global-array assembly) sees a mesh; models, losses and ops never do.
"""

from __future__ import annotations

import math
import re
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

STRATEGIES = ("replicate", "fsdp")


def make_mesh(mesh_cfg, devices: list | None = None) -> Mesh:
    """Mesh of ``mesh_cfg.shape`` over ``mesh_cfg.axes`` (one ``-1`` takes the remaining devices).

    Axes are ``Auto`` (XLA propagates shardings), not jax's newer ``Explicit`` default, which would demand
    explicit output shardings from every conv. With fewer devices asked than present, the first ones are used.
    """
    devices = list(devices if devices is not None else jax.devices())
    shape, axes = list(mesh_cfg.shape), tuple(mesh_cfg.axes)
    if len(shape) != len(axes):
        raise ValueError(f"config.mesh: shape {tuple(shape)} and axes {axes} differ in length")
    if shape.count(-1) > 1:
        raise ValueError(f"config.mesh.shape {tuple(shape)}: at most one -1")
    known = math.prod(s for s in shape if s != -1)
    if -1 in shape:
        if len(devices) % known:
            raise ValueError(f"config.mesh.shape {tuple(shape)} does not divide {len(devices)} devices")
        shape[shape.index(-1)] = len(devices) // known
    n = math.prod(shape)
    if n > len(devices):
        raise ValueError(f"config.mesh.shape {tuple(shape)} needs {n} devices; {len(devices)} present")
    auto = (jax.sharding.AxisType.Auto,) * len(axes)
    return jax.make_mesh(tuple(shape), axes, axis_types=auto, devices=devices[:n])


def path_str(path) -> str:
    """``params/gen/Conv2d_0/kernel`` style name of a pytree key path (what sharding rules match)."""
    return jax.tree_util.keystr(path, simple=True, separator="/")


def _fsdp_spec(shape: tuple[int, ...], axis: str, axis_size: int, min_size: int) -> PartitionSpec:
    if axis_size <= 1 or math.prod(shape) < min_size:
        return PartitionSpec()
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % axis_size == 0:
            spec = [None] * len(shape)
            spec[dim] = axis
            return PartitionSpec(*spec)
    return PartitionSpec()


def leaf_spec(name: str, shape: tuple[int, ...], mesh: Mesh, sharding_cfg) -> PartitionSpec:
    """The PartitionSpec of one state leaf: first matching ``(regex, strategy)`` rule, else the default."""
    strategy = sharding_cfg.params
    for rule in sharding_cfg.get("rules", ()):
        pattern, rule_strategy = rule
        if re.search(pattern, name):
            strategy = rule_strategy
            break
    if strategy == "replicate":
        return PartitionSpec()
    if strategy == "fsdp":
        axis = sharding_cfg.get("fsdp_axis", "data")
        if axis not in mesh.shape:
            raise ValueError(f"config.sharding.fsdp_axis {axis!r} is not a mesh axis {tuple(mesh.shape)}")
        return _fsdp_spec(tuple(shape), axis, mesh.shape[axis], sharding_cfg.get("fsdp_min_size", 0))
    raise ValueError(f"sharding strategy {strategy!r} for {name!r}: expected one of {STRATEGIES}")


def state_shardings(abstract: Any, mesh: Mesh, sharding_cfg) -> Any:
    """NamedShardings for every leaf of an abstract (``eval_shape``) tree."""

    def one(path, leaf):
        return NamedSharding(mesh, leaf_spec(path_str(path), tuple(leaf.shape), mesh, sharding_cfg))

    return jax.tree_util.tree_map_with_path(one, abstract)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, axis: str = "data") -> NamedSharding:
    """Leading (batch) axis split over ``axis``; everything else replicated."""
    return NamedSharding(mesh, PartitionSpec(axis))


def device_batch(batch: dict[str, Any]) -> dict[str, np.ndarray]:
    """The entries that go to the device: numeric arrays (names and other strings stay on the host)."""
    return {k: v for k, v in batch.items() if isinstance(v, np.ndarray) and v.dtype.kind in "biuf"}


def global_batch_shapes(batch: dict[str, np.ndarray]) -> dict[str, jax.ShapeDtypeStruct]:
    """Global shapes of a per-process batch (every process holds an equal slice of the batch axis)."""
    n = jax.process_count()
    return {k: jax.ShapeDtypeStruct((v.shape[0] * n, *v.shape[1:]), v.dtype) for k, v in batch.items()}


def put_batch(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """Assemble global arrays from each process's slice (an explicit host-to-device copy, no sync)."""
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
