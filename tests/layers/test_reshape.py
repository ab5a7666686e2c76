"""Reshape: output shapes for shape/axis/num_axes (0 copies, -1 infers), values kept in order, gradient reshaped."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward


def reshape_text(dims, extra=""):
    shape = " ".join(f"dim: {d}" for d in dims)
    return f'name: "r" type: "Reshape" bottom: "x" top: "y" reshape_param {{ shape {{ {shape} }} {extra} }}'


@pytest.mark.parametrize(
    "in_shape, dims, extra, expected",
    [
        # The examples of caffe.proto's ReshapeParameter, on a 2 x 8 input.
        ((2, 8), (2, 2, 4), "", (2, 2, 4)),
        ((2, 8), (0, 2, 4), "", (2, 2, 4)),
        ((2, 8), (0, 2, -1), "", (2, 2, 4)),
        ((2, 8), (0, -1, 4), "", (2, 2, 4)),
        ((2, 8), (2, 4), "axis: 1", (2, 2, 4)),
        ((2, 8), (2, 4), "axis: -2", (2, 2, 4)),
        ((2, 8), (1, 2, 8), "", (1, 2, 8)),
        ((2, 8), (1, 2), "num_axes: 1", (1, 2, 8)),
        ((2, 8), (1,), "num_axes: 0", (1, 2, 8)),
        ((2, 8), (1,), "axis: 1 num_axes: 0", (2, 1, 8)),
        ((2, 8), (1,), "axis: -1", (2, 8, 1)),
        # Flatten-like uses on images.
        ((2, 3, 4, 5), (0, -1), "", (2, 60)),
        ((2, 3, 4, 5), (-1,), "axis: 2", (2, 3, 20)),
        ((2, 3, 4, 5), (-1,), "axis: 1 num_axes: 2", (2, 12, 5)),
        ((2, 3, 4, 5), (0, 0, -1, 1), "", (2, 3, 20, 1)),
        # A 0 copies the input axis at the same position even past num_axes.
        ((2, 3, 4), (0, -1), "axis: 1 num_axes: 1", (2, 3, 1, 4)),
        ((2, 3, 4, 5), (), "axis: 1 num_axes: 0", (2, 3, 4, 5)),
    ],
)
def test_shapes_and_row_major_order(in_shape, dims, extra, expected):
    x = np.arange(float(np.prod(in_shape))).reshape(in_shape)
    layer, bottom, top = make_layer(reshape_text(dims, extra), [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == expected
    np.testing.assert_array_equal(y.ravel(), x.ravel())


def test_top_is_a_copy_and_follows_a_new_batch_size():
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    layer, bottom, top = make_layer(reshape_text((0, -1)), [x])
    run_forward(layer, bottom, top)
    top[0].data[...] = 0
    np.testing.assert_array_equal(bottom[0].data, x)  # the bottom is not written through the top
    bottom[0].reshape(5, 3, 4)
    bottom[0].data[...] = np.arange(60.0).reshape(5, 3, 4)
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, np.arange(60.0).reshape(5, 12))


@pytest.mark.parametrize("dims, extra", [((0, -1), ""), ((2, 2), "axis: 1 num_axes: 1"), ((-1,), "axis: 0")])
def test_gradients(dims, extra):
    x = np.random.default_rng(1).normal(size=(2, 4, 3))
    layer, bottom, top = make_layer(reshape_text(dims, extra), [x])
    check_gradients(layer, bottom, top)


def test_float32_stays_float32():
    layer, bottom, top = make_layer(reshape_text((-1,)), [np.ones((2, 3))], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32 and y.shape == (6,)


@pytest.mark.parametrize(
    "in_shape, dims, extra, error, message",
    [
        ((2, 8), (-1, -1), "", NetError, "more than one -1"),
        ((2, 8), (-2, 8), "", NetError, "below -1"),
        ((2, 8), (4,), "num_axes: -2", NetError, "num_axes"),
        ((2, 8), (3, 5), "", ShapeError, "16 values"),
        ((2, 8), (3, -1), "", ShapeError, "divisible"),
        ((2, 8), (0, 0, 0), "", ShapeError, "no axis 2 to copy"),
        ((2, 8), (4,), "axis: 3", ShapeError, "axis 3 out of range"),
        ((2, 8), (4,), "axis: -4", ShapeError, "out of range"),
        ((2, 8), (4,), "axis: 1 num_axes: 2", ShapeError, "goes past"),
    ],
)
def test_bad_configurations(in_shape, dims, extra, error, message):
    with pytest.raises(error, match=message) as raised:
        make_layer(reshape_text(dims, extra), [np.zeros(in_shape)])
    assert "layer 'r' (Reshape)" in str(raised.value)


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in place"):
        make_layer('type: "Reshape" bottom: "x" top: "x" reshape_param { shape { dim: -1 } }', [np.zeros((2, 3))])
