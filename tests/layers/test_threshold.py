"""Threshold: forward against a per-element comparison; backward is an error, as Caffe has none."""

import numpy as np
import pytest

from caffelite.errors import NetError
from layer_harness import make_layer, run_forward


@pytest.mark.parametrize("threshold", [None, 0.5, -1.25])
@pytest.mark.parametrize("in_place", [False, True])
def test_forward_matches_loop(threshold, in_place):
    x = np.random.default_rng(0).uniform(-3, 3, (2, 3, 4))
    x[0, 0, :2] = 0.0 if threshold is None else threshold  # equal to the threshold: not above it
    option = "" if threshold is None else f"threshold_param {{ threshold: {threshold} }}"
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    layer, bottom, top = make_layer(f'type: "Threshold" {names} {option}', [x])
    (y,) = run_forward(layer, bottom, top)
    t = 0.0 if threshold is None else threshold
    expected = np.zeros_like(x)
    for i, v in np.ndenumerate(x):
        expected[i] = 1.0 if v > t else 0.0
    np.testing.assert_array_equal(y, expected)
    assert y[0, 0, 0] == 0 and y.dtype == np.float64


def test_backward_into_the_bottom_is_an_error():
    layer, bottom, top = make_layer('name: "th" type: "Threshold"', [np.ones((2, 3))])
    run_forward(layer, bottom, top)
    with pytest.raises(NetError, match=r"layer 'th' \(Threshold\).*no gradient"):
        layer.backward(top, [True], bottom)


def test_backward_without_propagate_down_does_nothing():
    layer, bottom, top = make_layer('type: "Threshold"', [np.ones((2, 3))])
    run_forward(layer, bottom, top)
    bottom[0].grad[...] = 4
    layer.backward(top, [False], bottom)
    assert np.all(bottom[0].grad == 4)
