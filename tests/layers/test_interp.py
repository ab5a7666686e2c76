"""Interp: forward against the forks' per-cell formula (float32 coordinates, corners aligned), sizes, crops, grads."""

import itertools

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward


def interp_reference(x, out_size, crop=(0, 0), dtype=np.float64):
    """The forks' loop, cell by cell: coordinates in float32, truncated, the neighbour clamped at the last cell.

    `crop` is (cells cut at the start, cells cut at the end) of both spatial axes.
    """
    x = x[:, :, crop[0]:x.shape[2] - crop[1], crop[0]:x.shape[3] - crop[1]]
    h_in, w_in = x.shape[2:]
    if (h_in, w_in) == tuple(out_size):
        return x.astype(dtype)
    rh = np.float32(h_in - 1) / np.float32(out_size[0] - 1) if out_size[0] > 1 else np.float32(0)
    rw = np.float32(w_in - 1) / np.float32(out_size[1] - 1) if out_size[1] > 1 else np.float32(0)
    one = dtype(1)
    y = np.zeros(x.shape[:2] + tuple(out_size), dtype=dtype)
    for i, j in itertools.product(range(out_size[0]), range(out_size[1])):
        hr, wr = rh * np.float32(i), rw * np.float32(j)
        h, w = int(hr), int(wr)
        hp, wp = int(h < h_in - 1), int(w < w_in - 1)
        hl, wl = dtype(hr - np.float32(h)), dtype(wr - np.float32(w))
        y[:, :, i, j] = ((one - hl) * ((one - wl) * x[:, :, h, w] + wl * x[:, :, h, w + wp])
                         + hl * ((one - wl) * x[:, :, h + hp, w] + wl * x[:, :, h + hp, w + wp]))
    return y


def interp_text(options, bottoms=("x",)):
    names = "".join(f'bottom: "{b}" ' for b in bottoms)
    return f'name: "interp" type: "Interp" {names}top: "y" interp_param {{ {options} }}'


@pytest.mark.parametrize("options, in_size, out_size", [
    ("zoom_factor: 2", (3, 4), (5, 7)),
    ("zoom_factor: 8", (4, 3), (25, 17)),
    ("shrink_factor: 2", (7, 6), (4, 3)),
    ("shrink_factor: 3 zoom_factor: 2", (10, 7), (7, 5)),
    ("height: 9 width: 4", (3, 5), (9, 4)),
    ("height: 1 width: 6", (3, 5), (1, 6)),
    ("height: 3 width: 5", (3, 5), (3, 5)),  # equal sizes: a copy
    ("height: 3 width: 8", (3, 5), (3, 8)),  # equal on one axis only
    ("zoom_factor: 2 height: 100 width: 100", (3, 3), (5, 5)),  # the forks look at the factors first
])
def test_forward_matches_the_forks_formula(options, in_size, out_size):
    x = np.random.default_rng(0).normal(size=(2, 3) + in_size)
    layer, bottom, top = make_layer(interp_text(options), [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == (2, 3) + out_size
    np.testing.assert_array_equal(y, interp_reference(x, out_size))


def test_corners_are_aligned():
    x = np.array([[[[0.0, 1.0, 2.0]]]])
    layer, bottom, top = make_layer(interp_text("height: 1 width: 5"), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y.ravel(), [0.0, 0.5, 1.0, 1.5, 2.0])
    x = np.random.default_rng(1).normal(size=(1, 2, 4, 5))
    layer, bottom, top = make_layer(interp_text("height: 11 width: 7"), [x])
    (y,) = run_forward(layer, bottom, top)
    for i, j in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        np.testing.assert_allclose(y[:, :, i, j], x[:, :, i, j], rtol=1e-6)


def test_coordinates_are_float32_even_in_a_double_net():
    x = np.random.default_rng(2).normal(size=(1, 1, 7, 7))
    layer, bottom, top = make_layer(interp_text("height: 10 width: 10"), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, interp_reference(x, (10, 10)))
    exact_ratio = 6 / 9
    double = np.interp(np.arange(10) * exact_ratio, np.arange(7), x[0, 0, 0])
    assert not np.array_equal(y[0, 0, 0], double)  # float32's 6/9 differs from double's
    np.testing.assert_allclose(y[0, 0, 0], double, rtol=1e-6)


@pytest.mark.parametrize("options, crop, out_size", [
    ("pad_beg: -1 pad_end: -1 zoom_factor: 2", (1, 1), (7, 9)),
    ("pad_beg: -2 pad_end: 0 height: 6 width: 6", (2, 0), (6, 6)),
    ("pad_beg: 0 pad_end: -2 shrink_factor: 2", (0, 2), (2, 3)),
    ("pad_beg: -1 pad_end: -1 height: 4 width: 5", (1, 1), (4, 5)),  # the crop is the output: a copy
])
def test_negative_pads_crop_before_resizing(options, crop, out_size):
    x = np.random.default_rng(3).normal(size=(2, 2, 6, 7))
    layer, bottom, top = make_layer(interp_text(options), [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == (2, 2) + out_size
    np.testing.assert_array_equal(y, interp_reference(x, out_size, crop=crop))
    check_gradients(layer, bottom, top)
    # The cropped-away border gets no gradient.
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    assert not bottom[0].grad[:, :, :crop[0]].any() and not bottom[0].grad[:, :, 6 - crop[1]:].any()
    assert not bottom[0].grad[..., :crop[0]].any() and not bottom[0].grad[..., 7 - crop[1]:].any()


@pytest.mark.parametrize("options", ["zoom_factor: 3", "shrink_factor: 2", "height: 2 width: 9", "height: 4 width: 5"])
def test_gradients(options):
    x = np.random.default_rng(4).normal(size=(2, 2, 4, 5))
    layer, bottom, top = make_layer(interp_text(options), [x])
    check_gradients(layer, bottom, top)


def test_second_bottom_gives_the_size_and_no_gradient():
    x = np.random.default_rng(5).normal(size=(2, 3, 4, 4))
    reference_blob = np.zeros((2, 7, 9, 6))
    layer, bottom, top = make_layer(interp_text("", ("x", "like")), [x, reference_blob])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == (2, 3, 9, 6)
    np.testing.assert_array_equal(y, interp_reference(x, (9, 6)))
    check_gradients(layer, bottom, top, check_bottom=[0])
    assert not layer.allow_force_backward(1)
    # Size options win over the second bottom.
    layer, bottom, top = make_layer(interp_text("zoom_factor: 2", ("x", "like")), [x, reference_blob])
    assert top[0].shape == (2, 3, 7, 7)


def test_float32_stays_float32():
    x = np.random.default_rng(6).normal(size=(1, 2, 5, 4))
    layer, bottom, top = make_layer(interp_text("zoom_factor: 3"), [x], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, interp_reference(x.astype(np.float32), (13, 10), dtype=np.float32))
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    assert bottom[0].grad.dtype == np.float32
    np.testing.assert_allclose(bottom[0].grad.sum(), 13 * 10 * 2, rtol=1e-5)  # the weights of each output sum to 1


def test_errors():
    with pytest.raises(NetError, match="layer 'interp' \\(Interp\\): only pad_beg/pad_end <= 0"):
        make_layer(interp_text("pad_beg: 1 zoom_factor: 2"), [np.zeros((1, 1, 3, 3))])
    with pytest.raises(NetError, match="give height and width, zoom_factor and/or shrink_factor"):
        make_layer(interp_text("height: 5"), [np.zeros((1, 1, 3, 3))])
    with pytest.raises(NetError, match="zoom_factor must be at least 1"):
        make_layer(interp_text("zoom_factor: 0"), [np.zeros((1, 1, 3, 3))])
    with pytest.raises(ShapeError, match="leaves nothing"):
        make_layer(interp_text("pad_beg: -2 pad_end: -1 zoom_factor: 2"), [np.zeros((1, 1, 3, 3))])
    with pytest.raises(ShapeError, match="input must have 4 axes"):
        make_layer(interp_text("zoom_factor: 2"), [np.zeros((1, 3, 3))])
    with pytest.raises(NetError, match="cannot run in place"):
        make_layer('name: "interp" type: "Interp" bottom: "x" top: "x" interp_param { zoom_factor: 2 }',
                   [np.zeros((1, 1, 3, 3))])
