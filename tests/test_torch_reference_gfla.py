"""The PyTorch re-implementation of GFLA (benchmarks/torch_reference/gfla.py) against the original's goldens.

The golden fixtures were recorded from the original code; if the benchmark's PyTorch column is to mean "the
same step in PyTorch", its networks and ops must reproduce them. Losses have no golden: they are checked
against ptx's (independently tested) JAX losses on small random inputs.
"""

import importlib.util
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks.torch_reference import gfla as tg  # noqa: E402
from ptx.convert.gfla import config_from_meta, detect_kind  # noqa: E402
from ptx.models import gfla as models  # noqa: E402

REL_TOL = 1e-4


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the tests run two at a time on two shared cores, and torch's OpenMP threads slow
    down badly when oversubscribed (torch_reference itself asks for as many threads as cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _load(golden_dir, name):
    arrays = np.load(golden_dir / f"{name}.npz")
    return {k: arrays[k] for k in arrays.files}, json.loads((golden_dir / f"{name}.json").read_text())


def _rel_err(got, ref) -> float:
    return float(np.abs(np.asarray(got) - ref).max() / max(np.abs(ref).max(), 1e-12))


def _run_model_golden(golden_dir, name):
    arrays, meta = _load(golden_dir, name)
    state = {k[len("param/") :]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("param/")}
    kind = detect_kind(state)
    cfg = config_from_meta(meta, kind)
    net = tg.PoseGenerator(cfg) if kind == "generator" else tg.PoseFlowNetGenerator(cfg)
    net.load_state_dict(state, strict=True)
    inputs = [torch.from_numpy(arrays[f"input/{n}"]) for n in ("source", "source_pose", "target_pose")]
    with torch.no_grad():
        out = net(*inputs)
    if kind == "generator":
        image, flows, masks, attn = out
        got = {"image": image} | {f"attn_softmax_{i}": a for i, a in enumerate(attn)}
    else:
        (flows, masks), got = out, {}
    got |= {f"flow_{i}": f for i, f in enumerate(flows)} | {f"mask_{i}": m for i, m in enumerate(masks)}
    wanted = {k[len("output/") :]: v for k, v in arrays.items() if k.startswith("output/")}
    assert set(wanted) <= set(got)
    return {k: _rel_err(got[k].numpy(), ref) for k, ref in wanted.items()}


@pytest.mark.parametrize("name", ["gfla_fashion_small", "gfla_flow_small"])
def test_model_matches_golden(golden_dir, name):
    errors = _run_model_golden(golden_dir, name)
    assert max(errors.values()) < REL_TOL, errors


@pytest.fixture(scope="module")
def ops_golden(golden_dir):
    return _load(golden_dir, "gfla_ops")


def _op(spec):
    k = spec.get("kernel_size")
    if spec["op"] == "block_extractor":
        return ("source", "flow_field"), lambda s, f: tg.extract_blocks(s, f, k)
    if spec["op"] == "local_attn_reshape":
        return ("inputs",), lambda a: tg.local_attn_reshape(a, k)
    return ("input1", "flow"), lambda x, f: tg.gaussian_resample(x, f, k, spec["dilation"], spec["sigma"])


def test_ops_and_gradients_match_golden(ops_golden):
    """block_extractor, local_attn_reshape, resample2d: outputs and gradients of sum(out * proj)."""
    arrays, meta = ops_golden
    errors = {}
    for case, spec in meta["cases"].items():
        names, fn = _op(spec)
        args = [torch.from_numpy(arrays[f"input/{case}/{n}"]).requires_grad_(True) for n in names]
        out = fn(*args)
        (out * torch.from_numpy(arrays[f"input/{case}/proj"])).sum().backward()
        errors[f"{case}/out"] = _rel_err(out.detach().numpy(), arrays[f"output/{case}/out"])
        for n, a in zip(names, args):
            errors[f"{case}/grad_{n}"] = _rel_err(a.grad.numpy(), arrays[f"grad/{case}/{n}"])
    assert len(errors) == 30
    assert max(errors.values()) < REL_TOL, errors


@pytest.mark.parametrize(
    "entry, build",
    [
        ("fashion_generator", lambda: tg.PoseGenerator(models.VARIANTS["fashion"])),
        ("fashion_flow_net_stage1", lambda: tg.PoseFlowNetGenerator(models.VARIANTS["fashion"])),
        ("market_generator", lambda: tg.PoseGenerator(models.VARIANTS["market"])),
        ("fashion_discriminator", lambda: tg.ResDiscriminator(models.VARIANTS["fashion"])),
        ("market_discriminator", lambda: tg.ResDiscriminator(models.VARIANTS["market"])),
    ],
)
def test_full_size_state_dicts_have_the_original_names(golden_dir, entry, build):
    """Every key and shape of the published models (spectral-norm buffers and aliased convs included)."""
    official = json.loads((golden_dir / "gfla_official_keys.json").read_text())[entry]
    net = build()
    got = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert got == {e["key"]: e["shape"] for e in official["keys"]}
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == official["num_parameters"]


def _ptx_losses(feats, feats2, flows, fx, fy, logits):
    """The same terms by ptx's JAX losses (NHWC), in one jitted function so that it compiles once."""
    from ptx.losses import correctness, flow_regularization, gan, perceptual

    out = {
        "correctness": correctness.correctness_loss(feats, feats2, flows, (2, 3)),
        "regularization": flow_regularization.multi_affine_regularization(flows, {2: 5, 3: 3}),
        "content": perceptual.content_loss(fx, fy, perceptual.GFLA_CONTENT_LAYERS),
        "style": perceptual.style_loss(fx, fy, perceptual.GFLA_STYLE_LAYERS),
    }
    for mode in gan.MODES:
        out[f"d_{mode}"] = gan.discriminator_loss(logits, -logits, mode)
        out[f"g_{mode}"] = gan.generator_loss(logits, mode)
    return out


def test_losses_agree_with_ptx():
    """Correctness, affine regulariser, content, style and GAN terms against ptx's JAX losses."""
    import jax

    rng = np.random.default_rng(0)
    feats = {
        n: rng.uniform(0, 1, (2, c, s, s)).astype(np.float32)
        for n, c, s in [("relu3_1", 8, 16), ("relu4_1", 12, 8)]
    }
    feats2 = {n: (v + rng.normal(0, 0.3, v.shape)).clip(0).astype(np.float32) for n, v in feats.items()}
    flows = [rng.normal(0, 2, (2, 2, s, s)).astype(np.float32) for s in (8, 16)]
    names = [*tg.CONTENT_LAYERS, *tg.STYLE_LAYERS]
    fx = {n: rng.uniform(0, 1, (2, 4, 6, 6)).astype(np.float32) for n in names}
    fy = {n: rng.uniform(0, 1, (2, 4, 6, 6)).astype(np.float32) for n in names}
    logits = rng.normal(size=(2, 1, 4, 4)).astype(np.float32)
    args = (feats, feats2, flows, fx, fy, logits)

    nhwc = jax.tree.map(lambda a: a.transpose(0, 2, 3, 1), args)
    ref = jax.jit(_ptx_losses)(*nhwc)
    t = jax.tree.map(torch.from_numpy, args)
    ours = {
        "correctness": tg.correctness_loss(t[0], t[1], t[2], (2, 3)),
        "regularization": tg.multi_affine_regularization(t[2], {2: 5, 3: 3}),
        "content": tg.content_loss(t[3], t[4]),
        "style": tg.style_loss(t[3], t[4]),
    }
    for mode in ("lsgan", "hinge", "nsgan"):
        real, fake = tg.gan_loss(t[5], True, mode, True), tg.gan_loss(-t[5], False, mode, True)
        ours[f"d_{mode}"] = 0.5 * (real + fake)
        ours[f"g_{mode}"] = tg.gan_loss(t[5], True, mode, False)
    assert set(ours) == set(ref)
    for name, value in ours.items():
        np.testing.assert_allclose(float(value), float(ref[name]), rtol=1e-4, err_msg=name)


def _config(file, variant="tiny"):
    spec = importlib.util.spec_from_file_location("_cfg", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(variant)


@pytest.mark.parametrize(
    "file, stage",
    [
        ("configs/gfla_fashion.py", "flow"),
        ("configs/gfla_fashion.py", None),
        ("configs/gfla_market.py", None),
    ],
)
def test_step_updates_every_trained_network(file, stage):
    """One step of ``torch_reference`` (tiny config) changes G (and D in stage full) and keeps them finite."""
    step = tg.torch_reference(_config(file), 2, stage=stage)
    torch.set_num_threads(1)  # torch_reference set it to the core count
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in step.networks.items()}
    step()
    assert set(step.networks) == ({"gen"} if stage == "flow" else {"gen", "disc"})
    for name, net in step.networks.items():
        params = list(net.parameters())
        assert all(torch.isfinite(p).all() for p in params), name
        changed = sum(not torch.equal(a, b) for a, b in zip(before[name], params))
        assert changed > len(params) // 2, f"{name}: only {changed} of {len(params)} tensors moved"


def test_generator_step_gives_every_generator_parameter_a_gradient():
    """``generator_step`` (forward + grad of mean|image|, what benchmarks/generator.py times) reaches every
    parameter of the generator, the flow net included."""
    step = tg.generator_step(_config("configs/gfla_fashion.py"), 1)
    torch.set_num_threads(1)
    step()
    grads = [p.grad for p in step.networks["gen"].parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(bool(g.abs().sum() > 0) for g in grads) == len(grads)
