"""SoftmaxWithLoss: loss against explicit loops for every normalization mode, gradients by finite differences."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward
from softmax_loss_helpers import random_scores_and_labels, reference_softmax_loss

FLT_MIN = np.finfo(np.float32).tiny


def scores_and_labels(shape=(3, 4, 2, 2), axis=1, seed=0, ignore=None):
    return random_scores_and_labels(np.random.default_rng(seed), shape, axis, ignore)


def reference_loss(scores, labels, axis, ignore, mode):
    return reference_softmax_loss(scores, labels, axis, ignore, mode,
                                  lambda prob, label: -np.log(max(prob[label], FLT_MIN)))


def layer_text(extra="", loss_param="", tops='top: "loss"'):
    return (f'type: "SoftmaxWithLoss" bottom: "score" bottom: "label" {tops} '
            f'loss_param {{ {loss_param} }} {extra}')


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, 2])
def test_loss_matches_loops(mode, ignore):
    scores, labels = scores_and_labels(ignore=ignore)
    ignore_text = "" if ignore is None else f"ignore_label: {ignore}"
    layer, bottom, top = make_layer(layer_text(loss_param=f"normalization: {mode} {ignore_text}"),
                                    [scores, labels])
    assert top[0].shape == ()
    (loss,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(loss, reference_loss(scores, labels, 1, ignore, mode), rtol=1e-12)


@pytest.mark.parametrize("loss_param, mode", [("", "VALID"), ("normalize: false", "BATCH_SIZE"),
                                              ("normalize: true", "VALID"),
                                              ("normalize: false normalization: FULL", "FULL")])
def test_default_and_legacy_normalize(loss_param, mode):
    scores, labels = scores_and_labels(ignore=1)
    layer, bottom, top = make_layer(layer_text(loss_param=f"ignore_label: 1 {loss_param}"), [scores, labels])
    (loss,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(loss, reference_loss(scores, labels, 1, 1, mode), rtol=1e-12)


@pytest.mark.parametrize("axis_text, axis", [("axis: 2", 2), ("axis: -1", 3)])
def test_other_class_axis(axis_text, axis):
    scores, labels = scores_and_labels(shape=(2, 3, 4, 3), axis=axis)
    layer, bottom, top = make_layer(layer_text(extra=f"softmax_param {{ {axis_text} }}"), [scores, labels])
    (loss,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(loss, reference_loss(scores, labels, axis, None, "VALID"), rtol=1e-12)


def test_second_top_is_the_probabilities():
    scores, labels = scores_and_labels()
    layer, bottom, top = make_layer(layer_text(tops='top: "loss" top: "prob"'), [scores, labels])
    loss, prob = run_forward(layer, bottom, top)
    assert prob.shape == scores.shape
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(prob, e / e.sum(axis=1, keepdims=True), rtol=1e-13)


def test_underflowing_probability_is_clamped_to_flt_min():
    scores = np.array([[0.0, 200.0]])
    layer, bottom, top = make_layer(layer_text(), [scores, np.array([0.0])], dtype=np.float32)
    (loss,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(loss, -np.log(FLT_MIN), rtol=1e-6)


def test_all_ignored_gives_zero_loss_and_zero_gradient():
    scores, _ = scores_and_labels()
    labels = np.full((3, 2, 2), 7.0)
    layer, bottom, top = make_layer(layer_text(loss_param="ignore_label: 7"), [scores, labels])
    (loss,) = run_forward(layer, bottom, top)
    assert loss == 0
    top[0].grad[...] = 1
    layer.backward(top, [True, False], bottom)
    assert not np.any(bottom[0].grad)


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, 0])
def test_gradients(mode, ignore):
    scores, labels = scores_and_labels(shape=(2, 3, 2, 2), ignore=ignore)
    ignore_text = "" if ignore is None else f"ignore_label: {ignore}"
    layer, bottom, top = make_layer(layer_text(loss_param=f"normalization: {mode} {ignore_text}"),
                                    [scores, labels])
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_gradients_along_last_axis():
    scores, labels = scores_and_labels(shape=(2, 3, 4), axis=2)
    layer, bottom, top = make_layer(layer_text(extra="softmax_param { axis: -1 }"), [scores, labels])
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_gradient_by_hand_scaled_by_loss_weight():
    scores = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]])
    labels = np.array([2.0, 0.0])
    layer, bottom, top = make_layer(layer_text(), [scores, labels])
    run_forward(layer, bottom, top)
    top[0].grad[...] = 3.0
    layer.backward(top, [True, False], bottom)
    e = np.exp(scores)
    expected = e / e.sum(axis=1, keepdims=True)
    expected[[0, 1], [2, 0]] -= 1
    np.testing.assert_allclose(bottom[0].grad, expected * 3.0 / 2, rtol=1e-13)


def test_asking_for_label_gradient_is_an_error():
    scores, labels = scores_and_labels()
    layer, bottom, top = make_layer(layer_text(), [scores, labels])
    run_forward(layer, bottom, top)
    with pytest.raises(NetError, match="labels"):
        layer.backward(top, [True, True], bottom)
    assert layer.is_loss and layer.allow_force_backward(0) and not layer.allow_force_backward(1)


def test_label_count_mismatch_names_the_layer():
    scores, _ = scores_and_labels()
    with pytest.raises(ShapeError, match="layer 'loss' \\(SoftmaxWithLoss\\)"):
        make_layer('name: "loss" ' + layer_text(), [scores, np.zeros((3, 2, 3))])


def test_first_dimension_mismatch():
    with pytest.raises(ShapeError, match="first dimension"):
        make_layer(layer_text(), [np.zeros((4, 3)), np.zeros((2, 2))])


def test_out_of_range_label():
    layer, bottom, top = make_layer(layer_text(), [np.zeros((2, 3)), np.array([1.0, 3.0])])
    with pytest.raises(ShapeError, match="label 3"):
        run_forward(layer, bottom, top)
