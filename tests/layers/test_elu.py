"""ELU: forward against a per-element formula, gradients by finite differences (also in place)."""

import math

import numpy as np
import pytest

from layer_harness import check_gradients, make_layer, run_forward


def away_from_zero(shape, seed=0):
    x = np.random.default_rng(seed).uniform(-3, 3, shape)
    return np.where(np.abs(x) < 0.05, 0.7, x)


def reference(x, alpha):
    return np.vectorize(lambda v: v if v > 0 else alpha * (math.exp(v) - 1))(x)


def names(in_place):
    return 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'


@pytest.mark.parametrize("alpha", [1.0, 0.5, 2.5, 0.0])
def test_forward_matches_formula(alpha):
    x = away_from_zero((2, 3, 4, 5))
    layer, bottom, top = make_layer(f'type: "ELU" elu_param {{ alpha: {alpha} }}', [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, reference(x, float(np.float32(alpha))), rtol=1e-14, atol=1e-300)


def test_default_alpha_is_one_and_large_negative_inputs_saturate():
    x = np.array([-800.0, -1e-10, 0.0, 3.0])
    layer, bottom, top = make_layer('type: "ELU"', [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, [-1.0, math.expm1(-1e-10), 0.0, 3.0], rtol=1e-15)
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    # At x = 0 the derivative is alpha exp(0) = alpha, as in Caffe (x <= 0 counts as negative).
    np.testing.assert_allclose(bottom[0].grad, [0.0, 1.0, 1.0, 1.0], rtol=1e-9)


@pytest.mark.parametrize("alpha", [1.0, 0.3, -0.5])
@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(alpha, in_place):
    layer, bottom, top = make_layer(f'type: "ELU" {names(in_place)} elu_param {{ alpha: {alpha} }}',
                                    [away_from_zero((2, 3, 4), seed=1)])
    assert (top[0] is bottom[0]) == in_place
    check_gradients(layer, bottom, top)


def test_float32_stays_float32():
    layer, bottom, top = make_layer('type: "ELU"', [away_from_zero((3, 4))], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    assert y.dtype == np.float32 and bottom[0].grad.dtype == np.float32
