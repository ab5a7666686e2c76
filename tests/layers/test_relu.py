"""ReLU: forward against a per-element loop, gradients by finite differences (also in place)."""

import numpy as np
import pytest

import caffelite.layers._threads as threads
import caffelite.layers.relu as relu_module
from layer_harness import check_gradients, make_layer, run_forward


def away_from_zero(shape, seed=0):
    # Finite differences straddling the kink at 0 would be meaningless.
    x = np.random.default_rng(seed).uniform(-2, 2, shape)
    return np.where(np.abs(x) < 0.05, 0.5, x)


def reference(x, slope):
    y = np.empty_like(x)
    for i, v in np.ndenumerate(x):
        y[i] = v if v > 0 else slope * v
    return y


@pytest.mark.parametrize("slope", [0.0, 0.1, 2.0])
def test_forward_matches_loop(slope):
    x = away_from_zero((2, 3, 4, 5))
    layer, bottom, top = make_layer(f'type: "ReLU" relu_param {{ negative_slope: {slope} }}', [x])
    (y,) = run_forward(layer, bottom, top)
    # negative_slope is a float field: the layer sees float32(slope), even in a float64 net (as Caffe does).
    np.testing.assert_allclose(y, reference(x, float(np.float32(slope))), rtol=1e-15)


@pytest.mark.parametrize("slope", [0.0, 0.3])
@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(slope, in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    layer, bottom, top = make_layer(
        f'type: "ReLU" {names} relu_param {{ negative_slope: {slope} }}', [away_from_zero((2, 3, 4))]
    )
    assert (top[0] is bottom[0]) == in_place
    check_gradients(layer, bottom, top)


def test_float32_stays_float32_and_zero_maps_to_zero():
    layer, bottom, top = make_layer('type: "ReLU" relu_param { negative_slope: 0.5 }',
                                    [np.array([-2.0, 0.0, 3.0])], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [-1.0, 0.0, 3.0])
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    # Caffe's derivative at exactly 0 is the negative slope.
    np.testing.assert_array_equal(bottom[0].grad, [0.5, 0.5, 1.0])


def test_propagate_down_false_leaves_bottom_grad_alone():
    layer, bottom, top = make_layer('type: "ReLU"', [away_from_zero((3, 2))])
    run_forward(layer, bottom, top)
    bottom[0].grad[...] = 7
    top[0].grad[...] = 1
    layer.backward(top, [False], bottom)
    assert np.all(bottom[0].grad == 7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("in_place", [False, True])
def test_forward_in_chunks_gives_the_bits_of_max_with_zero(dtype, in_place, monkeypatch):
    """The forward takes the maximum against a shared chunk of zeros, chunk by chunk: the last chunk short, NaN,
    infinities and zeros of both signs as np.maximum(x, 0) gives them, on one thread and on several."""
    monkeypatch.setattr(relu_module, "_CHUNK", 16)
    monkeypatch.setattr(relu_module, "_zeros", {})
    x = np.random.default_rng(3).normal(size=(3, 5, 7))
    x.reshape(-1)[:8] = [-0.0, 0.0, np.nan, -np.nan, np.inf, -np.inf, -1e-30, 1e-30]
    x = x.astype(dtype)
    expected = np.maximum(x, 0)
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    for minimum in (threads.ELEMENTWISE_MIN_ELEMENTS, 0):
        monkeypatch.setattr(threads, "ELEMENTWISE_MIN_ELEMENTS", minimum)
        layer, bottom, top = make_layer(f'name: "r" type: "ReLU" {names}', [x], dtype=dtype)
        (y,) = run_forward(layer, bottom, top)
        bits = np.uint32 if dtype == np.float32 else np.uint64
        np.testing.assert_array_equal(y.view(bits), expected.view(bits))
    # A strided view (no flat slices) is rectified whole.
    y = np.empty_like(x)[:, ::2]
    relu_module._rectify(x[:, ::2], y)
    np.testing.assert_array_equal(y, expected[:, ::2])
