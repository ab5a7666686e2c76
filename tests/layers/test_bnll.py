"""BNLL: forward against log(1 + exp(x)) per element, gradients by finite differences (also in place)."""

import math
import warnings

import numpy as np
import pytest

from layer_harness import check_gradients, make_layer, run_forward


def test_forward_matches_formula():
    x = np.random.default_rng(0).normal(0, 4, (2, 3, 4, 5))
    layer, bottom, top = make_layer('type: "BNLL"', [x])
    (y,) = run_forward(layer, bottom, top)
    expected = np.vectorize(lambda v: math.log1p(math.exp(v)))(x)
    np.testing.assert_allclose(y, expected, rtol=1e-14)


@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    x = np.random.default_rng(1).normal(0, 3, (2, 3, 4))
    layer, bottom, top = make_layer(f'type: "BNLL" {names}', [x])
    assert (top[0] is bottom[0]) == in_place
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_inputs_neither_overflow_nor_lose_the_linear_part(dtype):
    x = np.array([-1000.0, -60.0, 0.0, 60.0, 1000.0])
    layer, bottom, top = make_layer('type: "BNLL"', [x], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (y,) = run_forward(layer, bottom, top)
        top[0].grad[...] = 1
        layer.backward(top, [True], bottom)
    assert y.dtype == dtype and bottom[0].grad.dtype == dtype
    np.testing.assert_allclose(y, [0.0, math.exp(-60), math.log(2), 60.0, 1000.0], rtol=1e-6)
    np.testing.assert_allclose(bottom[0].grad, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-7)
