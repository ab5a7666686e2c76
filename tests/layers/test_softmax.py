"""Softmax: forward against explicit loops over the other axes, gradients by finite differences."""

import numpy as np
import pytest

from caffelite.errors import ShapeError
from layer_harness import check_gradients, make_layer, run_forward


def reference(x, axis):
    moved = np.moveaxis(x, axis, -1)
    out = np.empty_like(moved)
    for index in np.ndindex(moved.shape[:-1]):
        row = moved[index]
        e = [np.exp(v - row.max()) for v in row]
        out[index] = [v / sum(e) for v in e]
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize("axis_text, axis", [("", 1), ("axis: 0", 0), ("axis: 2", 2), ("axis: -1", 3)])
def test_forward_matches_loops(axis_text, axis):
    x = np.random.default_rng(0).normal(0, 2, (2, 3, 4, 5))
    layer, bottom, top = make_layer(f'type: "Softmax" softmax_param {{ {axis_text} }}', [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, reference(x, axis), rtol=1e-13)
    np.testing.assert_allclose(y.sum(axis=axis), 1.0, rtol=1e-13)


def test_large_scores_are_stable():
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]])
    layer, bottom, top = make_layer('type: "Softmax"', [x], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(y[0], reference(x, 1)[0], rtol=1e-5)


@pytest.mark.parametrize("axis", [1, 2, -1])
@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(axis, in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    x = np.random.default_rng(3).normal(0, 1, (2, 3, 2, 3))
    layer, bottom, top = make_layer(f'type: "Softmax" {names} softmax_param {{ axis: {axis} }}', [x])
    check_gradients(layer, bottom, top)


def test_bad_axis_is_a_shape_error_naming_the_layer():
    with pytest.raises(ShapeError, match="layer 'prob' \\(Softmax\\)"):
        make_layer('name: "prob" type: "Softmax" softmax_param { axis: 4 }', [np.zeros((2, 3, 4, 5))])
