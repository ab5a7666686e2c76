"""Reduction: SUM / ASUM / SUMSQ / MEAN over trailing axes against loops, coeff, gradients, float32 coefficients."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward

SHAPE = (2, 3, 2, 2)
OPERATIONS = ["SUM", "ASUM", "SUMSQ", "MEAN"]


def reduction_text(operation=None, axis=None, coeff=None):
    options = "" if operation is None else f"operation: {operation} "
    options += "" if axis is None else f"axis: {axis} "
    options += "" if coeff is None else f"coeff: {coeff}"
    return f'name: "red" type: "Reduction" reduction_param {{ {options} }}'


def reference(x, operation, axis, coeff):
    lead = x.shape[:axis]
    y = np.zeros(lead)
    for index in np.ndindex(*lead):
        values = x[index].ravel()
        if operation == "SUM":
            total = sum(values)
        elif operation == "ASUM":
            total = sum(abs(v) for v in values)
        elif operation == "SUMSQ":
            total = sum(v * v for v in values)
        else:
            total = sum(values) / len(values)
        y[index] = coeff * total
    return y


def away_from_zero(seed=0):
    x = np.random.default_rng(seed).uniform(-2, 2, SHAPE)
    return np.where(np.abs(x) < 0.05, 0.5, x)


@pytest.mark.parametrize("axis, canonical", [(None, 0), (1, 1), (2, 2), (-1, 3), (3, 3)])
@pytest.mark.parametrize("operation", OPERATIONS)
def test_forward_matches_loop(operation, axis, canonical):
    x = away_from_zero()
    layer, bottom, top = make_layer(reduction_text(operation, axis, coeff=-1.5), [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == SHAPE[:canonical]
    np.testing.assert_allclose(y, reference(x, operation, canonical, -1.5), rtol=1e-13)


def test_defaults_sum_everything_to_a_scalar():
    x = away_from_zero()
    layer, bottom, top = make_layer(reduction_text(), [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == () and np.isclose(y, x.sum(), rtol=1e-14)


@pytest.mark.parametrize("axis", [None, 1, -1])
@pytest.mark.parametrize("operation", OPERATIONS)
def test_gradients(operation, axis):
    layer, bottom, top = make_layer(reduction_text(operation, axis, coeff=0.75), [away_from_zero(1)])
    check_gradients(layer, bottom, top)


def test_asum_gradient_at_zero_is_zero():
    layer, bottom, top = make_layer(reduction_text("ASUM", 1), [np.array([[0.0, -2.0, 3.0]])])
    run_forward(layer, bottom, top)
    top[0].grad[...] = 2
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].grad, [[0, -2, 2]])


def test_float32_mean_uses_a_float32_coefficient():
    x = np.arange(1, 8, dtype=np.float32).reshape(1, 7)
    layer, bottom, top = make_layer(reduction_text("MEAN", 1, coeff=0.3), [x], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32
    coeff = np.float32(0.3) / np.float32(7)
    assert y[0] == np.float32(28) * coeff
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    assert bottom[0].grad.dtype == np.float32 and np.all(bottom[0].grad == coeff)


def test_propagate_down_false_leaves_bottom_grad_alone():
    layer, bottom, top = make_layer(reduction_text("SUMSQ"), [away_from_zero()])
    run_forward(layer, bottom, top)
    bottom[0].grad[...] = 7
    layer.backward(top, [False], bottom)
    assert np.all(bottom[0].grad == 7)


def test_axis_out_of_range():
    with pytest.raises(ShapeError, match="layer 'red' \\(Reduction\\): axis 4 out of range"):
        make_layer(reduction_text("SUM", 4), [np.zeros(SHAPE)])


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in place"):
        make_layer('type: "Reduction" bottom: "x" top: "x"', [np.zeros(SHAPE)])
