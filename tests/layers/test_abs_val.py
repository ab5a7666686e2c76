"""AbsVal: forward against abs per element, gradients by finite differences; in place is refused as in Caffe."""

import numpy as np
import pytest

from caffelite.errors import NetError
from layer_harness import check_gradients, make_layer, run_forward


def away_from_zero(shape, seed=0):
    x = np.random.default_rng(seed).uniform(-2, 2, shape)
    return np.where(np.abs(x) < 0.05, -0.5, x)


def test_forward_matches_loop():
    x = away_from_zero((2, 3, 4, 5))
    layer, bottom, top = make_layer('type: "AbsVal" bottom: "x" top: "y"', [x])
    (y,) = run_forward(layer, bottom, top)
    expected = np.empty_like(x)
    for i, v in np.ndenumerate(x):
        expected[i] = v if v >= 0 else -v
    np.testing.assert_array_equal(y, expected)


def test_gradients():
    layer, bottom, top = make_layer('type: "AbsVal" bottom: "x" top: "y"', [away_from_zero((2, 3, 4), seed=1)])
    check_gradients(layer, bottom, top)


def test_derivative_at_zero_is_zero():
    layer, bottom, top = make_layer('type: "AbsVal"', [np.array([-3.0, 0.0, 2.0])], dtype=np.float32)
    run_forward(layer, bottom, top)
    top[0].grad[...] = [5, 5, 5]
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].grad, [-5, 0, 5])
    assert bottom[0].grad.dtype == np.float32


def test_in_place_is_an_error():
    with pytest.raises(NetError, match=r"layer 'abs' \(AbsVal\).*in place"):
        make_layer('name: "abs" type: "AbsVal" bottom: "x" top: "x"', [np.ones((2, 2))])
