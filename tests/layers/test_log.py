"""Log: forward against math.log per element, gradients by finite differences (also in place)."""

import math

import numpy as np
import pytest

from caffelite.errors import NetError
from layer_harness import check_gradients, make_layer, run_forward

# (base, scale, shift), with shift + scale * x > 0 for x in [0.5, 2].
COMBOS = [(-1.0, 1.0, 0.0), (-1.0, 2.0, 1.0), (2.0, 1.0, 0.0), (10.0, -0.5, 3.0), (0.5, 3.0, 0.25)]


def log_text(base, scale, shift, names='bottom: "x" top: "y"'):
    return f'name: "lg" type: "Log" {names} log_param {{ base: {base} scale: {scale} shift: {shift} }}'


def f32(value):
    return float(np.float32(value))


@pytest.mark.parametrize("base, scale, shift", COMBOS)
def test_forward_matches_math_log(base, scale, shift):
    x = np.random.default_rng(0).uniform(0.5, 2, (2, 3, 4))
    layer, bottom, top = make_layer(log_text(base, scale, shift), [x])
    (y,) = run_forward(layer, bottom, top)
    expected = np.vectorize(
        lambda v: math.log(f32(shift) + f32(scale) * v) / (1.0 if base == -1 else math.log(f32(base)))
    )(x)
    np.testing.assert_allclose(y, expected, rtol=1e-13)


@pytest.mark.parametrize("base, scale, shift", COMBOS)
@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(base, scale, shift, in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    x = np.random.default_rng(1).uniform(0.5, 2, (2, 3, 2))
    layer, bottom, top = make_layer(log_text(base, scale, shift, names), [x])
    assert (top[0] is bottom[0]) == in_place
    check_gradients(layer, bottom, top)


def test_defaults_are_the_natural_log_and_float32_stays_float32():
    x = np.array([0.5, 1.0, 4.0])
    layer, bottom, top = make_layer('type: "Log"', [x], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    assert y.dtype == np.float32 and bottom[0].grad.dtype == np.float32
    np.testing.assert_allclose(y, np.log(x), rtol=1e-6)
    np.testing.assert_allclose(bottom[0].grad, 1 / x, rtol=1e-6)


@pytest.mark.parametrize("base, message", [(0.0, "strictly positive"), (-3.0, "strictly positive"),
                                           ("inf", "strictly positive"), (1.0, "base 1 has no logarithm")])
def test_bad_bases(base, message):
    with pytest.raises(NetError, match=rf"layer 'lg' \(Log\): .*{message}"):
        make_layer(f'name: "lg" type: "Log" log_param {{ base: {base} }}', [np.ones(2)])
