"""Upsample: nearest, bilinear (pixel centres aligned) and SegNet unpooling against per-cell loops; gradients."""

import itertools

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward


def up_text(options, bottoms=('x',)):
    names = "".join(f'bottom: "{b}" ' for b in bottoms)
    return f'name: "up" type: "Upsample" {names}top: "y" upsample_param {{ {options} }}'


def nearest_reference(x, out_size, scale=None):
    height, width = x.shape[2:]
    y = np.empty(x.shape[:2] + tuple(out_size))
    for i, j in itertools.product(range(out_size[0]), range(out_size[1])):
        if scale:
            source = (i // scale[0], j // scale[1])
        else:
            source = (i * height // out_size[0], j * width // out_size[1])
        y[:, :, i, j] = x[:, :, source[0], source[1]]
    return y


def bilinear_reference(x, out_size, ratio):
    """Each output cell reads the input at ((i + 1/2) r - 1/2, (j + 1/2) r - 1/2), clamped, bilinearly."""
    height, width = x.shape[2:]
    y = np.zeros(x.shape[:2] + tuple(out_size))

    def taps(i, r, n):
        u = max((i + 0.5) * r - 0.5, 0.0)
        lo = min(int(np.floor(u)), n - 1)
        hi = min(lo + 1, n - 1)
        return [(lo, 1 - (u - lo)), (hi, u - lo)] if hi > lo else [(lo, 1.0)]

    for i, j in itertools.product(range(out_size[0]), range(out_size[1])):
        for (a, wa), (b, wb) in itertools.product(taps(i, ratio[0], height), taps(j, ratio[1], width)):
            y[:, :, i, j] += wa * wb * x[:, :, a, b]
    return y


@pytest.mark.parametrize("options, in_size, out_size, scale", [
    ("", (3, 4), (6, 8), (2, 2)),
    ("scale: 3", (2, 3), (6, 9), (3, 3)),
    ("scale_h: 2 scale_w: 3", (3, 2), (6, 6), (2, 3)),
    ("scale: 2 pad_out_h: true", (3, 4), (5, 8), (2, 2)),
    ("scale: 1", (3, 4), (3, 4), (1, 1)),
    ("upsample_h: 7 upsample_w: 5", (3, 2), (7, 5), None),
    ("upsample_h: 8 upsample_w: 6 scale: 5", (4, 3), (8, 6), None),  # explicit sizes win, as in SegNet
])
def test_nearest(options, in_size, out_size, scale):
    x = np.random.default_rng(0).normal(size=(2, 3) + in_size)
    layer, bottom, top = make_layer(up_text(options), [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == (2, 3) + out_size
    np.testing.assert_array_equal(y, nearest_reference(x, out_size, scale))
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("options, in_size, out_size, ratio", [
    ("mode: BILINEAR", (3, 4), (6, 8), (0.5, 0.5)),
    ("mode: BILINEAR scale: 3", (2, 3), (6, 9), (1 / 3, 1 / 3)),
    ("mode: BILINEAR scale_h: 4 scale_w: 2", (2, 3), (8, 6), (0.25, 0.5)),
    ("mode: BILINEAR scale: 2 pad_out_w: true", (3, 3), (6, 5), (0.5, 0.5)),
    ("mode: BILINEAR upsample_h: 7 upsample_w: 5", (3, 2), (7, 5), (3 / 7, 2 / 5)),
    ("mode: BILINEAR upsample_h: 2 upsample_w: 3", (5, 6), (2, 3), (5 / 2, 2)),  # shrinking works too
])
def test_bilinear(options, in_size, out_size, ratio):
    x = np.random.default_rng(1).normal(size=(2, 2) + in_size)
    layer, bottom, top = make_layer(up_text(options), [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == (2, 2) + out_size
    np.testing.assert_allclose(y, bilinear_reference(x, out_size, ratio), rtol=1e-12, atol=1e-12)
    check_gradients(layer, bottom, top)


def test_bilinear_by_two_in_numbers():
    x = np.array([[[[0.0, 1.0, 3.0]]]])
    layer, bottom, top = make_layer(up_text("mode: BILINEAR scale_h: 1 scale_w: 2"), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y.ravel(), [0.0, 0.25, 0.75, 1.5, 2.5, 3.0])


def max_pool(x, options):
    layer, bottom, top = make_layer(f'name: "pool" type: "Pooling" top: "p" top: "mask" pooling_param {{ {options} }}',
                                    [x])
    return run_forward(layer, bottom, top)


@pytest.mark.parametrize("pool_options, in_size, up_options", [
    ("pool: MAX kernel_size: 2 stride: 2", (4, 6), ""),
    ("pool: MAX kernel_size: 2 stride: 2", (5, 7), "upsample_h: 5 upsample_w: 7"),
    ("pool: MAX kernel_size: 2 stride: 2", (5, 6), "pad_out_h: true"),
    ("pool: MAX kernel_size: 3 stride: 3", (6, 6), "scale: 3"),
])
def test_unpooling_puts_each_value_at_its_argmax(pool_options, in_size, up_options):
    x = np.random.default_rng(2).normal(size=(2, 3) + in_size)
    pooled, mask = max_pool(x, pool_options)
    values = np.random.default_rng(3).normal(size=pooled.shape)
    layer, bottom, top = make_layer(up_text(up_options, ("x", "mask")), [values, mask])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == x.shape
    expected = np.zeros_like(x)
    for n, c, i, j in np.ndindex(values.shape):
        index = int(mask[n, c, i, j])
        expected[n, c, index // in_size[1], index % in_size[1]] = values[n, c, i, j]
    np.testing.assert_array_equal(y, expected)
    check_gradients(layer, bottom, top, check_bottom=[0])
    # Unpooling the pooled values puts every maximum back where it was.
    bottom[0].data[...] = pooled
    (restored,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(restored[restored != 0], x[restored != 0])


def test_unpooling_keeps_the_later_value_and_gives_both_the_grad():
    values = np.array([[[[1.0, 2.0]]]])
    mask = np.array([[[[3.0, 3.0]]]])
    layer, bottom, top = make_layer(up_text("", ("x", "mask")), [values, mask])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y.ravel(), [0, 0, 0, 2, 0, 0, 0, 0])
    top[0].grad[...] = np.arange(8.0).reshape(top[0].shape)
    layer.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].grad.ravel(), [3.0, 3.0])
    assert not layer.allow_force_backward(1)


def test_float32_stays_float32():
    x = np.random.default_rng(4).normal(size=(1, 2, 3, 3))
    for options in ("", "mode: BILINEAR"):
        layer, bottom, top = make_layer(up_text(options), [x], dtype=np.float32)
        (y,) = run_forward(layer, bottom, top)
        assert y.dtype == np.float32
        top[0].grad[...] = 1
        layer.backward(top, [True], bottom)
        assert bottom[0].grad.dtype == np.float32
        np.testing.assert_allclose(bottom[0].grad, 4, rtol=1e-6)  # every input feeds four outputs in total


@pytest.mark.parametrize("options, bottoms, message", [
    ("scale_h: 2", 1, "give scale, or both scale_h and scale_w"),
    ("scale: 2 scale_h: 2 scale_w: 2", 1, "give scale, or both scale_h and scale_w"),
    ("upsample_h: 4", 1, "give both upsample_h and upsample_w"),
    ("scale: 0", 1, "scale must be at least 1"),
    ("scale: 3 pad_out_h: true", 1, "pad_out_h needs a scale of 2"),
    ("mode: BILINEAR", 2, "unpooling with a mask bottom takes no mode BILINEAR"),
])
def test_bad_options_are_net_errors(options, bottoms, message):
    with pytest.raises(NetError, match="layer 'up' \\(Upsample\\): " + message):
        make_layer(up_text(options, ("x", "mask")[:bottoms]), [np.zeros((1, 1, 2, 2))] * bottoms)


def test_shape_errors():
    with pytest.raises(ShapeError, match="input must have 4 axes"):
        make_layer(up_text(""), [np.zeros((1, 2, 2))])
    with pytest.raises(ShapeError, match="the mask has shape"):
        make_layer(up_text("", ("x", "mask")), [np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 3))])
    layer, bottom, top = make_layer(up_text("", ("x", "mask")), [np.zeros((1, 1, 2, 2)), np.full((1, 1, 2, 2), 16.0)])
    with pytest.raises(ShapeError, match="mask index 16 is outside the 4x4 output"):
        layer.forward(bottom, top)
