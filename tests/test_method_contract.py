"""The recipe contract, for every method in ``ptx.registry.METHODS``: its tiny config builds, it declares the
protocol, every stage initialises, the compiled step runs the generator once, each (stage, player) loss is finite,
and predict gives images of the batch's shape. A new method is covered by registering it."""

from __future__ import annotations

import collections
import functools
import importlib
import importlib.util
import pkgutil
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import configs
from ptx import api, registry
from ptx.data import pipeline
from ptx.methods import protocol
from ptx.train import loop, optim
from ptx.train import state as tstate
from ptx.train.step import make_train_step

# Smoke tests: skip LLVM's expensive passes (compiles several times faster on CPU; values are only checked
# for finiteness here, parity lives in the goldens).
FAST = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


@functools.cache
def _tiny_configs() -> dict[str, str]:
    """method -> the first ``configs/<name>.py`` (alphabetically) whose tiny variant is that method."""
    out: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(configs.__path__), key=lambda m: m.name):
        if info.name == "common" or info.name.startswith("_"):
            continue
        config = importlib.import_module(f"configs.{info.name}").get_config("tiny")
        out.setdefault(config.method, info.name)
    return out


def _config(method: str):
    name = _tiny_configs().get(method)
    if name is None:
        pytest.fail(f"method {method!r} is registered but no configs/*.py has a tiny variant for it")
    config = importlib.import_module(f"configs.{name}").get_config("tiny").copy_and_resolve_references()
    with config.unlocked():
        if "vgg_fallback_random" in config:
            config.vgg_fallback_random = True
            config.vgg_path = ""
    return config


def _batch(config, stage_batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A random batch of the config's frame (keypoints inside it, one joint missing)."""
    rs = np.random.RandomState(seed)
    h, w = (int(s) for s in config.data.image_size)
    kps = np.stack([rs.uniform(4, h - 5, (stage_batch, 18)), rs.uniform(2, w - 3, (stage_batch, 18))], -1)
    kps = kps.astype(np.float32)
    kps[:, 3] = -1
    batch = {
        "source_image": rs.randint(0, 256, (stage_batch, h, w, 3)).astype(np.uint8),
        "target_image": rs.randint(0, 256, (stage_batch, h, w, 3)).astype(np.uint8),
        "source_keypoints": kps,
        "target_keypoints": kps[::-1].copy(),
    }
    if config.data.get("edges", False):
        for side in ("source", "target"):
            batch[f"{side}_edge"] = rs.randint(0, 256, (stage_batch, h, w)).astype(np.uint8)
    if config.data.get("parsing", False):
        for side in ("source", "target"):
            batch[f"{side}_parsing"] = rs.randint(0, 8, (stage_batch, h, w)).astype(np.uint8)
    return batch


class _Built:
    """A method with its tiny config and stages, built once per method for the module."""

    def __init__(self, name: str):
        self.config = _config(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.method = registry.get_method(name).build(self.config)
            self.specs = loop.stages_from_config(self.config)
            self.frozen = {s.stage.name: self.method.frozen(s.stage.name) for s in self.specs}

    def batch(self, spec) -> dict[str, np.ndarray]:
        b = _batch(self.config, min(spec.batch_size, 2))
        transform = self.method.host_transform("train")
        if transform is not None:
            pairs = [{k: v[i] for k, v in b.items()} for i in range(len(b["source_image"]))]
            rows = [pipeline.apply_host_transform(transform, pair) for pair in pairs]
            b = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
        return b

    def state(self, spec, batch):
        txs = optim.make_optimizers(spec.optim, [p for p in spec.stage.players if p not in spec.frozen])
        shapes = jax.eval_shape(lambda k: self.method.init(k, batch, spec.stage.name), jax.random.key(0))
        variables = api._random_variables(shapes)
        return tstate.create(jax.random.key(1), variables, txs), txs


@functools.cache
def _built(name: str) -> _Built:
    return _Built(name)


METHODS = sorted(registry.METHODS)


@pytest.mark.parametrize("name", METHODS)
def test_declares_the_protocol(name):
    method = _built(name).method
    assert isinstance(method, protocol.Method), f"{name} lacks a member of ptx.methods.protocol.Method"
    assert method.generator in method.players
    assert set(method.capabilities) <= {protocol.ENCODE_SOURCE, protocol.EDIT_REGIONS}
    assert set(method.sample_fields) <= set(protocol.SAMPLE_FIELDS)
    if protocol.ENCODE_SOURCE in method.capabilities:
        assert isinstance(method, protocol.SourceEncoder)


def _count_top_level_applies(fn, *args) -> collections.Counter:
    """How many times each top-level flax module class is applied while ``fn(*args)`` is traced."""
    counts: collections.Counter = collections.Counter()

    def interceptor(next_fun, args_, kwargs_, context):
        if context.method_name == "__call__" and not isinstance(context.module.parent, nn.Module):
            counts[type(context.module).__name__] += 1
        return next_fun(*args_, **kwargs_)

    with nn.intercept_methods(interceptor):
        jax.make_jaxpr(fn)(*args)
    return counts


@pytest.mark.parametrize("name", METHODS)
def test_step_runs_the_generator_once_and_losses_are_finite(name):
    built = _built(name)
    method = built.method
    for spec in built.specs:
        stage = spec.stage.name
        batch = built.batch(spec)
        st, txs = built.state(spec, batch)
        frozen = built.frozen[stage]
        forward_only = _count_top_level_applies(
            lambda v, b, stage=stage, frozen=frozen: method.forward(stage, v, frozen, b, jax.random.key(0)),
            st.variables(),
            batch,
        )
        assert forward_only, f"{name} stage {stage}: forward applies no flax module"
        step = make_train_step(method, spec.stage, txs)
        in_step = _count_top_level_applies(step, st, frozen, batch)
        for module, n in forward_only.items():
            assert in_step[module] == n, (
                f"{name} stage {stage}: the step applies {module} {in_step[module]} times, one forward "
                f"applies it {n} times (the generator must run once per step)"
            )
        compiled = jax.jit(step).lower(st, frozen, batch).compile(FAST)
        new, metrics = compiled(st, frozen, batch)
        for player in txs:
            assert np.isfinite(float(metrics[f"{player}/loss"])), f"{name} {stage} {player}"
        bad = {k: float(v) for k, v in metrics.items() if not np.isfinite(float(v))}
        assert not bad, f"{name} stage {stage}: non-finite {bad}"
        assert int(new.step) == 1


@pytest.mark.parametrize("name", METHODS)
def test_predict_shape(name):
    built = _built(name)
    spec = built.specs[-1]
    batch = built.batch(spec)
    st, _ = built.state(spec, batch)
    out = jax.eval_shape(lambda v, b: built.method.predict(v, b, jax.random.key(0)), st.variables(), batch)
    assert out["image"].shape == batch["target_image"].shape
    assert out["image"].dtype == jnp.float32


def test_every_registered_method_has_a_tiny_config():
    assert set(registry.METHODS) <= set(_tiny_configs())


def _has_converter(name: str) -> bool:
    return importlib.util.find_spec(f"ptx.convert.{name}") is not None


@pytest.mark.parametrize("name", [m for m in METHODS if _has_converter(m)])
def test_convert_load_sample_round_trip(name, tmp_path):
    """Official-named state dicts (``export`` of the tiny model) -> ``convert`` -> the shared on-disk layout ->
    ``ptx.load`` -> ``ptx.sample`` on a photo: an image of the model's frame."""
    from ptx.convert import common

    conv = importlib.import_module(f"ptx.convert.{name}")
    built = _built(name)
    spec = built.specs[-1]
    batch = built.batch(spec)
    variables = built.state(spec, batch)[0].variables()
    players = {p: variables[p] for p in conv.ROLES.values() if p in variables}
    cfg, converted = conv.convert(conv.export(built.method.cfg, players))
    fields = conv.FIELDS_NOT_IN_WEIGHTS  # every converter says which Config fields its weights cannot show
    out = common.write_converted(tmp_path / "weights", name, cfg, converted, fields_not_in_weights=fields)
    sampler = api.load(_tiny_configs()[name], out, variant="tiny", batch_size=1)
    h, w = sampler.image_size
    rs = np.random.RandomState(0)
    photo = rs.randint(0, 256, (2 * h, 2 * w, 3)).astype(np.uint8)
    pose = np.stack([np.linspace(0.2, 1.8, 18) * h, np.full(18, w) + 8 * np.sin(np.arange(18))], -1)
    parsing = rs.randint(0, 20, (2 * h, 2 * w)).astype(np.uint8)
    needs_parsing = protocol.SOURCE_PARSING in sampler.method.sample_fields
    image = sampler(photo, pose[::-1].copy(), src_pose=pose, src_parsing=parsing if needs_parsing else None)
    assert image.shape == (h, w, 3) and image.dtype == np.uint8
