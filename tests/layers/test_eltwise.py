"""Eltwise: PROD / SUM (coeff) / MAX against per-element loops, gradients, Caffe's MAX tie routing, errors."""

import numpy as np
import pytest

import caffelite.layers._threads as threads
from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward

SHAPE = (2, 3, 2)


def eltwise_text(num_bottom, options=""):
    bottoms = " ".join(f'bottom: "x{i}"' for i in range(num_bottom))
    return f'name: "e" type: "Eltwise" {bottoms} top: "y" eltwise_param {{ {options} }}'


def inputs(num, seed=0, low=-2, high=2):
    rng = np.random.default_rng(seed)
    return [rng.uniform(low, high, SHAPE) for _ in range(num)]


def reference(xs, operation, coeffs=None):
    y = np.empty(SHAPE)
    for index in np.ndindex(*SHAPE):
        values = [x[index] for x in xs]
        if operation == "PROD":
            y[index] = np.prod(values)
        elif operation == "SUM":
            y[index] = sum(c * v for c, v in zip(coeffs or [1] * len(xs), values))
        else:
            y[index] = max(values)
    return y


@pytest.mark.parametrize("num_bottom", [2, 3, 4])
@pytest.mark.parametrize("operation", ["PROD", "SUM", "MAX"])
def test_forward_matches_loop(operation, num_bottom):
    xs = inputs(num_bottom)
    layer, bottom, top = make_layer(eltwise_text(num_bottom, f"operation: {operation}"), xs)
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, reference(xs, operation), rtol=1e-14)


def test_sum_is_the_default_and_coefficients_weight_each_bottom():
    xs = inputs(3)
    layer, bottom, top = make_layer(eltwise_text(3, "coeff: 1 coeff: -0.5 coeff: 2"), xs)
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, reference(xs, "SUM", [1, -0.5, 2]), rtol=1e-14)


@pytest.mark.parametrize(
    "num_bottom, options",
    [
        (2, "operation: PROD"),
        (3, "operation: PROD"),
        (3, "operation: PROD stable_prod_grad: false"),
        (2, "operation: SUM"),
        (3, "operation: SUM coeff: 0.5 coeff: -1 coeff: 3"),
        (2, "operation: MAX"),
        (3, "operation: MAX"),
    ],
)
def test_gradients(num_bottom, options):
    # Away from zero (for y / x_i) and from ties (for MAX): inputs of one sign, kept apart by the seed.
    layer, bottom, top = make_layer(eltwise_text(num_bottom, options), inputs(num_bottom, seed=3, low=0.5, high=2))
    check_gradients(layer, bottom, top)


def test_max_gradient_goes_to_one_winner_per_element_with_caffes_tie_rule():
    # Columns: a tie of bottom[0] and bottom[1] goes to bottom[1]; a later bottom must be strictly larger to win,
    # so a tie of bottom[0] (winning over bottom[1]) with bottom[2] stays with bottom[0].
    x0 = np.array([[1.0, 3.0, 2.0, 0.0]])
    x1 = np.array([[1.0, 1.0, 2.0, 0.0]])
    x2 = np.array([[0.0, 3.0, 2.0, 5.0]])
    layer, bottom, top = make_layer(eltwise_text(3, "operation: MAX"), [x0, x1, x2])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, [[1, 3, 2, 5]])
    top[0].grad[...] = [[10, 20, 30, 40]]
    layer.backward(top, [True, True, True], bottom)
    np.testing.assert_array_equal(bottom[0].grad, [[0, 20, 0, 0]])
    np.testing.assert_array_equal(bottom[1].grad, [[10, 0, 30, 0]])
    np.testing.assert_array_equal(bottom[2].grad, [[0, 0, 0, 40]])


def test_prod_gradient_with_a_zero_input():
    x0, x1, x2 = np.array([0.0, 2.0]), np.array([3.0, 0.0]), np.array([5.0, 7.0])
    layer, bottom, top = make_layer(eltwise_text(3, "operation: PROD"), [x0, x1, x2])
    run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True, True, True], bottom)
    # The stable form multiplies the other inputs, so a zero elsewhere does not spoil it.
    np.testing.assert_array_equal(bottom[0].grad, [15, 0])
    np.testing.assert_array_equal(bottom[1].grad, [0, 14])
    np.testing.assert_array_equal(bottom[2].grad, [0, 0])
    unstable, bottom, top = make_layer(eltwise_text(3, "operation: PROD stable_prod_grad: false"), [x0, x1, x2])
    run_forward(unstable, bottom, top)
    top[0].grad[...] = 1
    with np.errstate(invalid="ignore"):
        unstable.backward(top, [True, False, False], bottom)
    assert np.isnan(bottom[0].grad[0])  # y / x_0 = 0 / 0, as in Caffe


def test_propagate_down_and_float32():
    xs = [x.astype(np.float32) for x in inputs(2)]
    layer, bottom, top = make_layer(eltwise_text(2, "coeff: 0.1 coeff: 1"), xs, dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, xs[0] * np.float32(0.1) + xs[1])
    top[0].grad[...] = 1
    bottom[1].grad[...] = 7
    layer.backward(top, [True, False], bottom)
    assert bottom[0].grad.dtype == np.float32 and np.all(bottom[0].grad == np.float32(0.1))
    assert np.all(bottom[1].grad == 7)


@pytest.mark.parametrize(
    "num_bottom, options, shapes, error, message",
    [
        (3, "coeff: 1 coeff: 2", None, NetError, "2 coeff values for 3 bottoms"),
        (2, "operation: PROD coeff: 1 coeff: 2", None, NetError, "only to the SUM"),
        (2, "", [SHAPE, (2, 3, 3)], ShapeError, "bottom\\[1\\] has shape"),
    ],
)
def test_bad_configurations(num_bottom, options, shapes, error, message):
    xs = [np.zeros(s) for s in shapes] if shapes else inputs(num_bottom)
    with pytest.raises(error, match=message) as raised:
        make_layer(eltwise_text(num_bottom, options), xs)
    assert "layer 'e' (Eltwise)" in str(raised.value)


def test_in_place_and_a_single_bottom_are_refused():
    with pytest.raises(NetError, match="in place"):
        make_layer('type: "Eltwise" bottom: "a" bottom: "b" top: "a"', inputs(2))
    with pytest.raises(NetError, match="at least 2 bottoms"):
        make_layer('type: "Eltwise" bottom: "a" top: "y"', inputs(1))


@pytest.mark.parametrize("coeffs", ["", "coeff: 1 coeff: 1 coeff: -2", "coeff: 3 coeff: 1 coeff: 1"])
def test_float32_sum_adds_in_caffes_order_on_one_thread_and_on_several(coeffs, monkeypatch):
    """y = ((0 + c0 x0) + c1 x1) + c2 x2 bit for bit, whichever first pass (a sum of two, a copy, a product) starts
    it."""
    xs = [x.astype(np.float32) for x in inputs(3, seed=4)]
    values = [float(v) for v in coeffs.replace("coeff:", "").split()] or [1.0] * 3
    expected = np.zeros(SHAPE, np.float32)
    for c, x in zip(values, xs):
        expected += x * np.float32(c) if c != 1 else x
    for minimum in (threads.ELEMENTWISE_MIN_ELEMENTS, 0):
        monkeypatch.setattr(threads, "ELEMENTWISE_MIN_ELEMENTS", minimum)
        monkeypatch.setenv("CAFFELITE_NUM_THREADS", "3")
        layer, bottom, top = make_layer(eltwise_text(3, coeffs), xs, dtype=np.float32)
        (y,) = run_forward(layer, bottom, top)
        np.testing.assert_array_equal(y, expected)
