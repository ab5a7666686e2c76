"""PReLU: forward against a per-element loop, gradients on the input and the slopes (also in place), Caffe's blobs."""

import numpy as np
import pytest

from caffelite.errors import ShapeError
from layer_harness import check_gradients, make_layer, run_forward

FILLER = 'filler { type: "uniform" min: -0.5 max: 1.5 }'


def prelu_text(shared=False, filler=FILLER, names='bottom: "x" top: "y"'):
    return (f'name: "pr" type: "PReLU" {names} '
            f'prelu_param {{ channel_shared: {str(shared).lower()} {filler} }}')


def away_from_zero(shape, seed=0):
    x = np.random.default_rng(seed).uniform(-2, 2, shape)
    return np.where(np.abs(x) < 0.05, -0.5, x)


def reference(x, slopes, shared):
    y = np.empty_like(x)
    for index, v in np.ndenumerate(x):
        a = slopes[()] if shared else slopes[index[1]]
        y[index] = v if v > 0 else a * v
    return y


@pytest.mark.parametrize("shape", [(2, 3), (2, 3, 4), (2, 3, 2, 2), (1, 2, 2, 1, 3)])
@pytest.mark.parametrize("shared", [False, True])
def test_forward_matches_loop(shape, shared):
    x = away_from_zero(shape)
    layer, bottom, top = make_layer(prelu_text(shared), [x])
    assert [p.shape for p in layer.params] == [() if shared else (shape[1],)]
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, reference(x, layer.params[0].data, shared), rtol=1e-15)


def test_default_filler_is_a_quarter():
    layer, bottom, top = make_layer(prelu_text(filler=""), [np.array([[-4.0, 8.0, -1.0]]).reshape(1, 3, 1)])
    np.testing.assert_array_equal(layer.params[0].data, [0.25, 0.25, 0.25])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y.ravel(), [-1.0, 8.0, -0.25])


def test_explicit_filler_is_used():
    layer, _, _ = make_layer(prelu_text(shared=True, filler='filler { type: "constant" value: -0.3 }'),
                             [np.ones((2, 4))], dtype=np.float32)
    assert layer.params[0].data.dtype == np.float32
    np.testing.assert_array_equal(layer.params[0].data, np.float32(-0.3))


@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(shared, in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    layer, bottom, top = make_layer(prelu_text(shared, names=names), [away_from_zero((2, 3, 2, 2), seed=1)])
    assert (top[0] is bottom[0]) == in_place
    check_gradients(layer, bottom, top)


def test_in_place_backward_uses_the_saved_input():
    x = away_from_zero((2, 3, 4), seed=2)
    grads = []
    for names in ('bottom: "x" top: "y"', 'bottom: "x" top: "x"'):
        layer, bottom, top = make_layer(prelu_text(names=names), [x])
        run_forward(layer, bottom, top)
        top[0].grad[...] = np.arange(x.size).reshape(x.shape) % 5 - 2.0
        layer.backward(top, [True], bottom)
        grads.append((bottom[0].grad.copy(), layer.params[0].grad.copy()))
    for separate, in_place in zip(*grads):
        np.testing.assert_array_equal(separate, in_place)


def test_zero_input_counts_as_negative_and_slope_grads_accumulate():
    layer, bottom, top = make_layer(prelu_text(filler='filler { type: "constant" value: 0.5 }'),
                                    [np.array([[0.0, -2.0], [3.0, -1.0]]).reshape(2, 2, 1)])
    run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].grad.ravel(), [0.5, 0.5, 1.0, 0.5])
    np.testing.assert_array_equal(layer.params[0].grad, [0.0, -3.0])
    bottom[0].grad[...] = 9
    layer.backward(top, [False], bottom)
    np.testing.assert_array_equal(layer.params[0].grad, [0.0, -6.0])
    assert np.all(bottom[0].grad == 9)


def test_input_needs_two_axes():
    with pytest.raises(ShapeError, match=r"layer 'pr' \(PReLU\).*at least 2 axes"):
        make_layer(prelu_text(), [np.ones(4)])


def test_channel_count_may_not_change():
    layer, bottom, top = make_layer(prelu_text(), [np.ones((2, 3, 4))])
    bottom[0].reshape(5, 3, 7)
    layer.reshape(bottom, top)
    assert top[0].shape == (5, 3, 7)
    bottom[0].reshape(2, 4, 4)
    with pytest.raises(ShapeError, match="3 slopes for 4 channels"):
        layer.reshape(bottom, top)
