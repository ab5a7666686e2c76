"""Power: forward against math.pow per element, gradients by finite differences (also in place), Caffe's shortcuts."""

import math

import numpy as np
import pytest

from layer_harness import check_gradients, make_layer, run_forward

# (power, scale, shift), chosen so shift + scale * x stays positive for x in [-1, 1] where power is fractional.
COMBOS = [
    (1.0, 1.0, 0.0),
    (1.0, -2.5, 0.75),
    (2.0, 1.0, 0.0),
    (2.0, 0.5, 1.0),
    (3.0, -1.0, 0.0),
    (0.5, 2.0, 3.0),
    (-1.5, 1.0, 5.0),
    (0.37, 0.25, 2.0),
    (-2.0, 1.0, 0.0),
]


def power_text(power, scale, shift, names='bottom: "x" top: "y"'):
    return f'type: "Power" {names} power_param {{ power: {power} scale: {scale} shift: {shift} }}'


def inputs(shape, seed=0):
    x = np.random.default_rng(seed).uniform(-1, 1, shape)
    return np.where(np.abs(x) < 0.1, 0.5, x)  # away from 0, where power -2 blows up


def f32(value):
    return float(np.float32(value))


@pytest.mark.parametrize("power, scale, shift", COMBOS)
def test_forward_matches_math_pow(power, scale, shift):
    x = inputs((2, 3, 4))
    layer, bottom, top = make_layer(power_text(power, scale, shift), [x])
    (y,) = run_forward(layer, bottom, top)
    expected = np.vectorize(lambda v: math.pow(f32(shift) + f32(scale) * v, f32(power)))(x)
    np.testing.assert_allclose(y, expected, rtol=1e-13)


@pytest.mark.parametrize("power, scale, shift", COMBOS)
@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(power, scale, shift, in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    layer, bottom, top = make_layer(power_text(power, scale, shift, names), [inputs((2, 3, 2), seed=1)])
    assert (top[0] is bottom[0]) == in_place
    check_gradients(layer, bottom, top)


def test_defaults_are_the_identity():
    x = inputs((3, 4))
    layer, bottom, top = make_layer('type: "Power"', [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, x)
    top[0].grad[...] = 2
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].grad, np.full_like(x, 2))


@pytest.mark.parametrize("power, scale, shift, value", [(0.0, 3.0, -2.0, 1.0), (2.0, 0.0, 3.0, 9.0),
                                                        (0.5, 0.0, 4.0, 2.0)])
def test_constant_output_and_zero_gradient_when_power_or_scale_is_zero(power, scale, shift, value):
    x = np.array([-1.0, 0.0, np.inf, np.nan])
    layer, bottom, top = make_layer(power_text(power, scale, shift), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, np.full(4, value))
    top[0].grad[...] = [1.0, 2.0, np.inf, np.nan]
    layer.backward(top, [True], bottom)
    # Caffe sets the gradient to 0 without multiplying by the top gradient.
    np.testing.assert_array_equal(bottom[0].grad, np.zeros(4))


def test_derivative_is_finite_at_zero_without_shift():
    # Caffe's power * y / x would give 0/0 here; the derivative of x^3 at 0 is 0.
    layer, bottom, top = make_layer(power_text(3.0, 1.0, 0.0), [np.array([0.0, 2.0])])
    run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].grad, [0.0, 12.0])


def test_float32_stays_float32():
    layer, bottom, top = make_layer(power_text(2.5, 0.5, 2.0), [inputs((3, 4))], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    assert y.dtype == np.float32 and bottom[0].grad.dtype == np.float32
