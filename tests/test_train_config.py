"""Configs and the pure helpers of the trainer (no compilation): parse_arg, locked configs, sharding rules,
stage carry-over, the command line's typo message."""

import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from configs import common, toy_puppets
from ptx.train import sharding
from ptx.train import state as tstate

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_parse_arg_variant_and_switches():
    a = common.parse_arg("tiny,batch=4,fsdp,size=(8, 4)", batch=0, fsdp=False, size=(1, 1), name="x")
    assert (a.variant, a.batch, a.fsdp, a.size, a.name) == ("tiny", 4, True, (8, 4), "x")
    assert common.parse_arg(None, variant="demo").variant == "demo"
    assert common.parse_arg("variant=paper,flag=false", flag=True).flag is False


@pytest.mark.parametrize(
    "arg, match",
    [
        ("tiny,bacth=4", "unknown config arg 'bacth'.*known: paper, demo, tiny, batch"),
        ("huge", "unknown config arg 'huge'"),
        ("batch=four", "expected a int"),
        ("variant=big", "expected one of"),
    ],
)
def test_parse_arg_errors(arg, match):
    with pytest.raises(ValueError, match=match):
        common.parse_arg(arg, batch=0)


def test_toy_config_is_locked_and_variants_differ():
    tiny, demo = toy_puppets.get_config("tiny"), toy_puppets.get_config("demo,steps=10")
    assert tiny.data.image_size != demo.data.image_size
    assert [s.num_steps for s in demo.stages] == [5, 5]
    with pytest.raises(AttributeError, match="lr"):
        tiny.optim.gen.lrr = 1.0
    with pytest.raises(AttributeError):
        tiny.stages[0].num_step = 3


def test_main_typo_lists_valid_keys():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "ptx.main",
        "--config",
        "configs/toy_puppets.py:tiny",
        "--workdir",
        "/tmp/unused",
        "--config.optim.gen.lrr=1e-3",
    ]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "lrr" in out.stderr and "valid keys: b1, b2, decay_start" in out.stderr, out.stderr[-2000:]


def _mesh(shape, axes=("data",)):
    return sharding.make_mesh(common.mesh(shape, axes))


def test_fsdp_rules_pick_a_divisible_dimension():
    mesh = _mesh((8,))
    cfg = common.sharding("fsdp", rules=[("disc/.*bias", "replicate")], fsdp_min_size=64)
    assert sharding.leaf_spec("params/gen/Conv2d_0/kernel", (3, 3, 16, 8), mesh, cfg) == P(
        None, None, "data", None
    )
    assert sharding.leaf_spec("params/gen/Conv2d_0/kernel", (3, 3, 3, 4), mesh, cfg) == P()  # too small
    assert sharding.leaf_spec("params/disc/Conv2d_0/bias", (1024,), mesh, cfg) == P()  # rule wins
    assert sharding.leaf_spec("opt_state/gen/0/mu/Dense_0/kernel", (36, 64), mesh, cfg) == P(None, "data")
    with pytest.raises(ValueError, match="expected one of"):
        sharding.leaf_spec("x", (8,), mesh, common.sharding("zero3"))


def test_mesh_shapes_and_errors():
    assert dict(_mesh((-1,)).shape) == {"data": 8}
    assert dict(_mesh((2, -1), ("data", "model")).shape) == {"data": 2, "model": 4}
    assert _mesh((1,)).size == 1
    with pytest.raises(ValueError, match="does not divide"):
        _mesh((3, -1), ("data", "model"))


def test_carry_matching_copies_same_path_and_shape():
    old = {"gen": {"params": {"a": jnp.ones((2, 3)), "b": jnp.ones((4,))}}}
    new = {
        "gen": {"params": {"a": jnp.zeros((2, 3)), "b": jnp.zeros((5,)), "c": jnp.zeros(())}},
        "disc": {"params": {"a": jnp.zeros((2, 3))}},
    }
    tree, carried, total = tstate.carry_matching(old, new)
    assert (carried, total) == (1, 4)
    np.testing.assert_array_equal(tree["gen"]["params"]["a"], 1.0)
    np.testing.assert_array_equal(tree["gen"]["params"]["b"], 0.0)
    np.testing.assert_array_equal(tree["disc"]["params"]["a"], 0.0)


def test_batch_filter_keeps_numeric_arrays():
    batch = {
        "image": np.zeros((2, 4, 4, 3), np.uint8),
        "name": np.array(["a", "b"]),
        "k": np.zeros((2, 18, 2)),
    }
    assert sorted(sharding.device_batch(batch)) == ["image", "k"]
    shapes = sharding.global_batch_shapes(sharding.device_batch(batch))
    assert shapes["image"].shape == (2 * jax.process_count(), 4, 4, 3)
