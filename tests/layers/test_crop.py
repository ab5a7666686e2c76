"""Crop: windows against per-element references for axis/offset options, gradients, and bounds errors."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward


def crop_text(options=""):
    return f'name: "c" type: "Crop" bottom: "x" bottom: "ref" top: "y" crop_param {{ {options} }}'


def reference(x, out_shape, offsets):
    """offsets: one per axis of x (0 for axes kept whole)."""
    y = np.empty(out_shape)
    for index in np.ndindex(*out_shape):
        y[index] = x[tuple(i + o for i, o in zip(index, offsets))]
    return y


@pytest.mark.parametrize(
    "ref_shape, options, out_shape, offsets",
    [
        ((1, 1, 3, 2), "", (2, 3, 3, 2), (0, 0, 0, 0)),
        ((1, 1, 3, 2), "offset: 1", (2, 3, 3, 2), (0, 0, 1, 1)),
        ((1, 1, 2, 3), "offset: 2 offset: 1", (2, 3, 2, 3), (0, 0, 2, 1)),
        ((9, 2, 4, 2), "axis: 1 offset: 1 offset: 0 offset: 2", (2, 2, 4, 2), (0, 1, 0, 2)),
        ((1, 2, 4, 2), "axis: 0 offset: 0", (1, 2, 4, 2), (0, 0, 0, 0)),
        ((5, 5, 5, 1), "axis: -1 offset: 3", (2, 3, 4, 1), (0, 0, 0, 3)),
        ((2, 3, 4, 4, 7), "axis: 3", (2, 3, 4, 4), (0, 0, 0, 0)),  # the reference may have more axes
    ],
)
def test_forward_matches_reference(ref_shape, options, out_shape, offsets):
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 4))
    layer, bottom, top = make_layer(crop_text(options), [x, np.zeros(ref_shape)])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, reference(x, out_shape, offsets))


@pytest.mark.parametrize("options", ["offset: 1", "axis: 1 offset: 1 offset: 0 offset: 2"])
def test_gradients(options):
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 4))
    layer, bottom, top = make_layer(crop_text(options), [x, np.zeros((1, 2, 2, 2))])
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_backward_puts_the_window_back_and_the_reference_gets_zero():
    layer, bottom, top = make_layer(crop_text("axis: 1 offset: 1"), [np.zeros((1, 4)), np.zeros((1, 2))],
                                    dtype=np.float32)
    run_forward(layer, bottom, top)
    top[0].grad[...] = [[5, 6]]
    bottom[0].grad[...] = 9
    bottom[1].grad[...] = 9
    layer.backward(top, [True, True], bottom)
    assert bottom[0].grad.dtype == np.float32
    np.testing.assert_array_equal(bottom[0].grad, [[0, 5, 6, 0]])
    assert not bottom[1].grad.any()


@pytest.mark.parametrize(
    "ref_shape, options, error, message",
    [
        ((1, 1, 3, 3), "offset: 2", ShapeError, "crop of size 3 at offset 2 does not fit axis 2"),
        ((1, 1, 5, 2), "", ShapeError, "does not fit axis 2"),
        ((1, 1, 2, 2), "offset: 1 offset: 1 offset: 1", NetError, "3 offsets for the 2 axes"),
        ((1, 1, 2), "", ShapeError, "needs at least the 4 axes"),
        ((1, 1, 2, 2), "axis: 4", ShapeError, "axis 4 out of range"),
    ],
)
def test_bad_configurations(ref_shape, options, error, message):
    with pytest.raises(error, match=message) as raised:
        make_layer(crop_text(options), [np.zeros((2, 3, 4, 4)), np.zeros(ref_shape)])
    assert "layer 'c' (Crop)" in str(raised.value)


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in place"):
        make_layer('type: "Crop" bottom: "x" bottom: "r" top: "x"', [np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 1, 1))])
