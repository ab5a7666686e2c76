"""Sigmoid: forward against the textbook formula, gradients by finite differences (also in place)."""

import warnings

import numpy as np
import pytest

from layer_harness import check_gradients, make_layer, run_forward


def test_forward_matches_formula():
    x = np.random.default_rng(1).normal(0, 3, (2, 3, 4, 5))
    layer, bottom, top = make_layer('type: "Sigmoid"', [x])
    (y,) = run_forward(layer, bottom, top)
    expected = np.vectorize(lambda v: 1.0 / (1.0 + np.exp(-v)))(x)
    np.testing.assert_allclose(y, expected, rtol=1e-13)


def test_extreme_inputs_saturate_without_overflow():
    layer, bottom, top = make_layer('type: "Sigmoid"', [np.array([-1e4, -50.0, 0.0, 50.0, 1e4])],
                                    dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-7)


@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    x = np.random.default_rng(2).normal(0, 2, (2, 3, 4))
    layer, bottom, top = make_layer(f'type: "Sigmoid" {names}', [x])
    check_gradients(layer, bottom, top)
