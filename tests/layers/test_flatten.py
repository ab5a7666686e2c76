"""Flatten: output shapes for axis/end_axis, row-major order kept, gradient reshaped back."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward

SHAPE = (2, 3, 4, 5)


@pytest.mark.parametrize(
    "options, expected",
    [
        ("", (2, 60)),
        ("axis: 0", (120,)),
        ("axis: 2", (2, 3, 20)),
        ("axis: 1 end_axis: 2", (2, 12, 5)),
        ("axis: -3 end_axis: -2", (2, 12, 5)),
        ("axis: 2 end_axis: 2", (2, 3, 4, 5)),
        ("axis: 2 end_axis: 1", (2, 3, 1, 4, 5)),
    ],
)
def test_shapes_and_order(options, expected):
    x = np.arange(120.0).reshape(SHAPE)
    layer, bottom, top = make_layer(f'type: "Flatten" flatten_param {{ {options} }}', [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == expected
    np.testing.assert_array_equal(y.ravel(), np.arange(120.0))


@pytest.mark.parametrize("options", ["", "axis: 1 end_axis: 2"])
def test_gradients(options):
    x = np.random.default_rng(0).normal(size=(2, 3, 2, 2))
    layer, bottom, top = make_layer(f'type: "Flatten" flatten_param {{ {options} }}', [x])
    check_gradients(layer, bottom, top)


def test_in_place_and_bad_axes_are_refused():
    with pytest.raises(NetError, match="in place"):
        make_layer('type: "Flatten" bottom: "x" top: "x"', [np.zeros(SHAPE)])
    with pytest.raises(ShapeError):
        make_layer('type: "Flatten" flatten_param { axis: 4 }', [np.zeros(SHAPE)])
    with pytest.raises(ShapeError):
        make_layer('type: "Flatten" flatten_param { axis: 3 end_axis: 1 }', [np.zeros(SHAPE)])
