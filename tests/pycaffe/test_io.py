"""pycaffe's caffe.io surface: proto conversions, image loading, resizing, oversampling and the Transformer."""

import numpy as np
import pytest
from PIL import Image

import caffelite as caffe
import caffelite.io
from caffelite.errors import CaffeliteError
from caffelite.proto import caffe_pb2


# -- BlobProto <-> array -------------------------------------------------------------------------
def test_blobproto_with_legacy_dims_comes_back_four_dimensional():
    blob = caffe_pb2.BlobProto()
    blob.data.extend(np.arange(12, dtype=float))
    blob.num, blob.channels, blob.height, blob.width = 1, 1, 3, 4
    arr = caffe.io.blobproto_to_array(blob)
    assert arr.shape == (1, 1, 3, 4)
    np.testing.assert_array_equal(arr.ravel(), np.arange(12))


def test_blobproto_with_shape_comes_back_in_that_shape():
    blob = caffe_pb2.BlobProto()
    blob.data.extend(np.arange(6, dtype=float))
    blob.shape.dim.extend([2, 3])
    assert caffe.io.blobproto_to_array(blob).shape == (2, 3)


def test_blobproto_without_shape_holding_many_values_is_a_value_error():
    blob = caffe_pb2.BlobProto()
    blob.data.extend(np.zeros(100))
    with pytest.raises(ValueError):
        caffe.io.blobproto_to_array(blob)
    with pytest.raises(CaffeliteError):
        caffe.io.blobproto_to_array(blob)


def test_blobproto_without_shape_holding_one_value_is_a_scalar():
    blob = caffe_pb2.BlobProto()
    blob.data.append(123.0)
    arr = caffe.io.blobproto_to_array(blob)
    assert arr.shape == ()
    assert arr == 123


def test_blobproto_diff_is_returned_on_request():
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    blob = caffe.io.array_to_blobproto(data, diff=-data)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob), data)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(blob, return_diff=True), -data)


def test_blobprotovector_string_round_trip():
    arrays = [np.arange(6, dtype=np.float32).reshape(1, 2, 3), np.full((4,), 2.5, dtype=np.float32)]
    serialized = caffe.io.arraylist_to_blobprotovector_str(arrays)
    assert isinstance(serialized, bytes)
    vector = caffe_pb2.BlobProtoVector.FromString(serialized)
    assert len(vector.blobs) == 2
    back = caffe.io.blobprotovector_str_to_arraylist(serialized)
    assert [a.shape for a in back] == [(1, 2, 3), (4,)]
    for original, restored in zip(arrays, back):
        np.testing.assert_array_equal(original, restored)


# -- Datum ---------------------------------------------------------------------------------------
def test_datum_label_is_stored_only_when_given():
    with_label = caffe.io.array_to_datum(np.ones((10, 10, 3)), label=1)
    without_label = caffe.io.array_to_datum(np.ones((10, 10, 3)))
    assert with_label.HasField("label") and with_label.label == 1
    assert not without_label.HasField("label")
    assert len(with_label.SerializeToString()) > len(without_label.SerializeToString())


def test_uint8_datum_uses_bytes_and_float_datum_uses_float_data():
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    datum = caffe.io.array_to_datum(pixels, label=7)
    assert (datum.channels, datum.height, datum.width) == (2, 3, 4)
    assert datum.data == pixels.tobytes() and len(datum.float_data) == 0
    np.testing.assert_array_equal(caffe.io.datum_to_array(datum), pixels)
    floats = pixels.astype(np.float64) / 7
    datum = caffe.io.array_to_datum(floats)
    assert len(datum.data) == 0 and len(datum.float_data) == 24
    np.testing.assert_allclose(caffe.io.datum_to_array(datum), floats, rtol=1e-6)


def test_datum_needs_a_three_dimensional_array():
    with pytest.raises(ValueError):
        caffe.io.array_to_datum(np.zeros((4, 4)))


# -- load_image ----------------------------------------------------------------------------------
@pytest.fixture
def rgb_pixels():
    rng = np.random.default_rng(3)
    return rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def test_colour_image_loads_as_float_rgb_in_unit_range(tmp_path, rgb_pixels):
    path = tmp_path / "colour.png"
    Image.fromarray(rgb_pixels).save(path)
    image = caffe.io.load_image(str(path))
    assert image.dtype == np.float32 and image.shape == (5, 7, 3)
    np.testing.assert_allclose(image, rgb_pixels / 255.0, atol=1e-7)


def test_colour_image_loaded_as_grey_uses_luminance_weights(tmp_path, rgb_pixels):
    path = tmp_path / "colour.png"
    Image.fromarray(rgb_pixels).save(path)
    image = caffe.io.load_image(str(path), color=False)
    assert image.shape == (5, 7, 1)
    rgb = rgb_pixels / 255.0
    expected = 0.2125 * rgb[..., 0] + 0.7154 * rgb[..., 1] + 0.0721 * rgb[..., 2]
    np.testing.assert_allclose(image[..., 0], expected, atol=1e-6)


def test_grey_image_is_tiled_for_colour_and_kept_single_channel_otherwise(tmp_path, rgb_pixels):
    grey = rgb_pixels[..., 0]
    path = tmp_path / "grey.png"
    Image.fromarray(grey).save(path)
    colour = caffe.io.load_image(str(path))
    single = caffe.io.load_image(str(path), color=False)
    assert colour.shape == (5, 7, 3) and single.shape == (5, 7, 1)
    for channel in range(3):
        np.testing.assert_allclose(colour[..., channel], grey / 255.0, atol=1e-7)
    np.testing.assert_allclose(single[..., 0], grey / 255.0, atol=1e-7)


def test_alpha_channel_is_dropped(tmp_path, rgb_pixels):
    rgba = np.concatenate([rgb_pixels, np.full((5, 7, 1), 9, np.uint8)], axis=2)
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    image = caffe.io.load_image(str(path))
    assert image.shape == (5, 7, 3)
    np.testing.assert_allclose(image, rgb_pixels / 255.0, atol=1e-7)


# -- resize_image --------------------------------------------------------------------------------
def skimage_style_resize(image, height, width, order):
    """Reference: skimage.transform.resize(image in [0, 1], mode='constant', anti_aliasing=False), pixel by pixel.

    Output pixel (i, j) samples the input at ((i + .5) * H / h - .5, (j + .5) * W / w - .5); neighbours outside
    the image read 0.
    """
    in_h, in_w, channels = image.shape

    def read(r, c):
        if 0 <= r < in_h and 0 <= c < in_w:
            return image[r, c]
        return np.zeros(channels)

    out = np.zeros((height, width, channels))
    for i in range(height):
        for j in range(width):
            y = (i + 0.5) * in_h / height - 0.5
            x = (j + 0.5) * in_w / width - 0.5
            if order == 0:
                out[i, j] = read(int(np.floor(y + 0.5)), int(np.floor(x + 0.5)))
                continue
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            dy, dx = y - y0, x - x0
            out[i, j] = (
                (1 - dy) * (1 - dx) * read(y0, x0)
                + (1 - dy) * dx * read(y0, x0 + 1)
                + dy * (1 - dx) * read(y0 + 1, x0)
                + dy * dx * read(y0 + 1, x0 + 1)
            )
    return out


def pycaffe_resize_reference(image, height, width, order):
    """pycaffe normalizes to [0, 1] around skimage's resize and maps back."""
    low, high = image.min(), image.max()
    return skimage_style_resize((image - low) / (high - low), height, width, order) * (high - low) + low


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("new_dims", [(9, 11), (3, 2), (4, 10)])
def test_resize_matches_skimage_resampling(order, channels, new_dims):
    rng = np.random.default_rng(order * 10 + channels)
    image = rng.uniform(-3, 40, size=(6, 5, channels)).astype(np.float32)
    resized = caffe.io.resize_image(image, new_dims, interp_order=order)
    assert resized.dtype == np.float32 and resized.shape == new_dims + (channels,)
    expected = pycaffe_resize_reference(image.astype(np.float64), *new_dims, order)
    np.testing.assert_allclose(resized, expected, rtol=1e-5, atol=1e-4)


def test_upsampled_border_leans_towards_the_minimum():
    # The zero border of skimage's constant mode is the minimum once pycaffe maps [0, 1] back.
    image = np.array([[1.0, 1.0], [1.0, 3.0]], dtype=np.float32)[:, :, None]
    resized = caffe.io.resize_image(image, (4, 4))
    # top-left corner samples (-0.25, -0.25): 9/16 of pixel (0, 0) (= 0 after normalizing), the rest border.
    assert resized[0, 0, 0] == pytest.approx(1.0)
    # bottom-right corner: 9/16 of the value 3 (normalized 1), 7/16 of the border (normalized 0).
    assert resized[3, 3, 0] == pytest.approx(1.0 + 2.0 * 9 / 16)


def test_resizing_a_constant_image_keeps_its_value():
    image = np.full((3, 3, 3), 0.25, dtype=np.float32)
    resized = caffe.io.resize_image(image, (5, 2))
    assert resized.shape == (5, 2, 3)
    np.testing.assert_array_equal(resized, 0.25)


def test_other_channel_counts_align_corners_like_ndimage_zoom():
    image = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    resized = caffe.io.resize_image(image, (3, 5))
    assert resized.shape == (3, 5, 2)
    # corners are kept exactly; the middle row is the mean of the two input rows
    np.testing.assert_allclose(resized[[0, 0, -1, -1], [0, -1, 0, -1]], image[[0, 0, -1, -1], [0, -1, 0, -1]])
    np.testing.assert_allclose(resized[1, ::2], (image[0] + image[1]) / 2)
    np.testing.assert_allclose(resized[0, 1], (image[0, 0] + image[0, 1]) / 2)


# -- oversample ----------------------------------------------------------------------------------
def test_oversample_gives_corners_centre_then_their_mirrors():
    first = np.arange(6 * 8 * 2, dtype=np.float32).reshape(6, 8, 2)
    second = -first
    crops = caffe.io.oversample([first, second], (4, 4))
    assert crops.shape == (20, 4, 4, 2)
    for index, image in enumerate([first, second]):
        windows = [image[:4, :4], image[:4, 4:], image[2:, :4], image[2:, 4:], image[1:5, 2:6]]
        expected = windows + [window[:, ::-1] for window in windows]
        for k, window in enumerate(expected):
            np.testing.assert_array_equal(crops[10 * index + k], window)


def test_oversample_centre_of_odd_margin_rounds_down():
    image = np.arange(7 * 7, dtype=np.float32).reshape(7, 7, 1)
    crops = caffe.io.oversample([image], (4, 4))
    np.testing.assert_array_equal(crops[4], image[1:5, 1:5])


# -- Transformer ---------------------------------------------------------------------------------
def make_transformer():
    return caffe.io.Transformer({"data": (2, 3, 4, 5)})


def test_preprocess_applies_every_step_in_pycaffe_order():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, size=(4, 5, 3)).astype(np.float32)
    mean = np.array([10.0, 20.0, 30.0])
    transformer = make_transformer()
    transformer.set_transpose("data", (2, 0, 1))
    transformer.set_channel_swap("data", (2, 1, 0))
    transformer.set_raw_scale("data", 255.0)
    transformer.set_mean("data", mean)
    transformer.set_input_scale("data", 0.5)
    out = transformer.preprocess("data", image)
    assert out.dtype == np.float32 and out.shape == (3, 4, 5)
    chw = image.transpose(2, 0, 1)[::-1]
    expected = (chw * 255.0 - mean[:, None, None]) * 0.5
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    np.testing.assert_allclose(transformer.deprocess("data", out[None]), image, atol=1e-5)


def test_preprocess_resizes_to_the_input_size_first():
    image = np.random.default_rng(1).uniform(0, 1, size=(8, 10, 3)).astype(np.float32)
    transformer = make_transformer()
    transformer.set_transpose("data", (2, 0, 1))
    out = transformer.preprocess("data", image)
    np.testing.assert_allclose(out, caffe.io.resize_image(image, (4, 5)).transpose(2, 0, 1))


def test_preprocess_leaves_the_callers_array_alone():
    image = np.ones((4, 5, 3), dtype=np.float32)
    transformer = make_transformer()
    transformer.set_transpose("data", (2, 0, 1))
    transformer.set_raw_scale("data", 255.0)
    transformer.preprocess("data", image)
    np.testing.assert_array_equal(image, 1.0)


def test_full_mean_image_is_subtracted_elementwise_and_resized_when_needed():
    transformer = make_transformer()
    transformer.set_transpose("data", (2, 0, 1))
    mean = np.random.default_rng(2).uniform(0, 1, size=(3, 4, 5))
    transformer.set_mean("data", mean)
    image = np.ones((4, 5, 3), dtype=np.float32)
    np.testing.assert_allclose(transformer.preprocess("data", image), 1.0 - mean, rtol=1e-6)
    big_mean = np.random.default_rng(3).uniform(0, 1, size=(3, 8, 10))
    transformer.set_mean("data", big_mean)
    resized = caffe.io.resize_image(big_mean.transpose(1, 2, 0), (4, 5)).transpose(2, 0, 1)
    np.testing.assert_allclose(transformer.mean["data"], resized, rtol=1e-6)


def test_mean_and_order_shape_checks():
    transformer = make_transformer()
    with pytest.raises(ValueError):
        transformer.set_mean("data", np.zeros(4))
    with pytest.raises(ValueError):
        transformer.set_mean("data", np.zeros((1, 2, 3, 4)))
    with pytest.raises(CaffeliteError):
        transformer.set_transpose("data", (1, 0))
    with pytest.raises(CaffeliteError):
        transformer.set_channel_swap("data", (1, 0))
    with pytest.raises(CaffeliteError, match="'label' is not one of"):
        transformer.set_raw_scale("label", 2.0)
