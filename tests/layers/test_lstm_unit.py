"""LSTMUnit: forward against the per-unit formulas, gradients on c_prev and the gate inputs, cont handling
(Caffe's forget-gate derivative for non-binary cont), shape errors."""

import math

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward

UNIT = 'name: "unit" type: "LSTMUnit" bottom: "c_prev" bottom: "x" bottom: "cont" top: "c" top: "h"'


def logistic(v):
    return 1.0 / (1.0 + math.exp(-v))


def reference(c_prev, x, cont):
    """Each unit d of stream n: gates i, f, o, g at x[d], x[D + d], x[2D + d], x[3D + d]."""
    _, streams, dim = c_prev.shape
    c, h = np.zeros_like(c_prev), np.zeros_like(c_prev)
    for n in range(streams):
        for d in range(dim):
            i = logistic(x[0, n, d])
            f = logistic(x[0, n, dim + d])
            o = logistic(x[0, n, 2 * dim + d])
            g = math.tanh(x[0, n, 3 * dim + d])
            c[0, n, d] = cont[0, n] * f * c_prev[0, n, d] + i * g
            h[0, n, d] = o * math.tanh(c[0, n, d])
    return c, h


def bottoms(streams=3, dim=4, cont=(1, 0, 1), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (1, streams, dim)), rng.uniform(-1, 1, (1, streams, 4 * dim)),
            np.array([cont], dtype=float)]


@pytest.mark.parametrize("cont", [(1, 0, 1), (0, 0, 0), (1, 1, 1), (0.5, 2.0, -1.0)])
def test_forward_matches_formulas(cont):
    data = bottoms(cont=cont)
    layer, bottom, top = make_layer(UNIT, data)
    c, h = run_forward(layer, bottom, top)
    expected_c, expected_h = reference(*data)
    np.testing.assert_allclose(c, expected_c, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h, expected_h, rtol=1e-12, atol=1e-15)
    assert top[0].shape == top[1].shape == (1, 3, 4)


@pytest.mark.parametrize("cont", [(1, 0, 1), (0, 0, 0), (1, 1, 1)])
def test_gradients(cont):
    layer, bottom, top = make_layer(UNIT, bottoms(cont=cont))
    check_gradients(layer, bottom, top, check_bottom=[0, 1])


def test_zero_cont_blocks_the_previous_cell():
    data = bottoms(cont=(0, 1, 0))
    layer, bottom, top = make_layer(UNIT, data)
    run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    top[1].grad[...] = 1
    layer.backward(top, [True, True, False], bottom)
    dim = 4
    assert np.all(bottom[0].grad[0, [0, 2]] == 0) and np.all(bottom[0].grad[0, 1] != 0)
    assert np.all(bottom[1].grad[0, [0, 2], dim : 2 * dim] == 0)


def test_non_binary_cont_uses_caffes_forget_gate_derivative():
    # Caffe writes d f / d f' as f (1 - f) with f = cont * sigmoid(f'), which is exact only for binary cont.
    data = bottoms(streams=1, dim=1, cont=(0.5,))
    layer, bottom, top = make_layer(UNIT, data)
    run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    top[1].grad[...] = 0
    layer.backward(top, [True, True, False], bottom)
    c_prev, x = data[0][0, 0, 0], data[1][0, 0]
    f = 0.5 * logistic(x[1])
    np.testing.assert_allclose(bottom[1].grad[0, 0, 1], c_prev * f * (1 - f), rtol=1e-12)
    np.testing.assert_allclose(bottom[0].grad[0, 0, 0], f, rtol=1e-12)


def test_propagate_down_is_respected_and_grads_are_assigned():
    layer, bottom, top = make_layer(UNIT, bottoms())
    run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    top[1].grad[...] = -1
    for b in bottom:
        b.grad[...] = 9
    layer.backward(top, [False, True, False], bottom)
    assert np.all(bottom[0].grad == 9) and not np.any(bottom[1].grad == 9)
    first = bottom[1].grad.copy()
    layer.backward(top, [True, True, False], bottom)
    np.testing.assert_array_equal(bottom[1].grad, first)
    assert not np.any(bottom[0].grad == 9) and np.all(bottom[2].grad == 9)


def test_no_gradient_to_cont():
    layer, bottom, top = make_layer(UNIT, bottoms())
    run_forward(layer, bottom, top)
    assert [layer.allow_force_backward(i) for i in range(3)] == [True, True, False]
    with pytest.raises(NetError, match="continuation"):
        layer.backward(top, [True, True, True], bottom)


def test_float32_stays_float32():
    layer, bottom, top = make_layer(UNIT, bottoms(), dtype=np.float32)
    c, h = run_forward(layer, bottom, top)
    assert c.dtype == h.dtype == np.float32
    expected_c, expected_h = reference(*bottoms())
    np.testing.assert_allclose(h, expected_h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "shapes, match",
    [
        (((1, 3, 4), (1, 3, 15), (1, 3)), "4 \\* 4"),
        (((2, 3, 4), (2, 3, 16), (2, 3)), "1 time step"),
        (((1, 3, 4), (1, 2, 16), (1, 3)), "same number of streams"),
        (((1, 3, 4), (1, 3, 16), (1, 3, 1)), "cont \\(1, N\\)"),
        (((3, 4), (1, 3, 16), (1, 3)), "c_prev \\(1, N, D\\)"),
    ],
)
def test_shape_errors(shapes, match):
    with pytest.raises(ShapeError, match=match):
        make_layer(UNIT, [np.zeros(s) for s in shapes])


def test_blob_counts():
    with pytest.raises(NetError, match="expects 3 bottoms"):
        make_layer(UNIT, [np.zeros((1, 3, 4)), np.zeros((1, 3, 16))])
    with pytest.raises(NetError, match="expects 2 tops"):
        make_layer(UNIT.replace(' top: "h"', ""), bottoms())
