"""The PyTorch SCA-GAN reference of the benchmarks against the goldens recorded from the original code, the
official key lists, and ptx's losses on the same weights and batch."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch_reference_helpers import RTOL, assert_losses_equal, numpy_state, ptx_step_losses  # noqa: E402

from benchmarks.torch_reference import scagan as ref  # noqa: E402
from ptx.convert import scagan as convert  # noqa: E402
from ptx.models import scagan as models  # noqa: E402
from ptx.tools import check_golden  # noqa: E402

INPUTS = {"pctnet": ("EP1", "BP2", "BEP2"), "isnet": ("P1", "EP1", "BP2", "BEP2", "EP2")}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _state_dict(arrays) -> dict[str, "torch.Tensor"]:
    """``param/*`` as torch tensors; the fixtures store num_batches_tracked as float32, torch keeps int64."""
    sd = {k[len("param/") :]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("param/")}
    return {k: v.long() if k.endswith("num_batches_tracked") else v for k, v in sd.items()}


@pytest.mark.parametrize("net", ["pctnet", "isnet"])
def test_generator_matches_golden(golden_dir, net):
    """Strict load of the recorded state dict (aliases included), eval mode, every named output < 1e-4 rel."""
    path = golden_dir / f"scagan_{net}_small.npz"
    arrays, meta = check_golden.load_fixture(path)
    sd = _state_dict(arrays)
    numpy_sd = {k: v.numpy() for k, v in sd.items()}
    if net == "pctnet":
        cfg = convert.infer_config({"pctnet": numpy_sd})
        model = ref.PCTNet(cfg)
    else:
        cfg = convert._fixture_config(numpy_sd, meta, arrays["input/input_P1"].shape[2])
        model = ref.ISNet(cfg)
    model.load_state_dict(sd, strict=True)
    model.eval()
    inputs = [torch.from_numpy(arrays[f"input/input_{n}"]) for n in INPUTS[net]]
    trace: dict = {}
    with torch.no_grad():
        if net == "pctnet":
            trace["fake_EP2"] = model(*inputs, trace=trace)
        else:
            model(*inputs, z=torch.from_numpy(arrays["input/z"]), trace=trace)
    names = meta["output_names"]
    report = check_golden.compare({n: (trace[n[len("output/") :]].numpy(), arrays[n]) for n in names})
    assert len(report) == len(names) >= 3
    for name, r in report.items():
        assert r["rel"] < RTOL, (name, r)
    if net == "isnet":  # the aliased encoder keys are one set of tensors, as in the original
        state = model.state_dict()
        assert state["enc_style.model.3.conv2.conv.weight"].data_ptr() == (
            state["enc_style.down_2.conv2.conv.weight"].data_ptr()
        )


def test_state_dict_names_equal_official(golden_dir):
    """Full-size PCT-Net, IS-Net and the four critics have exactly the official keys, shapes and counts."""
    official = json.loads((golden_dir / "scagan_official_keys.json").read_text())
    cfg = models.VARIANTS["fashion"]
    with torch.device("meta"):
        nets = {
            "pctnet_generator": (ref.PCTNet(cfg), "pctnet_generator"),
            "isnet_generator": (ref.ISNet(cfg), "isnet_generator_total"),
            "pct_netD_PB(in=1+18)": (ref.ResnetDiscriminator(cfg, 19), "D_PB_pct"),
            "pct_netD_PP(in=1+1)": (ref.ResnetDiscriminator(cfg, 2), "D_PP_pct"),
            "is_netD_PB(in=3+18)": (ref.ResnetDiscriminator(cfg, 21), "D_PB_is"),
            "is_netD_PP(in=3+3)": (ref.ResnetDiscriminator(cfg, 6), "D_PP_is"),
        }
    for name, (net, count) in nets.items():
        want = official["discriminators"][name] if name.endswith(")") else official[name]
        got = {k: list(v.shape) for k, v in net.state_dict().items()}
        assert list(got) == list(want), name  # names and their order
        assert got == want, name
        assert sum(p.numel() for p in net.parameters()) == official["param_counts"][count], name
    isnet = nets["isnet_generator"][0]
    trainable = sum(p.numel() for p in isnet.parameters() if p.requires_grad)
    assert trainable == official["param_counts"]["isnet_generator_trainable_excluding_frozen_pctnet"]


def _conv_params(convs) -> dict:
    """{name: torch Conv2d} -> ptx VGG params (HWIO kernels)."""
    return {
        name: {"kernel": c.weight.detach().numpy().transpose(2, 3, 1, 0), "bias": c.bias.detach().numpy()}
        for name, c in convs.items()
    }


@pytest.fixture(scope="module")
def tiny_config():
    from configs import scagan_fashion

    config = scagan_fashion.get_config("tiny")
    with config.unlocked():
        config.model.use_dropout_d = False  # the two frameworks draw different dropout masks
        for i, term in enumerate(("l1", "perceptual", "gan", "cx")):
            config.loss[term] = 1.0 + i  # distinct weights: a swapped weight changes the total
    return config


@pytest.mark.parametrize("stage", ["pctnet", "isnet"])
def test_losses_equal_ptx(tiny_config, stage):
    """Same weights, batch and z, train-mode batch norm, dropout off: every G term, the weighted G loss and
    both critics' losses of the torch step equal ptx's ``Method.forward`` + ``Method.loss``."""
    import jax

    from ptx.methods import scagan as method_lib

    config = tiny_config
    trainer, _ = ref.build_trainer(config, 2, stage, seed=1)
    batch = ref.pipeline_batch(2, tuple(config.data.image_size), seed=1)
    tb = ref.torch_batch(batch)
    method = method_lib.build(config)
    key = jax.random.key(5)
    z = torch.from_numpy(np.array(models.sample_z(method.cfg, key, 2))) if stage == "isnet" else None
    fake = trainer.generate(tb, z)
    want = {f"term/{k}": v.item() for k, v in trainer.generator_terms(fake, tb).items()}
    assert len(want) == (4 if stage == "isnet" else 3)
    want["gen"] = trainer.generator_loss(fake, tb).item()
    players = {"pp": ref.PLAYER[stage, "pp"], "pb": ref.PLAYER[stage, "pb"]}
    for k, player in players.items():
        want[player] = trainer.disc_loss(k, fake, tb).item()

    roles = {"gen": stage} | {
        p: {"edge_disc_image": "pctnet_disc_image", "edge_disc_pose": "pctnet_disc_pose"}.get(p, p)
        for p in players.values()
    }
    sds = {roles["gen"]: numpy_state(trainer.gen)}
    sds |= {roles[p]: numpy_state(trainer.disc[k]) for k, p in players.items()}
    _, variables = convert.convert(sds, method.cfg)
    frozen = {"vgg19": _conv_params({"conv1_1": trainer.vgg.features[0], "conv1_2": trainer.vgg.features[2]})}
    if stage == "isnet":
        frozen["vgg_conv"] = _conv_params(
            {f"conv{n}": getattr(trainer.vgg_cx, f"conv{n}") for n in trainer.vgg_cx.order}
        )

    got = ptx_step_losses(method, stage, ("gen", *players.values()), variables, frozen, batch, key)
    assert_losses_equal(got, want)


def test_isnet_step_trains_all_but_the_pctnet(tiny_config):
    """One ``torch_reference``-style IS-Net step moves G (not its frozen PCT-Net), D_PB and D_PP; the PCT-Net's
    batch statistics drift as in the original's training."""
    trainer, batch = ref.build_trainer(tiny_config, 2, "isnet")
    pct = trainer.gen.edge_generator
    nets = {"gen": [p for p in trainer.gen.parameters() if p.requires_grad]}
    nets |= {k: list(d.parameters()) for k, d in trainer.disc.items()}
    before = {k: [p.detach().clone() for p in ps] for k, ps in nets.items()}
    frozen_before = [t.detach().clone() for t in pct.state_dict().values()]
    trainer.step(batch)
    for name, params in nets.items():
        moved = [not torch.equal(a, b) for a, b in zip(before[name], params, strict=True)]
        assert all(moved), f"{name}: {moved.count(False)} parameter tensors did not change"
    after = dict(pct.state_dict())
    changed = {k for (k, v), w in zip(after.items(), frozen_before, strict=True) if not torch.equal(v, w)}
    assert changed and all(
        k.split(".")[-1] in ("running_mean", "running_var", "num_batches_tracked") for k in changed
    )
    with pytest.raises(ValueError, match="stages"):
        ref.Trainer(trainer.cfg, trainer.w, "full", {})
