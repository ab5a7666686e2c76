"""EuclideanLoss: against sum((a-b)^2)/(2N) written as a loop, gradients to both bottoms."""

import numpy as np
import pytest

from caffelite.errors import ShapeError
from layer_harness import check_gradients, make_layer, run_forward


def reference(a, b):
    total = 0.0
    for x, y in zip(a.ravel(), b.ravel()):
        total += (x - y) ** 2
    return total / a.shape[0] / 2


@pytest.mark.parametrize("shape_a, shape_b", [((4, 3), (4, 3)), ((2, 3, 2, 2), (2, 12)), ((5, 6, 1, 1), (5, 6))])
def test_forward_matches_loop(shape_a, shape_b):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=shape_a), rng.normal(size=shape_b)
    layer, bottom, top = make_layer('type: "EuclideanLoss"', [a, b])
    (loss,) = run_forward(layer, bottom, top)
    assert loss.shape == () and layer.is_loss
    np.testing.assert_allclose(loss, reference(a, b), rtol=1e-13)


@pytest.mark.parametrize("shape_a, shape_b", [((3, 4), (3, 4)), ((2, 3, 2, 1), (2, 6))])
def test_gradients_to_both_bottoms(shape_a, shape_b):
    rng = np.random.default_rng(1)
    layer, bottom, top = make_layer('type: "EuclideanLoss"', [rng.normal(size=shape_a), rng.normal(size=shape_b)])
    check_gradients(layer, bottom, top)
    assert layer.allow_force_backward(0) and layer.allow_force_backward(1)


def test_gradient_by_hand_with_loss_weight():
    a, b = np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[0.0, 2.0], [4.0, 1.0]])
    layer, bottom, top = make_layer('type: "EuclideanLoss"', [a, b])
    run_forward(layer, bottom, top)
    top[0].grad[...] = 0.5
    layer.backward(top, [True, True], bottom)
    np.testing.assert_allclose(bottom[0].grad, (a - b) * 0.5 / 2)
    np.testing.assert_allclose(bottom[1].grad, -(a - b) * 0.5 / 2)


def test_size_mismatch():
    with pytest.raises(ShapeError, match="EuclideanLoss"):
        make_layer('type: "EuclideanLoss"', [np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ShapeError, match="first dimension"):
        make_layer('type: "EuclideanLoss"', [np.zeros((2, 3)), np.zeros((3, 2))])
