"""The PyTorch PATN / pSSIM reference of the benchmarks against the goldens recorded from the original code."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks.torch_reference import patn as ref  # noqa: E402
from ptx.models import patn as models  # noqa: E402

RTOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _close(got, want, atol: float, rtol: float = RTOL, what: str = "") -> None:
    got = got.detach().numpy() if hasattr(got, "detach") else np.asarray(got)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


@pytest.fixture(scope="module")
def market_small(golden_dir):
    arrays = dict(np.load(golden_dir / "patn_market_small.npz"))
    meta = json.loads((golden_dir / "patn_market_small.json").read_text())
    return arrays, meta


@pytest.fixture(scope="module")
def pssim_golden(golden_dir):
    return dict(np.load(golden_dir / "pssim_loss.npz"))


def _state_shapes(module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("data", ["fashion", "market"])
def test_state_dict_names_equal_official(golden_dir, data):
    """Full-size G, D_PB and D_PP have exactly the official checkpoints' keys and shapes (built on meta)."""
    official = json.loads((golden_dir / "patn_official_keys.json").read_text())[data]
    cfg = models.VARIANTS[data]
    with torch.device("meta"):
        nets = {
            "generator": ref.PATNetwork(cfg),
            "netD_PB": ref.ResnetDiscriminator(cfg, 21, use_sigmoid=data == "market"),
            "netD_PP": ref.ResnetDiscriminator(cfg, 6, use_sigmoid=data == "market"),
        }
    for name, net in nets.items():
        want = {k: shape for k, shape, _ in official[name]["keys"]}
        assert _state_shapes(net) == want, name
        n = sum(p.numel() for p in net.parameters())
        assert n == official[name]["n_parameters"], name


def test_generator_matches_market_golden(market_small):
    """patn_market_small: params load strictly; eval-mode image and every intermediate, then train-mode BN."""
    arrays, meta = market_small
    cons = meta["constructor"]
    cfg = models.Config(ngf=cons["ngf"], n_blocks=cons["n_blocks"], norm=cons["norm"])
    net = ref.PATNetwork(cfg)
    sd = {k[len("param/") :]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("param/")}
    net.load_state_dict(sd, strict=True)
    image, pose = (torch.from_numpy(arrays[k]) for k in ("input/x1_P1", "input/x2_BP1_BP2"))
    net.eval()
    trace: dict = {}
    with torch.no_grad():
        trace["image"] = net(image, pose, trace)
    wanted = {k[len("output/") :]: v for k, v in arrays.items() if k.startswith("output/")}
    for name, want in wanted.items():
        if name == "image_bn_batchstats":
            continue
        _close(trace[name], want, atol=1e-4 * max(1.0, np.abs(want).max()), what=name)
    net.train()
    for m in net.modules():
        if isinstance(m, torch.nn.Dropout):
            m.eval()
    with torch.no_grad():
        out = net(image, pose)
    _close(out, wanted["image_bn_batchstats"], atol=1e-4, what="image_bn_batchstats")


@pytest.mark.parametrize("case", ["market", "fashion"])
def test_part_masks_match_golden(pssim_golden, case):
    kps = pssim_golden[f"input/{case}/keypoints_yx"]
    want = pssim_golden[f"input/{case}/part_mask"]
    _close(ref.part_masks(kps, want.shape[2:]), want, atol=1e-6, rtol=0, what="part_mask")


@pytest.mark.parametrize("case", ["market", "fashion"])
@pytest.mark.parametrize("window", [(7, 0.8), (11, 1.5)])
def test_pssim_and_ssim_match_golden(pssim_golden, case, window):
    """FPart_BSSIM value, its two terms and d value / d generated; the plain SSIM module and its gradient."""
    g = pssim_golden
    tag = f"win{window[0]}_sigma{window[1]}"
    fake = torch.from_numpy(g[f"input/{case}/generated"]).requires_grad_(True)
    target = torch.from_numpy(g[f"input/{case}/target"])
    mask = torch.from_numpy(g[f"input/{case}/part_mask"])
    out = f"output/{case}"

    fg = ref.foreground_ssim(fake, target, mask)
    bg = ref.background_ssim(fake, target, mask, *window)
    _close(fg, g[f"{out}/fg_part_ssim_per_image_{tag}"], atol=2e-5, what="fg")
    _close(bg, g[f"{out}/bg_ssim_per_image_{tag}"], atol=2e-5, what="bg")
    value = ref.part_ssim(fake, target, mask, *window)
    _close(value, g[f"{out}/pssim_{tag}"], atol=2e-5, what="pssim")
    (grad,) = torch.autograd.grad(value, fake)
    want = g[f"{out}/grad_pssim_wrt_generated_{tag}"]
    _close(grad, want, atol=1e-4 * np.abs(want).max(), rtol=1e-3, what="pssim grad")

    plain = ref.ssim_value(fake, target, *window)
    _close(plain, g[f"{out}/plain_ssim_loss_module_{tag}"], atol=2e-5, what="ssim")
    (grad,) = torch.autograd.grad(plain, fake)
    want = g[f"{out}/grad_plain_ssim_wrt_generated_{tag}"]
    _close(grad, want, atol=1e-4 * np.abs(want).max(), rtol=1e-3, what="ssim grad")


def test_missing_part_counts_as_one():
    """A part with a missing joint has an all-zero mask and contributes SSIM 1 to the foreground mean."""
    kps = np.full((1, 18, 2), -1.0, np.float32)
    mask = ref.part_masks(kps, (16, 12))
    assert torch.all(mask[:, 1:] == 0) and torch.all(mask[:, 0] == 1)
    x, y = torch.rand(1, 3, 16, 12) * 2 - 1, torch.rand(1, 3, 16, 12) * 2 - 1
    assert ref.foreground_ssim(x, y, mask).item() == pytest.approx(1.0, abs=1e-6)


def _vgg_variables(vgg) -> dict:
    """The torch VGG front's two convs as ptx ``VGG`` params (HWIO kernels)."""
    convs = {"conv1_1": vgg.features[0], "conv1_2": vgg.features[2]}
    return {
        name: {"kernel": c.weight.detach().numpy().transpose(2, 3, 1, 0), "bias": c.bias.detach().numpy()}
        for name, c in convs.items()
    }


def _numpy_state(net) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in net.state_dict().items()}


@pytest.mark.parametrize(
    "config_name",
    ["patn_market", pytest.param("pssim_fashion", marks=pytest.mark.slow)],
)
def test_losses_equal_ptx(config_name):
    """Same weights, same batch, dropout off: every G loss term of the torch step (all six switched on), the
    weighted G loss and both D losses equal ptx's ``Method.loss`` (market: batch norm, BCE on sigmoid outputs;
    fashion: instance norm, LSGAN)."""
    import importlib

    import jax

    from ptx.convert import patn as convert
    from ptx.methods import patn as method_lib

    config = importlib.import_module(f"configs.{config_name}").get_config("tiny")
    with config.unlocked():
        config.model.use_dropout = False
        config.model.use_dropout_d = False
        for i, term in enumerate(("l1", "perceptual", "ssim", "pssim", "style", "gan")):
            config.loss[term] = 1.0 + i  # distinct weights: a swapped weight changes the total
    trainer, _ = ref.build_trainer(config, 2)
    batch = ref.synthetic_batch(2, tuple(config.data.image_size), seed=1)
    tb = ref.torch_batch(batch)
    fake = trainer.gen(tb["source"], tb["pose"])
    want = {f"term/{k}": v.item() for k, v in trainer.generator_terms(fake, tb).items()}
    assert len(want) == 6
    want["gen"] = trainer.generator_loss(fake, tb).item()
    pairs = {"disc_image": (trainer.d_pp, tb["source"]), "disc_pose": (trainer.d_pb, tb["target_pose"])}
    for player, (net, cond) in pairs.items():
        real, fake_in = torch.cat([tb["target"], cond], 1), torch.cat([fake, cond], 1).detach()
        want[player] = trainer.disc_loss(net, real, fake_in).item()

    method = method_lib.build(config)
    state_dicts = {"generator": _numpy_state(trainer.gen)} | {
        p: _numpy_state(net) for p, (net, _) in pairs.items()
    }
    _, variables = convert.convert(state_dicts, method.cfg)  # the critics' roles are their player names
    frozen = {"vgg19": _vgg_variables(trainer.vgg)}

    @jax.jit  # one compile for the three losses (eager flax would compile every op on its own)
    def losses(variables, batch):
        outputs, _ = method.forward("train", variables, frozen, batch, jax.random.key(0))
        out = {
            p: method.loss("train", p, variables, frozen, batch, outputs, jax.random.key(0))
            for p in method.players
        }
        return {p: total for p, (total, _) in out.items()} | {
            f"term/{k}": v for k, v in out["gen"][1][0].items()
        }

    got = losses(variables, batch)
    for name, value in want.items():
        assert float(got[name]) == pytest.approx(value, rel=1e-4, abs=1e-6), name


def test_step_updates_every_player_and_fills_the_pool():
    """One ``torch_reference`` step (tiny market config with a 3-image pool) moves G, D_PB and D_PP."""
    from configs import patn_market

    config = patn_market.get_config("tiny")
    with config.unlocked():
        config.loss.pool_size = 3
    trainer, batch = ref.build_trainer(config, 2)
    nets = {"gen": trainer.gen, "pb": trainer.d_pb, "pp": trainer.d_pp}
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in nets.items()}
    trainer.step(batch)
    trainer.step(batch)
    for name, net in nets.items():
        moved = [not torch.equal(a, b) for a, b in zip(before[name], net.parameters(), strict=True)]
        assert all(moved), f"{name}: {moved.count(False)} parameter tensors did not change"
    assert [len(p.images) for p in trainer.pools.values()] == [3, 3]
    with pytest.raises(ValueError, match="one stage"):
        ref.torch_reference(config, 1, stage="flow")
