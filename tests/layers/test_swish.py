"""Swish: forward against x * sigmoid(beta x) per element, gradients by finite differences (also in place)."""

import math

import numpy as np
import pytest

from layer_harness import check_gradients, make_layer, run_forward


def f32(value):
    return float(np.float32(value))


@pytest.mark.parametrize("beta", [None, 0.5, 2.0, -1.3])
def test_forward_matches_formula(beta):
    x = np.random.default_rng(0).normal(0, 3, (2, 3, 4, 5))
    option = "" if beta is None else f"swish_param {{ beta: {beta} }}"
    layer, bottom, top = make_layer(f'type: "Swish" {option}', [x])
    (y,) = run_forward(layer, bottom, top)
    b = 1.0 if beta is None else f32(beta)
    expected = np.vectorize(lambda v: v / (1 + math.exp(-b * v)))(x)
    np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("beta", [1.0, 0.3, 2.5])
@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(beta, in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    x = np.random.default_rng(1).normal(0, 2, (2, 3, 4))
    layer, bottom, top = make_layer(f'type: "Swish" {names} swish_param {{ beta: {beta} }}', [x])
    assert (top[0] is bottom[0]) == in_place
    check_gradients(layer, bottom, top)


def test_float32_stays_float32_and_saturates():
    layer, bottom, top = make_layer('type: "Swish"', [np.array([-200.0, 0.0, 200.0])], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    assert y.dtype == np.float32 and bottom[0].grad.dtype == np.float32
    np.testing.assert_allclose(y, [0.0, 0.0, 200.0], atol=1e-6)
    np.testing.assert_allclose(bottom[0].grad, [0.0, 0.5, 1.0], atol=1e-6)
