"""TanH: forward against the exponential formula, gradients by finite differences (also in place)."""

import numpy as np
import pytest

from layer_harness import check_gradients, make_layer, run_forward


def test_forward_matches_formula():
    x = np.random.default_rng(1).normal(0, 1.5, (2, 3, 4, 5))
    layer, bottom, top = make_layer('type: "TanH"', [x])
    (y,) = run_forward(layer, bottom, top)
    expected = np.vectorize(lambda v: (np.exp(v) - np.exp(-v)) / (np.exp(v) + np.exp(-v)))(x)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-15)


def test_extreme_inputs_saturate():
    layer, bottom, top = make_layer('type: "TanH"', [np.array([-1e4, 0.0, 1e4])], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, [-1.0, 0.0, 1.0])


@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    x = np.random.default_rng(2).normal(0, 1, (2, 3, 4))
    layer, bottom, top = make_layer(f'type: "TanH" {names}', [x])
    check_gradients(layer, bottom, top)
