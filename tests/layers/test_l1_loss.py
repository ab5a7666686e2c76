"""L1Loss (caffelite addition): sum|a - b| / N against a loop, gradients to both bottoms away from a == b."""

import numpy as np
import pytest

from caffelite.errors import ShapeError
from layer_harness import check_gradients, make_layer, run_forward

LAYER = 'name: "l1" type: "L1Loss" bottom: "a" bottom: "b" top: "loss"'


def pair(shape_a, shape_b, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=shape_a), rng.normal(size=shape_b)
    # |a - b| bends at 0: keep every difference well away from it.
    diff = a - b.reshape(a.shape)
    a[np.abs(diff) < 0.05] += 0.2
    return a, b


def reference(a, b):
    total = 0.0
    for x, y in zip(a.ravel(), b.ravel()):
        total += abs(x - y)
    return total / a.shape[0]


@pytest.mark.parametrize("shape_a, shape_b", [((4, 3), (4, 3)), ((2, 3, 2, 2), (2, 12)), ((5,), (5, 1))])
def test_forward_matches_loop(shape_a, shape_b):
    a, b = pair(shape_a, shape_b)
    layer, bottom, top = make_layer(LAYER, [a, b])
    (loss,) = run_forward(layer, bottom, top)
    assert loss.shape == () and layer.is_loss
    np.testing.assert_allclose(loss, reference(a, b), rtol=1e-13)


@pytest.mark.parametrize("shape_a, shape_b", [((3, 4), (3, 4)), ((2, 3, 2, 1), (2, 6))])
def test_gradients_to_both_bottoms(shape_a, shape_b):
    layer, bottom, top = make_layer(LAYER, list(pair(shape_a, shape_b, seed=1)))
    check_gradients(layer, bottom, top)
    assert layer.allow_force_backward(0) and layer.allow_force_backward(1)


def test_gradient_by_hand_with_loss_weight():
    a, b = np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[0.0, 2.0], [4.0, 1.0]])
    layer, bottom, top = make_layer(LAYER, [a, b])
    (loss,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(loss, (1 + 0 + 1 + 4) / 2)
    top[0].grad[...] = 0.5
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].grad, [[0.25, 0.0], [-0.25, 0.25]])
    layer.backward(top, [False, True], bottom)
    np.testing.assert_allclose(bottom[1].grad, [[-0.25, 0.0], [0.25, -0.25]])


def test_float32_stays_float32():
    a, b = pair((3, 4), (3, 4))
    layer, bottom, top = make_layer(LAYER, [a, b], dtype=np.float32)
    (loss,) = run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True, True], bottom)
    assert loss.dtype == np.float32 and bottom[1].grad.dtype == np.float32
    np.testing.assert_allclose(loss, reference(a, b), rtol=1e-5)


def test_size_mismatch():
    with pytest.raises(ShapeError, match=r"layer 'l1' \(L1Loss\)"):
        make_layer(LAYER, [np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ShapeError, match="first dimension"):
        make_layer(LAYER, [np.zeros((2, 3)), np.zeros((3, 2))])
