"""ptx.data.edges: the XDoG recipe of SCA-GAN's card on synthetic images."""

import numpy as np
import pytest

from ptx.data import edges


def _square_image():
    img = np.full((64, 48, 3), 250, np.uint8)
    img[16:48, 12:36] = (120, 170, 190)  # a mid-grey-ish rectangle on white
    return img


def test_edges_on_boundaries_not_in_flat_regions():
    e = edges.xdog(_square_image())
    assert e.shape == (64, 48) and e.dtype == np.uint8
    assert set(np.unique(e).tolist()) <= {0, 255}
    lines = e == 0
    boundary = np.zeros_like(lines)
    boundary[14:50, 10:38] = True
    boundary[19:45, 15:33] = False  # a band of +-3 px around the rectangle's outline
    assert lines.any()
    assert lines[boundary].mean() > 0.2
    assert not lines[~boundary].any()  # flat areas (inside and outside) stay background
    # every side of the rectangle has line pixels near it
    assert lines[14:19, 12:36].any() and lines[45:50, 12:36].any()
    assert lines[16:48, 10:15].any() and lines[16:48, 33:38].any()


def test_deterministic_flat_and_soft():
    img = _square_image()
    np.testing.assert_array_equal(edges.xdog(img), edges.xdog(img))
    assert np.all(edges.xdog(np.full((8, 8, 3), 77, np.uint8)) == 255)
    soft = edges.xdog(img, soft=True)
    assert soft.dtype == np.uint8 and soft.min() == 0 and soft.max() == 255


def test_matlab_rgb2gray_and_kernel():
    px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    np.testing.assert_array_equal(edges.rgb2gray(px)[0], [76, 150, 29, 18])
    assert len(edges._gaussian_kernel(0.8)) == 5 and len(edges._gaussian_kernel(0.8 * 1.6)) == 7
    assert edges._gaussian_kernel(0.8).sum() == pytest.approx(1.0)


def test_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        edges.xdog(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        edges.xdog(np.zeros((4, 4, 4), np.uint8))


def test_xdog_edges_is_xdog_at_the_stored_parameters():
    img = _square_image()
    np.testing.assert_array_equal(edges.xdog_edges(img), edges.xdog(img))
    with pytest.raises(ValueError, match="HxWx3 RGB photo"):
        edges.xdog_edges(img[..., 0])


def test_stored_puppet_edges_are_xdog_edges_of_the_stored_photo(tmp_path):
    """What the sampler computes from a photo equals what the builder stored for it, bit for bit."""
    import io

    import tensorflow_datasets as tfds
    from PIL import Image

    import data_builders

    builder = data_builders.build("puppets", data_dir=tmp_path, config="market_tiny")
    skip = tfds.decode.SkipDecoding()
    records = builder.as_data_source(split="test", decoders={"image": skip, "edge": skip})
    for i in (0, len(records) - 1):
        photo = np.asarray(Image.open(io.BytesIO(records[i]["image"])).convert("RGB"))
        stored = np.asarray(Image.open(io.BytesIO(records[i]["edge"])))
        assert stored.shape == photo.shape[:2] and (stored == 0).any()
        np.testing.assert_array_equal(stored, edges.xdog_edges(photo))
