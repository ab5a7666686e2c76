"""Slice: forward against per-element references, gradients, slice points vs equal parts, legacy slice_dim."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward


def slice_text(num_top, options=""):
    tops = " ".join(f'top: "y{i}"' for i in range(num_top))
    return f'name: "cut" type: "Slice" bottom: "x" {tops} slice_param {{ {options} }}'


def reference(x, axis, edges):
    """Part i holds the indices edges[i] <= k < edges[i+1] along `axis`, copied one element at a time."""
    parts = []
    for start, stop in zip(edges, edges[1:]):
        shape = list(x.shape)
        shape[axis] = stop - start
        part = np.empty(shape)
        for index in np.ndindex(*shape):
            part[index] = x[index[:axis] + (index[axis] + start,) + index[axis + 1:]]
        parts.append(part)
    return parts


@pytest.mark.parametrize(
    "shape, num_top, options, axis, edges",
    [
        ((2, 6, 2), 3, "", 1, [0, 2, 4, 6]),
        ((2, 6, 2), 3, "slice_point: 1 slice_point: 4", 1, [0, 1, 4, 6]),
        ((5, 3), 2, "axis: 0 slice_point: 3", 0, [0, 3, 5]),
        ((2, 3, 4), 2, "axis: -1", 2, [0, 2, 4]),
        ((2, 3, 4), 4, "slice_dim: 2 slice_point: 1 slice_point: 2 slice_point: 3", 2, [0, 1, 2, 3, 4]),
        ((4, 3), 2, "slice_dim: 0", 0, [0, 2, 4]),
        ((2, 3), 1, "", 1, [0, 3]),
        ((2, 3), 2, "slice_point: 3", 1, [0, 3, 3]),  # Caffe lets the last part be empty
    ],
)
def test_forward_matches_reference(shape, num_top, options, axis, edges):
    x = np.random.default_rng(0).normal(size=shape)
    layer, bottom, top = make_layer(slice_text(num_top, options), [x])
    outputs = run_forward(layer, bottom, top)
    for y, expected in zip(outputs, reference(x, axis, edges), strict=True):
        np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("num_top, options", [(3, ""), (2, "axis: 0 slice_point: 1"), (1, "")])
def test_gradients(num_top, options):
    x = np.random.default_rng(1).normal(size=(3, 6))
    layer, bottom, top = make_layer(slice_text(num_top, options), [x])
    check_gradients(layer, bottom, top)


def test_propagate_down_false_leaves_bottom_grad_alone():
    layer, bottom, top = make_layer(slice_text(2), [np.ones((2, 4))])
    run_forward(layer, bottom, top)
    bottom[0].grad[...] = 7
    layer.backward(top, [False], bottom)
    assert np.all(bottom[0].grad == 7)


@pytest.mark.parametrize(
    "shape, num_top, options, error, message",
    [
        ((2, 6), 3, "slice_point: 2", NetError, "2 slice points|1 slice points"),
        ((2, 6), 3, "slice_point: 3 slice_point: 3", NetError, "increasing"),
        ((2, 6), 2, "slice_point: 0", NetError, "positive"),
        ((2, 6), 2, "slice_point: 7", ShapeError, "do not fit"),
        ((2, 2), 3, "slice_point: 1 slice_point: 2", ShapeError, "do not fit"),
        ((2, 5), 2, "", ShapeError, "evenly divide"),
        ((2, 6), 2, "axis: 2", ShapeError, "out of range"),
        ((2, 6), 2, "slice_dim: 2", ShapeError, "slice_dim 2 out of range"),
        ((2, 6), 2, "axis: 1 slice_dim: 1", NetError, "not both"),
    ],
)
def test_bad_configurations(shape, num_top, options, error, message):
    with pytest.raises(error, match=message) as raised:
        make_layer(slice_text(num_top, options), [np.zeros(shape)])
    assert "layer 'cut' (Slice)" in str(raised.value)


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in place"):
        make_layer('type: "Slice" bottom: "x" top: "x" top: "z"', [np.zeros((2, 4))])
