"""MultinomialLogisticLoss: -log of the labelled probability against a loop, the 1e-20 clamp, gradients."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward

LAYER = 'name: "mll" type: "MultinomialLogisticLoss" bottom: "prob" bottom: "label" top: "loss"'


def probabilities_and_labels(shape=(4, 5), seed=0):
    # Kept well above the clamp, so finite differences see the smooth -log.
    rng = np.random.default_rng(seed)
    prob = rng.uniform(0.05, 1.0, shape)
    labels = rng.integers(0, int(np.prod(shape[1:])), shape[0]).astype(np.float64)
    return prob, labels


def reference(prob, labels):
    total = 0.0
    flat = prob.reshape(prob.shape[0], -1)
    for n in range(prob.shape[0]):
        total -= np.log(max(flat[n, int(labels[n])], 1e-20))
    return total / prob.shape[0]


@pytest.mark.parametrize("shape, label_shape", [((4, 5), (4,)), ((4, 5), (4, 1, 1, 1)), ((3, 2, 2, 2), (3, 1))])
def test_forward_matches_loop(shape, label_shape):
    prob, labels = probabilities_and_labels(shape)
    layer, bottom, top = make_layer(LAYER, [prob, labels.reshape(label_shape)])
    (loss,) = run_forward(layer, bottom, top)
    assert loss.shape == () and layer.is_loss
    np.testing.assert_allclose(loss, reference(prob, labels), rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_zero_probability_is_clamped_at_1e_20(dtype):
    prob = np.array([[0.0, 1.0], [0.5, 0.5]])
    layer, bottom, top = make_layer(LAYER, [prob, np.array([0.0, 1.0])], dtype=dtype)
    (loss,) = run_forward(layer, bottom, top)
    assert loss.dtype == dtype
    np.testing.assert_allclose(loss, (-np.log(1e-20) - np.log(0.5)) / 2, rtol=1e-6)
    top[0].grad[...] = 1
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].grad, [[-0.5 / 1e-20, 0], [0, -0.5 / 0.5]], rtol=1e-6)


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 2, 1)])
def test_gradients(shape):
    prob, labels = probabilities_and_labels(shape, seed=1)
    layer, bottom, top = make_layer(LAYER, [prob, labels])
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_gradient_by_hand_scaled_by_loss_weight():
    prob = np.array([[0.2, 0.8], [0.25, 0.75]])
    layer, bottom, top = make_layer(LAYER, [prob, np.array([1.0, 0.0])])
    run_forward(layer, bottom, top)
    top[0].grad[...] = 3.0
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].grad, [[0, -3.0 / 2 / 0.8], [-3.0 / 2 / 0.25, 0]], rtol=1e-14)


def test_labels_take_no_gradient():
    prob, labels = probabilities_and_labels()
    layer, bottom, top = make_layer(LAYER, [prob, labels])
    run_forward(layer, bottom, top)
    with pytest.raises(NetError, match="labels"):
        layer.backward(top, [True, True], bottom)
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)


def test_bad_inputs():
    with pytest.raises(ShapeError, match=r"layer 'mll' \(MultinomialLogisticLoss\).*one label per item"):
        make_layer(LAYER, [np.full((3, 4), 0.25), np.zeros((3, 2))])
    with pytest.raises(ShapeError, match="first dimension"):
        make_layer(LAYER, [np.full((3, 4), 0.25), np.zeros(2)])
    layer, bottom, top = make_layer(LAYER, [np.full((2, 4), 0.25), np.array([1.0, 4.0])])
    with pytest.raises(ShapeError, match="label 4"):
        run_forward(layer, bottom, top)
