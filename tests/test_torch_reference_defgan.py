"""The PyTorch Def-GAN reference of the benchmarks against the golden recorded from the original semantics, and
its losses against ptx's ``Method.loss`` on the same weights and batch."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch_reference_helpers import RTOL, numpy_state  # noqa: E402

from benchmarks.torch_reference import defgan as ref  # noqa: E402
from ptx.models import defgan as models  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def market_small(golden_dir):
    arrays = dict(np.load(golden_dir / "defgan_market_small.npz"))
    meta = json.loads((golden_dir / "defgan_market_small.json").read_text())
    return arrays, meta


def _golden_net(arrays, meta, norm: str = "keras") -> "ref.Generator":
    ctor = meta["ctor"]
    cfg = models.Config(
        image_size=tuple(ctor["image_size"]),
        warp_skip=ctor["warp_skip"],
        encoder_filters=tuple(ctor["nfilters_enc"]),
        decoder_filters=tuple(ctor["nfilters_dec"]),
        norm=norm,
    )
    net = ref.Generator(cfg)
    sd = {k[len("param/") :]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("param/")}
    net.load_state_dict(sd, strict=True)
    return net.eval()


def _golden_inputs(arrays):
    x = torch.from_numpy(arrays["input/x"])
    source, source_pose, target_pose = x[:, :3], x[:, 3:21], x[:, 21:]
    return (
        source,
        source_pose,
        target_pose,
        torch.from_numpy(arrays["input/warps"]),
        torch.from_numpy(arrays["input/masks"]),
    )


def _max_rel(got: torch.Tensor, want: np.ndarray) -> float:
    return float(np.abs(got.detach().numpy() - want).max() / max(1.0, np.abs(want).max()))


def test_generator_matches_market_golden(market_small):
    """defgan_market_small: the port's keys load strictly; image (keras IN) and every decoder skip within 1e-4
    relative; torch's IN formula gives the port-native image instead (and differs from the keras one)."""
    arrays, meta = market_small
    net = _golden_net(arrays, meta)
    inputs = _golden_inputs(arrays)
    with torch.no_grad():
        skips = net.skips(*inputs)
        image = net.decoder(skips)
    errors = {"image": _max_rel(image, arrays["output/image"])}
    for i, skip in enumerate(skips):
        errors[f"skip_{i}"] = _max_rel(skip, arrays[f"output/skip_{i}"])
    print({k: f"{v:.2e}" for k, v in errors.items()})
    assert len(skips) == 6
    assert max(errors.values()) < RTOL, errors

    with torch.no_grad():
        native = _golden_net(arrays, meta, norm="torch")(*inputs)
    assert _max_rel(native, arrays["output/image_port_native_in"]) < RTOL
    assert _max_rel(native, arrays["output/image"]) > 1e-2  # the two formulas are distinguishable here


def test_state_dicts_have_the_official_keys(golden_dir):
    """Full-size market generator and the discriminator: the port's keys, shapes and parameter counts."""
    official = json.loads((golden_dir / "defgan_official_keys.json").read_text())
    cfg = models.VARIANTS["market"]
    with torch.device("meta"):
        nets = {"generator_market_128x64": ref.Generator(cfg), "discriminator": ref.Discriminator(cfg)}
    for name, net in nets.items():
        assert {k: list(v.shape) for k, v in net.state_dict().items()} == official[name], name
        assert sum(p.numel() for p in net.parameters()) == official[f"{name}_num_params"], name


def test_warp_rounds_half_away_and_zeroes_outside():
    """A pure translation by +0.5 px picks the next pixel (round half away from zero; torch.round would keep
    even ones), and samples beyond the border are 0; max over a masked-out part keeps the zeros."""
    feats = torch.arange(1.0, 9.0).view(1, 1, 1, 8)  # one row 1..8
    shift = torch.tensor([[[1.0, 0.0, 0.5, 0.0, 1.0, 0.0, 0.0, 0.0]]])
    out = ref.affine_warp(feats, shift, None, (1, 8))
    assert out.flatten().tolist() == [2, 3, 4, 5, 6, 7, 8, 0]
    neg = -feats
    masks = torch.tensor([[[[1.0] * 8], [[0.0] * 8]]])  # part 1 masked out everywhere
    two = shift.repeat(1, 2, 1)
    assert torch.all(ref.affine_warp(neg, two, masks, (1, 8)) == 0)


@pytest.fixture(scope="module")
def tiny_pair():
    """The tiny "full" config (nn loss, area 3, on random VGG relu1_2): a trainer, a host batch, its inputs."""
    from configs import defgan_market

    config = defgan_market.get_config("tiny")
    with config.unlocked():
        config.loss.gan = 1.5  # distinct weights: a swapped weight changes the total
        config.loss.l1 = 0.25
    trainer, _ = ref.build_trainer(config, 2)
    from benchmarks.common import method_batch
    from ptx.methods import defgan as method_lib

    method = method_lib.build(config)
    batch = method_batch(method, config.data, 2, seed=1)
    return config, method, trainer, batch, ref.torch_batch(batch, method.cfg)


def test_losses_equal_ptx(tiny_pair):
    """Same weights and batch: the eval-mode image equals ptx's predict; every G term, the weighted G loss and
    D's two terms equal ptx's ``Method.loss`` on that image."""
    import jax

    from ptx.convert import defgan as convert

    config, method, trainer, batch, x = tiny_pair
    trainer.gen.eval()
    with torch.no_grad():
        fake = trainer.generate(x)
        want = {f"gen/{k}": v.item() for k, v in trainer.generator_terms(x, fake).items()}
        want["gen"] = trainer.generator_loss(x, fake).item()
        want |= {f"disc/{k}": v.item() for k, v in trainer.disc_terms(x, fake).items()}
    trainer.gen.train()
    assert set(want) == {"gen/gan", "gen/l1", "gen", "disc/true", "disc/fake"}
    assert trainer.vgg is not None and method.options.nn_area == 3

    _, variables = convert.convert(
        {"generator": numpy_state(trainer.gen), "discriminator": numpy_state(trainer.disc)}, method.cfg
    )
    convs = trainer.vgg.features
    frozen = {
        "vgg19": {
            name: {"kernel": convs[i].weight.numpy().transpose(2, 3, 1, 0), "bias": convs[i].bias.numpy()}
            for name, i in (("conv1_1", 0), ("conv1_2", 2))
        }
    }

    @jax.jit  # one compile for predict and both players' losses
    def losses(variables, batch, image):
        outputs = {"image": image}
        out = {
            p: method.loss("train", p, variables, frozen, batch, outputs, jax.random.key(0))
            for p in method.players
        }
        got = {p: total for p, (total, _) in out.items()}
        got |= {f"{p}/{k}": v for p, (_, (terms, _)) in out.items() for k, v in terms.items()}
        return got, method.predict(variables, batch)["image"]

    image = np.ascontiguousarray(fake.numpy().transpose(0, 2, 3, 1))
    got, predicted = losses(variables, batch, image)
    np.testing.assert_allclose(np.asarray(predicted), image, rtol=RTOL, atol=1e-5)
    for name, value in want.items():
        assert float(got[name]) == pytest.approx(value, rel=RTOL, abs=1e-6), name
    assert float(got["disc"]) == pytest.approx(want["disc/true"] + want["disc/fake"], rel=RTOL)


def test_step_updates_both_players(tiny_pair):
    """Two ``Trainer.step``s move every parameter of G and D, and leave D trainable afterwards."""
    config, _, trainer, _, x = tiny_pair
    nets = {"gen": trainer.gen, "disc": trainer.disc}
    before = {k: [p.detach().clone() for p in n.parameters()] for k, n in nets.items()}
    trainer.step(x)
    trainer.step(x)
    for name, net in nets.items():
        moved = [not torch.equal(a, b) for a, b in zip(before[name], net.parameters(), strict=True)]
        assert all(moved), f"{name}: {moved.count(False)} parameter tensors did not change"
    assert all(p.requires_grad for p in trainer.disc.parameters())
    with pytest.raises(ValueError, match="one stage"):
        ref.torch_reference(config, 1, stage="warp")


def test_bce_epsilon_bounds_a_saturated_discriminator():
    """The original's 1e-7 inside the log, as ptx's ``sigmoid_bce``: D = 0 or 1 gives -log(1e-7), not inf."""
    import jax.numpy as jnp

    from ptx.losses import sigmoid_bce

    zeros, ones = torch.zeros(2, 3), torch.ones(2, 3)
    assert ref.generator_gan(zeros).item() == pytest.approx(-np.log(1e-7), rel=1e-5)
    assert ref.generator_gan(zeros).item() == pytest.approx(
        float(sigmoid_bce.generator_loss(jnp.zeros((2, 3))))
    )
    real, fake = ref.discriminator_terms(zeros, ones)
    want = sigmoid_bce.discriminator_terms(jnp.zeros((2, 3)), jnp.ones((2, 3)))
    assert (real.item(), fake.item()) == pytest.approx((float(want[0]), float(want[1])), rel=1e-5)
