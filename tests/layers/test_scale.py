"""Scale: forward against a per-element loop for learned and given scales (with and without bias), gradients to all."""

import numpy as np
import pytest

from broadcast_helpers import PLACEMENTS, SHAPE, axis_options, data
from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward

FILLERS = 'filler { type: "uniform" min: -2 max: 2 } bias_filler { type: "uniform" min: -1 max: 1 }'


def scale_text(axis=None, num_axes=None, bias_term=False, fillers=FILLERS, names='bottom: "x" top: "y"'):
    options = axis_options(axis, num_axes)
    options += f"bias_term: {str(bias_term).lower()} {fillers}"
    return f'name: "s" type: "Scale" {names} scale_param {{ {options} }}'


def reference(x, scale, axis, bias=None):
    y = np.empty_like(x)
    for index, v in np.ndenumerate(x):
        operand = index[axis:axis + scale.ndim]
        y[index] = v * scale[operand] + (0 if bias is None else bias[operand])
    return y


@pytest.mark.parametrize("axis, num_axes, canonical, scale_shape", PLACEMENTS)
@pytest.mark.parametrize("bias_term", [False, True])
def test_learned_scale_forward_matches_loop(axis, num_axes, canonical, scale_shape, bias_term):
    x = data(SHAPE)
    layer, bottom, top = make_layer(scale_text(axis, num_axes, bias_term), [x])
    # Caffe's blob order: the scale, then the bias of the same shape.
    assert [p.shape for p in layer.params] == [scale_shape] * (1 + bias_term)
    (y,) = run_forward(layer, bottom, top)
    bias = layer.params[1].data if bias_term else None
    np.testing.assert_allclose(y, reference(x, layer.params[0].data, canonical, bias), rtol=1e-14)


@pytest.mark.parametrize("axis, scale_shape, canonical", [(None, (3,), 1), (1, (3, 4), 1), (0, (2, 3, 4, 2), 0),
                                                          (-1, (2,), 3), (2, (4, 2), 2), (1, (), 0)])
@pytest.mark.parametrize("bias_term", [False, True])
def test_scale_from_second_bottom_forward_matches_loop(axis, scale_shape, canonical, bias_term):
    x, s = data(SHAPE), data(scale_shape, seed=1)
    layer, bottom, top = make_layer(scale_text(axis, 3, bias_term), [x, s])
    # The only param is the bias, covering as many axes as the scale bottom.
    assert [p.shape for p in layer.params] == [scale_shape] * bias_term
    (y,) = run_forward(layer, bottom, top)
    bias = layer.params[0].data if bias_term else None
    np.testing.assert_allclose(y, reference(x, s, canonical, bias), rtol=1e-14)


@pytest.mark.parametrize("axis, num_axes, canonical, scale_shape", PLACEMENTS[:5] + PLACEMENTS[6:])
@pytest.mark.parametrize("bias_term", [False, True])
@pytest.mark.parametrize("in_place", [False, True])
def test_learned_scale_gradients(axis, num_axes, canonical, scale_shape, bias_term, in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    layer, bottom, top = make_layer(scale_text(axis, num_axes, bias_term, names=names), [data((2, 3, 2, 2), 2)])
    assert (top[0] is bottom[0]) == in_place
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("axis, scale_shape", [(1, (3,)), (1, (3, 2)), (0, (2,)), (-1, (2,)), (1, ()),
                                               (0, (2, 3, 2, 2))])
@pytest.mark.parametrize("bias_term", [False, True])
@pytest.mark.parametrize("in_place", [False, True])
def test_second_bottom_gradients(axis, scale_shape, bias_term, in_place):
    names = 'bottom: "x" bottom: "s" top: "x"' if in_place else 'bottom: "x" bottom: "s" top: "y"'
    layer, bottom, top = make_layer(scale_text(axis, bias_term=bias_term, names=names),
                                    [data((2, 3, 2, 2), seed=3), data(scale_shape, seed=4)])
    check_gradients(layer, bottom, top)


def test_default_fillers_give_the_identity_and_params_use_layer_dtype():
    x = data((2, 3, 2))
    layer, bottom, top = make_layer(scale_text(bias_term=True, fillers=""), [x], dtype=np.float32)
    assert all(p.data.dtype == np.float32 for p in layer.params)
    np.testing.assert_array_equal(layer.params[0].data, [1, 1, 1])
    np.testing.assert_array_equal(layer.params[1].data, [0, 0, 0])
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x.astype(np.float32))


def test_explicit_filler_replaces_the_default():
    layer, _, _ = make_layer(scale_text(fillers='filler { type: "constant" value: 3 }'), [data((2, 3))])
    np.testing.assert_array_equal(layer.params[0].data, [3, 3, 3])


def test_grads_params_accumulate_second_bottom_is_assigned_and_propagate_down_is_respected():
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    fillers = 'filler { type: "constant" value: 2 } bias_filler { type: "constant" value: 1 }'
    layer, bottom, top = make_layer(scale_text(bias_term=True, fillers=fillers), [x])
    run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].grad, np.full((2, 3), 2.0))
    bottom[0].grad[...] = 7
    layer.backward(top, [False], bottom)
    np.testing.assert_array_equal(layer.params[0].grad, [10, 14, 18])
    np.testing.assert_array_equal(layer.params[1].grad, [4, 4, 4])
    assert np.all(bottom[0].grad == 7)

    layer, bottom, top = make_layer('type: "Scale"', [x, np.array([1.0, 2.0, 3.0])])
    run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    bottom[1].grad[...] = 100
    layer.backward(top, [False, True], bottom)
    np.testing.assert_array_equal(bottom[1].grad, [5, 7, 9])
    bottom[1].grad[...] = 100
    layer.backward(top, [True, False], bottom)
    assert np.all(bottom[1].grad == 100)
    np.testing.assert_array_equal(bottom[0].grad, [[1, 2, 3], [1, 2, 3]])


def test_in_place_matches_separate_top():
    x = data((2, 3, 2), seed=5)
    results = []
    for names in ('bottom: "x" top: "y"', 'bottom: "x" top: "x"'):
        layer, bottom, top = make_layer(scale_text(bias_term=True, names=names), [x])
        (y,) = run_forward(layer, bottom, top)
        top[0].grad[...] = data(x.shape, seed=6)
        layer.backward(top, [True], bottom)
        results.append([y, bottom[0].grad.copy()] + [p.grad.copy() for p in layer.params])
    for separate, in_place in zip(*results):
        np.testing.assert_array_equal(separate, in_place)


@pytest.mark.parametrize("text, bottoms, error, message", [
    (scale_text(num_axes=-2), [np.ones((2, 3))], NetError, "num_axes must be non-negative, or -1"),
    (scale_text(num_axes=3), [np.ones((2, 3))], ShapeError, "extend past"),
    (scale_text(axis=2, num_axes=0), [np.ones((2, 3))], ShapeError, "axis 2 out of range"),
    (scale_text(), [np.ones((2, 3)), np.ones(4)], ShapeError, r"operand of shape \(4,\) does not match"),
    (scale_text(axis=0), [np.ones((2, 3)), np.ones(3)], ShapeError, "does not match"),
    (scale_text(), [np.ones((2, 3)), np.ones((3, 1))], ShapeError, "does not match"),
])
def test_configuration_errors(text, bottoms, error, message):
    with pytest.raises(error, match=rf"layer 's' \(Scale\).*{message}"):
        make_layer(text, bottoms)


def test_scale_bottom_may_change_shape_with_the_input():
    layer, bottom, top = make_layer(scale_text(axis=0), [np.ones((2, 3)), np.ones(2)])
    bottom[0].reshape(4, 3)
    bottom[1].reshape(4)
    layer.reshape(bottom, top)
    assert top[0].shape == (4, 3)


def test_in_place_backward_takes_the_input_of_the_last_forward_in_any_shape():
    """The in-place input copy is a buffer of the layer's own, refilled by every forward and remade for a new
    shape."""
    fillers = 'filler { type: "uniform" min: -2 max: 2 } bias_filler { type: "constant" value: 0.5 }'
    layer, bottom, top = make_layer(scale_text(bias_term=True, fillers=fillers, names='bottom: "x" top: "x"'),
                                    [data((2, 3, 2))])
    scale = layer.params[0].data.copy()
    for shape, seed in [((2, 3, 2), 1), ((2, 3, 2), 2), ((4, 3, 5), 3)]:
        x = data(shape, seed)
        bottom[0].reshape(*shape)
        bottom[0].data[...] = x
        (y,) = run_forward(layer, bottom, top)
        np.testing.assert_allclose(y, x * scale[:, None] + 0.5, rtol=1e-15)
        dy = data(shape, seed + 10)
        top[0].grad[...] = dy
        for p in layer.params:
            p.grad[...] = 0
        layer.backward(top, [True], bottom)
        np.testing.assert_allclose(layer.params[0].grad, (dy * x).sum(axis=(0, 2)), rtol=1e-13)
        np.testing.assert_allclose(layer.params[1].grad, dy.sum(axis=(0, 2)), rtol=1e-13)
        np.testing.assert_allclose(bottom[0].grad, dy * scale[:, None], rtol=1e-15)


@pytest.mark.parametrize("shape", [(3, 5, 700), (40, 6, 1), (1, 4, 9)])
def test_float32_gradients_match_float64_sums(shape):
    """Row sums over the inner axis, then over the outer rows, in float32: within float32 rounding of float64's."""
    x, dy = data(shape, 4), data(shape, 5)
    layer, bottom, top = make_layer(scale_text(bias_term=True), [x], dtype=np.float32)
    run_forward(layer, bottom, top)
    top[0].grad[...] = dy
    layer.backward(top, [True], bottom)
    x32, dy32 = x.astype(np.float32).astype(np.float64), dy.astype(np.float32).astype(np.float64)
    assert layer.params[0].grad.dtype == np.float32
    np.testing.assert_allclose(layer.params[0].grad, (dy32 * x32).sum(axis=(0, 2)), rtol=2e-5, atol=1e-4)
    np.testing.assert_allclose(layer.params[1].grad, dy32.sum(axis=(0, 2)), rtol=2e-5, atol=1e-4)
    expected = dy32 * layer.params[0].data.astype(np.float64)[:, None]
    np.testing.assert_allclose(bottom[0].grad, expected, rtol=1e-6)
