"""Bias: forward against a per-element loop for learned and given biases over axis/num_axes, gradients to all."""

import numpy as np
import pytest

from broadcast_helpers import PLACEMENTS, SHAPE, axis_options, data
from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward

FILLER = 'filler { type: "uniform" min: -1 max: 1 }'
LEARNED = PLACEMENTS + [(2, 0, 0, ())]


def bias_text(axis=None, num_axes=None, filler=FILLER, names='bottom: "x" top: "y"'):
    options = axis_options(axis, num_axes)
    return f'name: "b" type: "Bias" {names} bias_param {{ {options} {filler} }}'


def reference(x, bias, axis):
    y = np.empty_like(x)
    for index, v in np.ndenumerate(x):
        y[index] = v + bias[index[axis:axis + bias.ndim]]
    return y


@pytest.mark.parametrize("axis, num_axes, canonical, bias_shape", LEARNED)
def test_learned_bias_forward_matches_loop(axis, num_axes, canonical, bias_shape):
    x = data(SHAPE)
    layer, bottom, top = make_layer(bias_text(axis, num_axes), [x])
    assert [p.shape for p in layer.params] == [bias_shape]
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, reference(x, layer.params[0].data, canonical), rtol=1e-15)


@pytest.mark.parametrize("axis, bias_shape, canonical", [(None, (3,), 1), (1, (3, 4), 1), (0, (2, 3, 4, 2), 0),
                                                         (-1, (2,), 3), (2, (4, 2), 2), (2, (), 0), (7, (), 0)])
def test_bias_from_second_bottom_forward_matches_loop(axis, bias_shape, canonical):
    x, b = data(SHAPE), data(bias_shape, seed=1)
    # num_axes is ignored when the bias is a bottom: its own shape says how many axes it covers.
    layer, bottom, top = make_layer(bias_text(axis, 3), [x, b])
    assert layer.params == []
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, reference(x, b, canonical), rtol=1e-15)


@pytest.mark.parametrize("axis, num_axes, canonical, bias_shape", LEARNED[:5] + LEARNED[6:8])
@pytest.mark.parametrize("in_place", [False, True])
def test_learned_bias_gradients(axis, num_axes, canonical, bias_shape, in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    layer, bottom, top = make_layer(bias_text(axis, num_axes, names=names), [data((2, 3, 2, 2), seed=2)])
    assert (top[0] is bottom[0]) == in_place
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("axis, bias_shape", [(1, (3,)), (1, (3, 2)), (0, (2,)), (-1, (2,)), (1, ())])
@pytest.mark.parametrize("in_place", [False, True])
def test_second_bottom_gradients(axis, bias_shape, in_place):
    names = 'bottom: "x" bottom: "b" top: "x"' if in_place else 'bottom: "x" bottom: "b" top: "y"'
    layer, bottom, top = make_layer(bias_text(axis, names=names), [data((2, 3, 2, 2), seed=3), data(bias_shape, 4)])
    check_gradients(layer, bottom, top)


def test_grads_param_accumulates_second_bottom_is_assigned_and_propagate_down_is_respected():
    x = data((2, 3))
    layer, bottom, top = make_layer(bias_text(), [x])
    run_forward(layer, bottom, top)
    top[0].grad[...] = [[1, 2, 3], [4, 5, 6]]
    layer.backward(top, [True], bottom)
    layer.backward(top, [False], bottom)
    np.testing.assert_array_equal(layer.params[0].grad, [10, 14, 18])
    np.testing.assert_array_equal(bottom[0].grad, top[0].grad)

    layer, bottom, top = make_layer('type: "Bias"', [x, np.zeros(3)])
    run_forward(layer, bottom, top)
    top[0].grad[...] = [[1, 2, 3], [4, 5, 6]]
    bottom[1].grad[...] = 100
    layer.backward(top, [False, True], bottom)
    np.testing.assert_array_equal(bottom[1].grad, [5, 7, 9])
    bottom[0].grad[...] = -1
    layer.backward(top, [False, False], bottom)
    np.testing.assert_array_equal(bottom[1].grad, [5, 7, 9])
    assert np.all(bottom[0].grad == -1)


def test_default_filler_is_zero_and_params_use_layer_dtype():
    layer, bottom, top = make_layer(bias_text(filler=""), [data((2, 3))], dtype=np.float32)
    assert layer.params[0].data.dtype == np.float32 and not np.any(layer.params[0].data)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32


def test_batch_may_change():
    layer, bottom, top = make_layer(bias_text(num_axes=2), [data((2, 3, 4))])
    bottom[0].reshape(5, 3, 4)
    layer.reshape(bottom, top)
    assert top[0].shape == (5, 3, 4)


@pytest.mark.parametrize("text, bottoms, error, message", [
    (bias_text(num_axes=-2), [np.ones((2, 3))], NetError, "num_axes must be non-negative, or -1"),
    (bias_text(num_axes=3), [np.ones((2, 3))], ShapeError, "extend past"),
    (bias_text(axis=2), [np.ones((2, 3))], ShapeError, "axis 2 out of range"),
    (bias_text(), [np.ones((2, 3)), np.ones(4)], ShapeError, r"operand of shape \(4,\) does not match"),
    (bias_text(), [np.ones((2, 3)), np.ones((3, 2))], ShapeError, "does not match"),
    (bias_text(axis=-3), [np.ones((2, 3)), np.ones(3)], ShapeError, "out of range"),
])
def test_configuration_errors(text, bottoms, error, message):
    with pytest.raises(error, match=rf"layer 'b' \(Bias\).*{message}"):
        make_layer(text, bottoms)


def test_learned_bias_must_keep_matching_the_input():
    layer, bottom, top = make_layer(bias_text(), [np.ones((2, 3))])
    bottom[0].reshape(2, 4)
    with pytest.raises(ShapeError, match="does not match"):
        layer.reshape(bottom, top)
