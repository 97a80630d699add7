"""SCA-GAN model pieces that the goldens do not isolate: decoder sizes, torch's nearest resize, configs."""

import numpy as np
import pytest

from ptx.models import scagan
from ptx.nn import spade


def test_decoder_sizes_are_the_originals():
    cfg = scagan.Config()
    assert cfg.latent_size == (8, 6)  # 256 // 32, round(5.5) = 6 (banker's rounding)
    assert cfg.up_sizes == ((16, 11), (32, 22), (64, 44), (128, 88), (256, 176))
    tiny = scagan.VARIANTS["tiny"]
    assert tiny.latent_size == (2, 1) and tiny.image_size == (64, 44)
    assert scagan.for_image_size(cfg, 64, 64).up_sizes[-1] == (64, 64)
    with pytest.raises(ValueError, match="multiple of 2\\*\\*5"):
        scagan.for_image_size(cfg, 48, 32)
    with pytest.raises(ValueError, match="up_sizes has 2"):
        scagan.Config(up_sizes=((16, 11), (32, 22)))


def test_style_widths_cap_at_eight_times_ngf():
    assert scagan.Config().style_widths == (64, 128, 256, 512, 512, 512)
    assert scagan.Config().pct_input_nc == 37


@pytest.mark.parametrize(
    "size_in,size_out",
    [
        ((256, 176), (8, 6)),
        ((256, 176), (128, 88)),
        ((8, 6), (16, 11)),
        ((8, 6), (256, 176)),
        ((7, 5), (3, 13)),
    ],
)
def test_nearest_resize_matches_torch(size_in, size_out):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((1, *size_in, 2)).astype(np.float32)
    want = torch.nn.functional.interpolate(
        torch.from_numpy(x.transpose(0, 3, 1, 2)), size=size_out, mode="nearest"
    )
    got = np.asarray(spade.nearest_resize(x, size_out))
    np.testing.assert_array_equal(got, want.numpy().transpose(0, 2, 3, 1))


def test_nearest_indices_of_the_card():
    assert list(spade.torch_nearest_indices(256, 8)) == list(range(0, 256, 32))
    assert list(spade.torch_nearest_indices(176, 6)) == [0, 29, 58, 88, 117, 146]
    assert list(spade.torch_nearest_indices(6, 11)) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]


def test_spade_on_a_small_condition_equals_the_upsampled_convs(monkeypatch):
    """The window-table SPADE (condition never upsampled) against the plain one: output and every gradient."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 64, 44, 6), np.float32))
    c = jnp.asarray(rng.standard_normal((2, 2, 3, 5), np.float32))
    assert spade._compress((2, 3), (64, 44)) is not None
    m = spade.SPADE(hidden=4)
    params = m.init(jax.random.key(0), x, c)

    def run(p, x, c):
        return jax.value_and_grad(lambda p, x, c: jnp.sum(jnp.sin(m.apply(p, x, c))), (0, 1, 2))(p, x, c)

    got = jax.jit(run)(params, x, c)
    monkeypatch.setattr(spade, "_compress", lambda *a: None)
    want = jax.jit(run)(params, x, c)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(np.max(np.abs(b))))
