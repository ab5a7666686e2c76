"""SmoothL1Loss (Fast R-CNN): against a per-element loop with inside/outside weights and sigma, gradients."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward

NAMES = ("pred", "target", "inside", "outside")


def layer_text(num_bottoms=2, sigma=None):
    bottoms = " ".join(f'bottom: "{name}"' for name in NAMES[:num_bottoms])
    option = "" if sigma is None else f"smooth_l1_loss_param {{ sigma: {sigma} }}"
    return f'name: "sl1" type: "SmoothL1Loss" {bottoms} top: "loss" {option}'


def inputs(num_bottoms, shape=(3, 8), seed=0, sigma=1.0):
    """Prediction, target and weights; each w_in (a - b) kept off the quadratic/linear switch and off 0."""
    rng = np.random.default_rng(seed)
    pred, target = rng.normal(0, 1.5, shape), rng.normal(0, 1.5, shape)
    inside = rng.choice([0.0, 0.5, 1.0, 2.0], shape)
    outside = rng.uniform(0.2, 1.5, shape)
    x = (pred - target) * (inside if num_bottoms > 2 else 1)
    switch = 1 / sigma ** 2
    bad = (np.abs(np.abs(x) - switch) < 0.1 * switch) | ((np.abs(x) < 1e-3) & (x != 0))
    pred[bad] += 0.37 * switch
    return [pred, target, inside, outside][:num_bottoms]


def reference(bottoms, sigma):
    pred, target = bottoms[0], bottoms[1].reshape(bottoms[0].shape)
    weights = [w.reshape(pred.shape) for w in bottoms[2:]]
    sigma2, total = sigma * sigma, 0.0
    for index in np.ndindex(pred.shape):
        x = pred[index] - target[index]
        if weights:
            x *= weights[0][index]
        value = 0.5 * sigma2 * x * x if abs(x) < 1 / sigma2 else abs(x) - 0.5 / sigma2
        if len(weights) > 1:
            value *= weights[1][index]
        total += value
    return total / pred.shape[0]


@pytest.mark.parametrize("num_bottoms", [2, 3, 4])
@pytest.mark.parametrize("sigma", [None, 3.0, 0.5])
def test_forward_matches_loop(num_bottoms, sigma):
    s = 1.0 if sigma is None else sigma
    bottoms = inputs(num_bottoms, sigma=s)
    layer, bottom, top = make_layer(layer_text(num_bottoms, sigma), bottoms)
    (loss,) = run_forward(layer, bottom, top)
    assert loss.shape == () and layer.is_loss
    np.testing.assert_allclose(loss, reference(bottoms, s), rtol=1e-13)


def test_bottoms_of_other_shapes_with_the_same_size_per_item():
    bottoms = inputs(4, shape=(2, 4, 1, 1))
    reshaped = [bottoms[0], bottoms[1].reshape(2, 4), bottoms[2].reshape(2, 2, 2), bottoms[3].reshape(2, 4)]
    (loss,) = run_forward(*make_layer(layer_text(4), reshaped))
    np.testing.assert_allclose(loss, reference(bottoms, 1.0), rtol=1e-13)


@pytest.mark.parametrize("num_bottoms", [2, 3, 4])
@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_gradients_to_prediction_and_target(num_bottoms, sigma):
    bottoms = inputs(num_bottoms, shape=(2, 6), seed=1, sigma=sigma)
    layer, bottom, top = make_layer(layer_text(num_bottoms, sigma), bottoms)
    check_gradients(layer, bottom, top, check_bottom=[0, 1])


def test_gradient_by_hand_scaled_by_loss_weight():
    pred, target = np.array([[0.5, 3.0], [-2.0, 0.0]]), np.zeros((2, 2))
    inside, outside = np.array([[1.0, 1.0], [0.25, 2.0]]), np.array([[2.0, 0.5], [1.0, 1.0]])
    layer, bottom, top = make_layer(layer_text(4), [pred, target, inside, outside])
    (loss,) = run_forward(layer, bottom, top)
    # w_in x = (0.5, 3, -0.5, 0): quadratic, linear, quadratic, quadratic
    np.testing.assert_allclose(loss, (2 * 0.125 + 0.5 * 2.5 + 0.125) / 2, rtol=1e-14)
    top[0].grad[...] = 2.0
    layer.backward(top, [True, True, False, False], bottom)
    expected = np.array([[0.5 * 1 * 2, 1 * 1 * 0.5], [-0.5 * 0.25 * 1, 0]]) * 2.0 / 2
    np.testing.assert_allclose(bottom[0].grad, expected, rtol=1e-14)
    np.testing.assert_allclose(bottom[1].grad, -expected, rtol=1e-14)


def test_weights_take_no_gradient():
    bottoms = inputs(4)
    layer, bottom, top = make_layer(layer_text(4), bottoms)
    run_forward(layer, bottom, top)
    for b in bottom:
        b.grad[...] = 9
    top[0].grad[...] = 1
    layer.backward(top, [False, True, True, True], bottom)
    assert np.all(bottom[0].grad == 9) and np.any(bottom[1].grad != 9)
    assert not np.any(bottom[2].grad) and not np.any(bottom[3].grad)
    assert [layer.allow_force_backward(i) for i in range(4)] == [True, True, False, False]


def test_float32_stays_float32():
    bottoms = inputs(4)
    layer, bottom, top = make_layer(layer_text(4, 2.0), bottoms, dtype=np.float32)
    (loss,) = run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True, True, False, False], bottom)
    assert loss.dtype == np.float32 and bottom[0].grad.dtype == np.float32
    np.testing.assert_allclose(loss, reference([b.astype(np.float32) for b in bottoms], 2.0), rtol=1e-5)


def test_configuration_errors():
    with pytest.raises(NetError, match=r"layer 'sl1' \(SmoothL1Loss\).*sigma"):
        make_layer(layer_text(2, 0), inputs(2))
    with pytest.raises(ShapeError, match=r"bottom\[3\]"):
        make_layer(layer_text(4), inputs(3) + [np.ones((3, 7))])
    with pytest.raises(ShapeError, match=r"bottom\[2\]"):
        make_layer(layer_text(3), inputs(2) + [np.ones((4, 6))])
    with pytest.raises(ShapeError, match="first dimension"):
        make_layer(layer_text(2), [np.zeros((2, 6)), np.zeros((3, 4))])
