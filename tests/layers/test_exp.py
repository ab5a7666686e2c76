"""Exp: forward against base ** (shift + scale x) per element, gradients by finite differences (also in place)."""

import math

import numpy as np
import pytest

from caffelite.errors import NetError
from layer_harness import check_gradients, make_layer, run_forward

# (base, scale, shift); base -1 means e.
COMBOS = [(-1.0, 1.0, 0.0), (-1.0, 0.5, -1.0), (2.0, 1.0, 0.0), (10.0, -0.75, 0.5), (0.5, 2.0, 1.5), (1.0, 3.0, 2.0)]


def exp_text(base, scale, shift, names='bottom: "x" top: "y"'):
    return f'name: "e" type: "Exp" {names} exp_param {{ base: {base} scale: {scale} shift: {shift} }}'


def f32(value):
    return float(np.float32(value))


@pytest.mark.parametrize("base, scale, shift", COMBOS)
def test_forward_matches_formula(base, scale, shift):
    x = np.random.default_rng(0).uniform(-2, 2, (2, 3, 4))
    layer, bottom, top = make_layer(exp_text(base, scale, shift), [x])
    (y,) = run_forward(layer, bottom, top)
    b = math.e if base == -1 else f32(base)
    expected = np.vectorize(lambda v: b ** (f32(shift) + f32(scale) * v))(x)
    np.testing.assert_allclose(y, expected, rtol=1e-13)


@pytest.mark.parametrize("base, scale, shift", COMBOS)
@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(base, scale, shift, in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    x = np.random.default_rng(1).uniform(-1, 1, (2, 3, 2))
    layer, bottom, top = make_layer(exp_text(base, scale, shift, names), [x])
    assert (top[0] is bottom[0]) == in_place
    check_gradients(layer, bottom, top)


def test_defaults_are_the_natural_exponential():
    x = np.array([-1.0, 0.0, 2.0])
    layer, bottom, top = make_layer('type: "Exp"', [x], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, np.exp(x), rtol=1e-7)


@pytest.mark.parametrize("base", [0.0, -2.0, -0.5, "inf", "nan"])
def test_base_must_be_positive_or_minus_one(base):
    with pytest.raises(NetError, match=r"layer 'e' \(Exp\): base must be strictly positive"):
        make_layer(f'name: "e" type: "Exp" exp_param {{ base: {base} }}', [np.ones(2)])


def test_huge_shift_overflows_to_inf_instead_of_raising():
    layer, bottom, top = make_layer('type: "Exp" exp_param { base: 10 shift: 400 }', [np.array([0.0, -1.0])])
    (y,) = run_forward(layer, bottom, top)
    assert np.all(np.isinf(y))
