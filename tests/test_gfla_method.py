"""GFLA recipe: parameter trees per stage, flow-net carry-over, both tiny stages through the trainer, VGG errors."""

import math
import pathlib
import warnings

import jax
import numpy as np
import pytest
from train_fixtures import Recorder

from configs import gfla_fashion, gfla_market
from ptx.methods import common, gfla
from ptx.train import checkpoint, loop
from ptx.train.state import carry_matching

SIZE = (64, 64)


@pytest.fixture(scope="module", autouse=True)
def fast_compiles():
    """XLA's cheapest compile mode: one tiny step per stage."""
    old = jax.config.values.get("jax_disable_most_optimizations", False)
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", old)


def _batch(b=2, size=SIZE, seed=0):
    r = np.random.default_rng(seed)
    kps = (r.uniform(0, 1, (b, 18, 2)) * [size[0] - 1, size[1] - 1]).astype(np.float32)
    return {
        "source_image": r.integers(0, 256, (b, *size, 3), dtype=np.uint8),
        "target_image": r.integers(0, 256, (b, *size, 3), dtype=np.uint8),
        "source_keypoints": kps[::-1].copy(),
        "target_keypoints": kps,
    }


def _tiny(**overrides):
    config = gfla_fashion.get_config("tiny")
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config


@pytest.fixture(scope="module")
def method():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = gfla.build(_tiny())
        m.frozen("full")
    return m


def _shapes(tree):
    return {jax.tree_util.keystr(p): tuple(x.shape) for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def test_stage_trees_and_flow_net_carry_over(method):
    batch = _batch()
    flow = jax.eval_shape(lambda k: method.init(k, batch, "flow"), jax.random.key(0))
    full = jax.eval_shape(lambda k: method.init(k, batch, "full"), jax.random.key(0))
    assert set(flow) == {"gen"}  # stage 1: the flow estimator alone
    assert set(flow["gen"]["params"]) == {"flow_net"}
    assert set(full) == {"gen", "disc"}
    assert set(full["gen"]["params"]) == {"flow_net", "source", "target"}
    assert set(full["disc"]) == {"params", "spectral"}
    assert set(flow["gen"]) == set(full["gen"]) == {"params"}  # the frozen VGG is no part of the state
    assert set(method.frozen("flow")) == {"vgg19"}
    # Every flow-net leaf of stage 1 has the same path and shape in stage 2, so the trainer carries it over.
    assert _shapes(flow["gen"]["params"]) == _shapes({"flow_net": full["gen"]["params"]["flow_net"]})
    _, carried, total = carry_matching(flow, full)
    assert carried == len(jax.tree.leaves(flow))
    assert total > carried


def test_market_layout_one_flow(method):
    config = gfla_market.get_config("tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = gfla.build(config)
    m._vgg_params = method.frozen("full")["vgg19"]
    out = jax.eval_shape(
        lambda k: m.predict(m.init(k, _batch(size=(64, 32)), "full"), _batch(size=(64, 32))),
        jax.random.key(0),
    )
    assert set(out) == {"image", "warped", "flow0", "mask0"}
    assert out["flow0"].shape == (2, 16, 8, 2)  # 1/4 resolution


def test_paper_variant_names_missing_vgg_file(tmp_path):
    missing = tmp_path / "nowhere" / "vgg19-dcbb9e9d.pth"
    config = gfla_fashion.get_config("paper")
    config.vgg_path = str(missing)
    m = gfla.build(config)
    with pytest.raises(FileNotFoundError, match=r"vgg19-dcbb9e9d\.pth.*not found.*nowhere"):
        m.frozen("full")


def test_demo_falls_back_to_random_vgg_with_warning(tmp_path):
    config = gfla_fashion.get_config("demo")
    config.vgg_path = str(tmp_path / "vgg19-dcbb9e9d.pth")
    config.loss.style = 500.0  # the demo itself reads no VGG; any VGG term brings it back
    with pytest.warns(UserWarning, match="random VGG19"):
        params = gfla.build(config).frozen("full")["vgg19"]
    assert params["conv5_2"]["kernel"].shape == (3, 3, 512, 512)  # the deepest layer a GFLA loss reads
    assert "conv5_3" not in params and "conv5_4" not in params  # no weight the losses never read


def test_demo_needs_no_vgg_and_reports_only_weighted_terms(method):
    """The demo's VGG terms are at weight 0: no VGG is loaded (no warning) and its losses never run one."""
    config = _tiny(**{f"loss.{k}": v for k, v in gfla_fashion._DEMO_LOSS.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        demo = gfla.build(config)
        assert demo.frozen("full") == {} and demo.frozen("flow") == {}
    batch = _batch()
    variables = jax.jit(lambda k: demo.init(k, batch, "flow"))(jax.random.key(0))
    outputs, _ = demo.forward("flow", variables, {}, batch, jax.random.key(1))
    _, (terms, _) = demo.loss("flow", "gen", variables, {}, batch, outputs, jax.random.key(2))
    assert set(terms) == {"regularization", "warp_l1"}
    assert all(np.isfinite(float(v)) for v in terms.values())


def test_unknown_loss_weight_is_named():
    config = _tiny()
    config.loss.unlock()
    config.loss.stlye = 1.0
    with pytest.raises(ValueError, match="stlye"):
        gfla.build(config)


def test_baselines_shapes():
    batch = _batch(b=3)
    mean = np.full((*SIZE, 3), 255, np.uint8)
    base = common.baselines(batch, mean)
    assert base["copy_source"].shape == base["mean_image"].shape == (3, *SIZE, 3)
    np.testing.assert_array_equal(base["mean_image"], 1.0)  # the given training mean, not the batch's targets
    np.testing.assert_allclose(base["copy_source"], batch["source_image"] / 127.5 - 1.0, atol=1e-6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, method):
    """Both tiny stages (one step each) through the real trainer, on one device."""
    workdir = tmp_path_factory.mktemp("gfla_tiny")
    config = _tiny(**{"mesh.shape": (1,), "log.every_steps": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = loop.run(config, workdir, loader_factory=Recorder(SIZE, config.data.batch_size))
    return workdir, result


def test_tiny_both_stages_finite(trained):
    _, result = trained
    assert result.status == "finished" and result.stage == "full" and result.global_step == 2
    expected = {
        "gen/l1",
        "gen/correctness",
        "gen/adversarial",
        "gen/regularization",
        "gen/content",
        "gen/style",
        "gen/loss",
        "disc/loss",
    }
    assert expected <= set(result.metrics)
    assert all(math.isfinite(v) for v in result.metrics.values()), result.metrics


def test_tiny_flow_net_carried_into_full_stage(trained):
    workdir, _ = trained
    ckpt = pathlib.Path(workdir) / "checkpoints"
    flow_state = checkpoint.load_params(ckpt / "1" / "state")
    full_state = checkpoint.load_params(ckpt / "2" / "state")
    assert set(flow_state["params"]["gen"]) == {"flow_net"}
    assert set(full_state["params"]["gen"]) == {"flow_net", "source", "target"}
    assert set(full_state["params"]) == {"gen", "disc"}
    # One Adam step with b1 = 0 moves every parameter by at most lr (1e-4): the full stage started from the
    # flow stage's flow net, not from a fresh one.
    before = jax.tree.leaves(flow_state["params"]["gen"]["flow_net"])
    after = jax.tree.leaves(full_state["params"]["gen"]["flow_net"])
    assert len(before) == len(after)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(after, before)) <= 1.01e-4


def test_warp_l1_is_zero_for_an_exact_warp_and_pulls_the_flow_otherwise(method):
    """The demo's warp_l1 term: zero flow on identical images costs nothing; a wrong target costs and has a
    flow gradient (the signal the flow stage lacks with random VGG features)."""
    batch = _batch()
    same = {"source": batch["source_image"] / 127.5 - 1.0, "target": batch["source_image"] / 127.5 - 1.0}
    flows = [np.zeros((2, 16, 16, 2), np.float32), np.zeros((2, 32, 32, 2), np.float32)]
    assert float(method._warp_l1(same, flows)) < 1e-6
    other = {**same, "target": batch["target_image"] / 127.5 - 1.0}
    assert float(method._warp_l1(other, flows)) > 0.1
    grads = jax.grad(lambda f: method._warp_l1(other, f))(flows)
    assert all(float(np.abs(g).max()) > 0 for g in grads)
