"""HingeLoss: one-versus-all hinge (L1 and L2) against loops, gradients away from the margin kinks."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward


def layer_text(norm=None):
    option = "" if norm is None else f"hinge_loss_param {{ norm: {norm} }}"
    return f'name: "hinge" type: "HingeLoss" bottom: "score" bottom: "label" top: "loss" {option}'


def scores_and_labels(shape=(5, 4), seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.uniform(-3, 3, shape)
    # The hinge bends where a score is +-1; keep finite differences off those points.
    near = np.abs(np.abs(scores) - 1) < 0.1
    scores[near] = np.sign(scores[near]) * 1.5
    labels = rng.integers(0, int(np.prod(shape[1:])), shape[0]).astype(np.float64)
    return scores, labels


def reference(scores, labels, power):
    flat = scores.reshape(scores.shape[0], -1)
    total = 0.0
    for n in range(flat.shape[0]):
        for k in range(flat.shape[1]):
            t = 1.0 if k == int(labels[n]) else -1.0
            total += max(0.0, 1.0 - t * flat[n, k]) ** power
    return total / flat.shape[0]


@pytest.mark.parametrize("norm, power", [(None, 1), ("L1", 1), ("L2", 2)])
@pytest.mark.parametrize("shape", [(5, 4), (3, 2, 2, 2)])
def test_forward_matches_loop(norm, power, shape):
    scores, labels = scores_and_labels(shape)
    layer, bottom, top = make_layer(layer_text(norm), [scores, labels])
    (loss,) = run_forward(layer, bottom, top)
    assert loss.shape == () and layer.is_loss
    np.testing.assert_allclose(loss, reference(scores, labels, power), rtol=1e-13)


@pytest.mark.parametrize("norm", ["L1", "L2"])
@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 2, 1)])
def test_gradients(norm, shape):
    scores, labels = scores_and_labels(shape, seed=1)
    layer, bottom, top = make_layer(layer_text(norm), [scores, labels.reshape(-1, 1)])
    check_gradients(layer, bottom, top, check_bottom=[0])


@pytest.mark.parametrize("norm, expected", [
    # item 0, label 1: slack (1.5, 0, 0) -> L1 grad (+1, 0, 0), L2 grad 2*(1.5, 0, 0); item 1, label 0: (0.5, 2, 0)
    ("L1", [[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0]]),
    ("L2", [[3.0, 0.0, 0.0], [-1.0, 4.0, 0.0]]),
])
def test_gradient_by_hand_scaled_by_loss_weight(norm, expected):
    scores = np.array([[0.5, 2.0, -3.0], [0.5, 1.0, -1.5]])
    layer, bottom, top = make_layer(layer_text(norm), [scores, np.array([1.0, 0.0])])
    run_forward(layer, bottom, top)
    top[0].grad[...] = 4.0
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].grad, np.array(expected) * 4.0 / 2, rtol=1e-14)


def test_float32_stays_float32():
    scores, labels = scores_and_labels()
    layer, bottom, top = make_layer(layer_text("L2"), [scores, labels], dtype=np.float32)
    (loss,) = run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True, False], bottom)
    assert loss.dtype == np.float32 and bottom[0].grad.dtype == np.float32
    np.testing.assert_allclose(loss, reference(scores.astype(np.float32), labels, 2), rtol=1e-5)


def test_labels_take_no_gradient():
    scores, labels = scores_and_labels()
    layer, bottom, top = make_layer(layer_text(), [scores, labels])
    run_forward(layer, bottom, top)
    with pytest.raises(NetError, match="labels"):
        layer.backward(top, [True, True], bottom)
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)


def test_bad_inputs():
    with pytest.raises(ShapeError, match=r"layer 'hinge' \(HingeLoss\).*one label per item"):
        make_layer(layer_text(), [np.zeros((3, 4)), np.zeros((3, 4))])
    with pytest.raises(ShapeError, match="first dimension"):
        make_layer(layer_text(), [np.zeros((3, 4)), np.zeros(4)])
    layer, bottom, top = make_layer(layer_text(), [np.zeros((2, 4)), np.array([0.0, -1.0])])
    with pytest.raises(ShapeError, match="label -1"):
        run_forward(layer, bottom, top)
