"""The PyTorch CASD reference of the benchmarks against the golden recorded from the original code, the official
key list, and ptx's losses on the same weights and batch."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch_reference_helpers import FAST, RTOL, assert_losses_equal, numpy_state, ptx_step_losses  # noqa: E402

from benchmarks.torch_reference import casd as ref  # noqa: E402
from ptx.convert import casd as convert  # noqa: E402
from ptx.models import casd as models  # noqa: E402
from ptx.nn import vgg as vgg_lib  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_generator_matches_golden(golden_dir):
    """Strict load of the recorded state dict; image, both energy maps and the style codes < 1e-4 relative."""
    z = np.load(golden_dir / "casd_fashion_small.npz")
    sd = {k[len("param/") :]: torch.from_numpy(z[k]) for k in z.files if k.startswith("param/")}
    net = ref.ADGen(models.VARIANTS["fashion_small"])
    net.load_state_dict(sd, strict=True)
    trace: dict = {}
    with torch.no_grad():
        image, (e3, e4) = net(
            *(torch.from_numpy(z[f"input/{n}"]) for n in ("img_A", "img_B", "sem_B")), trace=trace
        )
    got = {"image": image, "energy3": e3, "energy4": e4, "style_codes": trace["style_codes"]}
    for name, value in got.items():
        want = z[f"output/{name}"]
        assert value.shape == want.shape, name
        err = float(np.abs(value.numpy() - want).max())
        assert err / float(np.abs(want).max()) < RTOL, (name, err)
        assert err < 1e-4, (name, err)


def test_official_keys_load_exactly(golden_dir):
    """The full-size generator has exactly the official 214 entries (names and shapes) and parameter counts; a
    state dict of those keys loads with ``strict=True``."""
    official = json.loads((golden_dir / "casd_official_keys.json").read_text())
    want = {e["key"]: e["shape"] for e in official["keys"]}
    with torch.device("meta"):
        net = ref.ADGen(models.VARIANTS["fashion"])
    got = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert len(got) == official["num_state_dict_entries"] == 214
    assert got == want
    assert sum(p.numel() for p in net.parameters()) == official["num_parameters_total"]
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    assert trainable == official["num_parameters_trainable"]
    sd = {k: torch.empty(shape, device="meta") for k, shape in want.items()}
    net.load_state_dict(sd, strict=True, assign=True)
    with pytest.raises(RuntimeError, match="Missing key"):
        net.load_state_dict({k: v for k, v in sd.items() if k != "dec.gamma3_2"}, strict=True, assign=True)


def _vgg_params(features, arch: str = "vgg19") -> dict:
    """A torchvision-layout torch VGG (``features[N]``) -> ptx VGG params (HWIO kernels)."""
    out = {}
    for name, idx in vgg_lib.torchvision_indices(arch).items():
        if idx < len(features) and isinstance(features[idx], torch.nn.Conv2d):
            c = features[idx]
            out[name] = {
                "kernel": c.weight.detach().numpy().transpose(2, 3, 1, 0),
                "bias": c.bias.detach().numpy(),
            }
    return out


@pytest.fixture(scope="module")
def tiny():
    from configs import casd_fashion

    config = casd_fashion.get_config("tiny")
    with config.unlocked():
        for i, term in enumerate(("l1", "perceptual", "gan", "amce", "content", "style", "contextual")):
            config.loss[term] = 1.0 + i  # distinct weights: a swapped weight changes the total
    trainer, batch = ref.build_trainer(config, 2, seed=1)
    return config, trainer, batch


def test_losses_equal_ptx(tiny):
    """Same weights and batch: every G term, the weighted G loss and both critics' losses of the torch step
    equal ptx's ``Method.forward`` + ``Method.loss`` (LPIPS: see test_lpips_equals_ptx)."""
    import jax

    from benchmarks.common import method_batch
    from ptx.methods import casd as method_lib

    config, trainer, tb = tiny
    method = method_lib.build(config)
    batch = method_batch(method, config.data, 2, 1)
    fake, energies = trainer.generate(tb)
    want = {f"term/{k}": v.item() for k, v in trainer.generator_terms(tb, fake, energies).items()}
    assert set(want) == {
        f"term/{t}" for t in ("l1", "perceptual", "gan", "amce", "content", "style", "contextual")
    }
    want["gen"] = trainer.generator_loss(tb, fake, energies).item()
    for player in ("disc_image", "disc_pose"):
        want[player] = trainer.disc_loss(player, tb, fake).item()

    sds = {"generator": numpy_state(trainer.gen)}
    sds |= {p: numpy_state(d) for p, d in trainer.disc.items()}
    _, variables = convert.convert(sds, method.cfg)
    frozen = {
        "vgg19": _vgg_params(trainer.vgg),
        "vgg_conv": ref_vgg_conv(trainer.vgg_cx),
    }

    got = ptx_step_losses(method, "train", method_lib.PLAYERS, variables, frozen, batch, jax.random.key(0))
    assert_losses_equal(got, want)


def ref_vgg_conv(vgg_cx) -> dict:
    """The torch reference's vgg_conv (``conv<b>_<i>`` attributes) -> ptx params."""
    return {
        f"conv{n}": {
            "kernel": getattr(vgg_cx, f"conv{n}").weight.detach().numpy().transpose(2, 3, 1, 0),
            "bias": getattr(vgg_cx, f"conv{n}").bias.detach().numpy(),
        }
        for n in vgg_cx.order
    }


def test_lpips_equals_ptx():
    """The reference's LPIPS-vgg equals ``ptx.evaluate.lpips.LPIPS("vgg")`` on the same (random) weights."""
    import jax
    import jax.numpy as jnp

    from ptx.evaluate import lpips

    torch.manual_seed(0)
    net = ref.LPIPSVgg()
    with torch.no_grad():
        for lin in net.lins:
            lin.uniform_(0, 1)
    params = {"net": _vgg_params(net.net, "vgg16")} | {
        f"lin{i}": lin.detach().numpy() for i, lin in enumerate(net.lins)
    }
    rng = np.random.default_rng(0)
    x0, x1 = (rng.uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32) for _ in range(2))
    apply = jax.jit(lambda p, a, b: lpips.LPIPS("vgg").apply({"params": p}, a, b))
    x0, x1 = jnp.asarray(x0), jnp.asarray(x1)
    got = np.asarray(apply.lower(params, x0, x1).compile(FAST)(params, x0, x1))
    x0, x1 = np.asarray(x0), np.asarray(x1)
    nchw = lambda a: torch.from_numpy(a.transpose(0, 3, 1, 2).copy())  # noqa: E731
    with torch.no_grad():
        want = net(nchw(x0), nchw(x1)).numpy()
    np.testing.assert_allclose(got, want, rtol=RTOL)
    assert (want > 0).all()


# With the reference init every gamma is 0, so these get exactly zero gradient (value, FFN and the style ILN
# only reach the loss through a gamma; the key is detached; gamma*_2 is never used) and Adam leaves them.
STILL_AT_INIT = {
    f"dec.{name}"
    for n in (3, 4)
    for name in (
        f"gamma{n}_2",
        f"gamma{n}_style_sa",
        *(
            f"{conv}.{leaf}"
            for conv in (f"key{n}_conv", f"value{n}_conv", f"value{n}_conv_sa")
            for leaf in ("weight", "bias")
        ),
        *(f"FFN{n}_1.fc{i}.{leaf}" for i in (1, 2) for leaf in ("weight", "bias")),
        *(f"LN_{n}_style.{leaf}" for leaf in ("rho", "gamma", "beta")),
    )
}


def test_step_trains_generator_and_critics_not_the_vggs(tiny):
    config, trainer, batch = tiny
    nets = {"gen": dict(trainer.gen.named_parameters())} | {
        k: dict(d.named_parameters()) for k, d in trainer.disc.items()
    }
    before = {k: {n: p.detach().clone() for n, p in ps.items()} for k, ps in nets.items()}
    trainer.step(batch)
    for name, params in nets.items():
        still = {n for n, p in params.items() if torch.equal(before[name][n], p)}
        frozen = {n for n, p in params.items() if not p.requires_grad}
        if name == "gen":
            assert frozen == {n for n in params if n.startswith("enc_style.vgg.")} and len(frozen) == 32
            assert still == STILL_AT_INIT | frozen
        else:
            assert not still and not frozen, name
    with pytest.raises(ValueError, match="one stage"):
        ref.torch_reference(config, 1, stage="pretrain")
