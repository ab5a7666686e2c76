"""Tile: forward against an element-wise index formula, gradients sum the copies, errors."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward


def tile_text(options):
    return f'name: "t" type: "Tile" tile_param {{ {options} }}'


def reference(x, axis, tiles):
    """y[..., i, rest] = x[..., i mod size, rest] along `axis`: whole copies of everything from `axis` on."""
    shape = list(x.shape)
    shape[axis] *= tiles
    y = np.empty(shape)
    for index in np.ndindex(*shape):
        y[index] = x[index[:axis] + (index[axis] % x.shape[axis],) + index[axis + 1:]]
    return y


@pytest.mark.parametrize("shape, options, axis, tiles", [
    ((2, 3, 2), "tiles: 3", 1, 3),
    ((2, 3, 2), "axis: 0 tiles: 2", 0, 2),
    ((2, 3, 2), "axis: -1 tiles: 4", 2, 4),
    ((2, 3), "axis: 1 tiles: 1", 1, 1),
])
def test_forward_matches_reference(shape, options, axis, tiles):
    x = np.random.default_rng(0).normal(size=shape)
    layer, bottom, top = make_layer(tile_text(options), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, reference(x, axis, tiles))


@pytest.mark.parametrize("options", ["tiles: 3", "axis: 0 tiles: 2", "axis: -1 tiles: 2"])
def test_gradients(options):
    layer, bottom, top = make_layer(tile_text(options), [np.random.default_rng(1).normal(size=(2, 2, 3))])
    check_gradients(layer, bottom, top)


def test_backward_sums_copies_in_float32():
    layer, bottom, top = make_layer(tile_text("tiles: 2"), [np.ones((1, 2), dtype=np.float32)], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32 and y.shape == (1, 4)
    top[0].grad[...] = [[1, 2, 3, 4]]
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].grad, [[4, 6]])


@pytest.mark.parametrize("options, error, message", [
    ("axis: 1", NetError, "tiles .*required"),
    ("tiles: 0", NetError, "must be positive"),
    ("tiles: -2", NetError, "must be positive"),
    ("axis: 3 tiles: 2", ShapeError, "axis 3 out of range"),
])
def test_bad_configurations(options, error, message):
    with pytest.raises(error, match=message) as raised:
        make_layer(tile_text(options), [np.zeros((2, 3))])
    assert "layer 't' (Tile)" in str(raised.value)


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in place"):
        make_layer('type: "Tile" bottom: "x" top: "x" tile_param { tiles: 2 }', [np.zeros((2, 3))])
