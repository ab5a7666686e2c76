"""GELU: the vectorized erf against math.erf, forward against per-element formulas, gradients (also in place)."""

import math

import numpy as np
import pytest

from caffelite.layers._erf import erf, erfc
from layer_harness import check_gradients, make_layer, run_forward


def test_erf_and_erfc_match_math_module():
    x = np.concatenate([np.linspace(-30, 30, 24001), np.geomspace(1e-300, 1, 300), -np.geomspace(1e-300, 1, 300),
                        [0.84375, 1.25, 1 / 0.35, 6.0, 28.0, -0.84375, -1.25, -1 / 0.35, -28.0]])
    np.testing.assert_allclose(erf(x), [math.erf(v) for v in x], rtol=1e-15, atol=5e-16)
    # The exp(-x^2) factor costs erfc some relative accuracy only in its far tail.
    np.testing.assert_allclose(erfc(x), [math.erfc(v) for v in x], rtol=2e-13, atol=1e-300)


def test_erf_float32_shapes_and_special_values():
    x = np.linspace(-5, 5, 101, dtype=np.float32).reshape(1, 101)
    y = erf(x)
    assert y.dtype == np.float32 and y.shape == (1, 101)
    np.testing.assert_allclose(y, [[math.erf(v) for v in x.ravel().astype(float)]], atol=1.5e-7)
    np.testing.assert_array_equal(erf(np.array([np.inf, -np.inf, 0.0])), [1.0, -1.0, 0.0])
    assert np.isnan(erf(np.array([np.nan]))[0]) and np.isnan(erfc(np.array([np.nan]))[0])
    np.testing.assert_array_equal(erfc(np.array([np.inf, -np.inf])), [0.0, 2.0])
    assert erf(0.5).shape == () and abs(erf(0.5) - math.erf(0.5)) < 1e-16


def gelu_text(approximate, names='bottom: "x" top: "y"'):
    option = "" if approximate is None else f"gelu_param {{ approximate: {approximate} }}"
    return f'type: "GELU" {names} {option}'


def exact(v):
    return 0.5 * v * (1 + math.erf(v / math.sqrt(2)))


def tanh_form(v):
    return 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))


@pytest.mark.parametrize("approximate, formula", [(None, exact), ("NONE", exact), ("TANH", tanh_form)])
def test_forward_matches_formula(approximate, formula):
    x = np.random.default_rng(0).normal(0, 2, (2, 3, 4, 5))
    layer, bottom, top = make_layer(gelu_text(approximate), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, np.vectorize(formula)(x), rtol=1e-13, atol=1e-15)


def test_tanh_form_is_close_to_the_exact_one():
    x = np.linspace(-6, 6, 241)
    exact_layer, bottom, top = make_layer(gelu_text("NONE"), [x])
    (y_exact,) = run_forward(exact_layer, bottom, top)
    tanh_layer, bottom, top = make_layer(gelu_text("TANH"), [x])
    (y_tanh,) = run_forward(tanh_layer, bottom, top)
    assert 0 < np.abs(y_exact - y_tanh).max() < 1e-3


def test_far_negative_tail_keeps_relative_accuracy():
    layer, bottom, top = make_layer(gelu_text("NONE"), [np.array([-10.0, -20.0])])
    (y,) = run_forward(layer, bottom, top)
    expected = [0.5 * v * math.erfc(-v / math.sqrt(2)) for v in (-10.0, -20.0)]
    np.testing.assert_allclose(y, expected, rtol=1e-12)


@pytest.mark.parametrize("approximate", ["NONE", "TANH"])
@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(approximate, in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    x = np.random.default_rng(1).normal(0, 2, (2, 3, 4))
    layer, bottom, top = make_layer(gelu_text(approximate, names), [x])
    assert (top[0] is bottom[0]) == in_place
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("approximate", ["NONE", "TANH"])
def test_float32_stays_float32(approximate):
    x = np.linspace(-4, 4, 17)
    layer, bottom, top = make_layer(gelu_text(approximate), [x], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    assert y.dtype == np.float32 and bottom[0].grad.dtype == np.float32
    formula = exact if approximate == "NONE" else tanh_form
    np.testing.assert_allclose(y, [formula(v) for v in x], atol=1e-6)
