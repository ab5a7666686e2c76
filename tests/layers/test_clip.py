"""Clip: forward against a per-element rule, gradients by finite differences (also in place), Caffe's bounds."""

import numpy as np
import pytest

from caffelite.errors import NetError
from layer_harness import check_gradients, make_layer, run_forward


def clip_text(low=-1.0, high=2.0, names='bottom: "x" top: "y"'):
    return f'name: "clip" type: "Clip" {names} clip_param {{ min: {low} max: {high} }}'


def away_from_bounds(shape, low, high, seed=0):
    x = np.random.default_rng(seed).uniform(low - 2, high + 2, shape)
    near = (np.abs(x - low) < 0.05) | (np.abs(x - high) < 0.05)
    return np.where(near, (low + high) / 2, x)


@pytest.mark.parametrize("low, high", [(-1.0, 2.0), (0.0, 6.0), (0.5, 0.5)])
def test_forward_matches_loop(low, high):
    x = away_from_bounds((2, 3, 4, 5), low, high)
    layer, bottom, top = make_layer(clip_text(low, high), [x])
    (y,) = run_forward(layer, bottom, top)
    expected = np.empty_like(x)
    for i, v in np.ndenumerate(x):
        expected[i] = low if v < low else high if v > high else v
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    layer, bottom, top = make_layer(clip_text(-1.0, 2.0, names), [away_from_bounds((2, 3, 4), -1.0, 2.0, seed=1)])
    assert (top[0] is bottom[0]) == in_place
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("in_place", [False, True])
def test_gradient_passes_at_the_bounds_themselves(in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    layer, bottom, top = make_layer(clip_text(-1.0, 2.0, names), [np.array([-3.0, -1.0, 0.0, 2.0, 2.5])])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, [-1.0, -1.0, 0.0, 2.0, 2.0])
    top[0].grad[...] = 3
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].grad, [0.0, 3.0, 3.0, 3.0, 0.0])


@pytest.mark.parametrize("options, missing", [("min: 0", "max"), ("max: 1", "min"), ("", "min and max")])
def test_min_and_max_are_required(options, missing):
    with pytest.raises(NetError, match=rf"layer 'clip' \(Clip\).*missing {missing}"):
        make_layer(f'name: "clip" type: "Clip" clip_param {{ {options} }}', [np.ones(3)])


def test_no_clip_param_at_all_is_an_error():
    with pytest.raises(NetError, match="clip_param needs both min and max"):
        make_layer('type: "Clip"', [np.ones(3)])


def test_min_above_max_is_an_error():
    with pytest.raises(NetError, match=r"min \(2.0\) is greater than max \(1.0\)"):
        make_layer(clip_text(2.0, 1.0), [np.ones(3)])
