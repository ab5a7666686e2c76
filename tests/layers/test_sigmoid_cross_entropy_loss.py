"""SigmoidCrossEntropyLoss: against the textbook cross-entropy, normalization modes, ignore_label, gradients."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward


def layer_text(loss_param=""):
    return (f'name: "sce" type: "SigmoidCrossEntropyLoss" bottom: "score" bottom: "target" top: "loss" '
            f'loss_param {{ {loss_param} }}')


def scores_and_targets(shape=(3, 4, 2), seed=0, ignore=None, soft=True):
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 2, shape)
    targets = rng.uniform(0, 1, shape) if soft else rng.integers(0, 2, shape).astype(np.float64)
    if ignore is not None:
        targets.flat[::4] = ignore
    return scores, targets


def reference(scores, targets, ignore, mode):
    total, valid = 0.0, 0
    for x, t in zip(scores.ravel(), targets.ravel()):
        if ignore is not None and int(t) == ignore:
            continue
        p = 1.0 / (1.0 + np.exp(-x))
        total -= t * np.log(p) + (1 - t) * np.log(1 - p)
        valid += 1
    normalizer = {"FULL": scores.size, "VALID": valid, "BATCH_SIZE": scores.shape[0], "NONE": 1}[mode]
    return total / max(1, normalizer)


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, -1])
def test_forward_matches_formula(mode, ignore):
    scores, targets = scores_and_targets(ignore=ignore)
    ignore_text = "" if ignore is None else f"ignore_label: {ignore}"
    layer, bottom, top = make_layer(layer_text(f"normalization: {mode} {ignore_text}"), [scores, targets])
    (loss,) = run_forward(layer, bottom, top)
    assert loss.shape == () and layer.is_loss
    np.testing.assert_allclose(loss, reference(scores, targets, ignore, mode), rtol=1e-12)


@pytest.mark.parametrize("loss_param, mode", [("", "BATCH_SIZE"), ("normalize: true", "VALID"),
                                              ("normalize: false", "BATCH_SIZE"),
                                              ("normalize: true normalization: FULL", "FULL"),
                                              ("normalization: VALID", "VALID")])
def test_default_is_batch_size_and_legacy_normalize(loss_param, mode):
    scores, targets = scores_and_targets(ignore=5)
    layer, bottom, top = make_layer(layer_text(f"ignore_label: 5 {loss_param}"), [scores, targets])
    (loss,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(loss, reference(scores, targets, 5, mode), rtol=1e-12)


def test_targets_of_another_shape_with_the_same_count():
    scores, targets = scores_and_targets(shape=(2, 6))
    layer, bottom, top = make_layer(layer_text(), [scores, targets.reshape(2, 3, 2)])
    (loss,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(loss, reference(scores, targets, None, "BATCH_SIZE"), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_scores_stay_finite(dtype):
    scores = np.array([[1000.0, -1000.0, 1000.0, -1000.0, 0.0]])
    targets = np.array([[1.0, 0.0, 0.0, 1.0, 1.0]])
    layer, bottom, top = make_layer(layer_text(), [scores, targets], dtype=dtype)
    (loss,) = run_forward(layer, bottom, top)
    assert loss.dtype == dtype
    np.testing.assert_allclose(loss, 2000 + np.log(2), rtol=1e-6)
    top[0].grad[...] = 1
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].grad, [[0, 0, 1, -1, -0.5]], atol=1e-7)


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, 1])
def test_gradients(mode, ignore):
    scores, targets = scores_and_targets(shape=(2, 3, 2), seed=2, ignore=ignore, soft=ignore is None)
    ignore_text = "" if ignore is None else f"ignore_label: {ignore}"
    layer, bottom, top = make_layer(layer_text(f"normalization: {mode} {ignore_text}"), [scores, targets])
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_gradient_by_hand_zero_at_ignored_targets():
    scores, targets = np.array([[0.0, 2.0], [-1.0, 3.0]]), np.array([[1.0, 7.0], [0.0, 7.9]])
    layer, bottom, top = make_layer(layer_text("ignore_label: 7 normalization: VALID"), [scores, targets])
    (loss,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(loss, (np.log(2) + np.log1p(np.exp(-1))) / 2, rtol=1e-14)
    top[0].grad[...] = 3.0
    layer.backward(top, [True, False], bottom)
    sigmoid = 1 / (1 + np.exp(-scores))
    expected = np.where(targets.astype(int) == 7, 0, sigmoid - targets) * 3.0 / 2
    np.testing.assert_allclose(bottom[0].grad, expected, rtol=1e-14)


def test_all_ignored_gives_zero():
    scores, _ = scores_and_targets()
    layer, bottom, top = make_layer(layer_text("ignore_label: 3 normalization: VALID"),
                                    [scores, np.full(scores.shape, 3.0)])
    (loss,) = run_forward(layer, bottom, top)
    assert loss == 0
    top[0].grad[...] = 1
    layer.backward(top, [True, False], bottom)
    assert not np.any(bottom[0].grad)


def test_targets_take_no_gradient():
    scores, targets = scores_and_targets()
    layer, bottom, top = make_layer(layer_text(), [scores, targets])
    run_forward(layer, bottom, top)
    with pytest.raises(NetError, match="targets"):
        layer.backward(top, [True, True], bottom)
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)


def test_count_mismatch():
    with pytest.raises(ShapeError, match=r"layer 'sce' \(SigmoidCrossEntropyLoss\).*same count"):
        make_layer(layer_text(), [np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ShapeError, match="first dimension"):
        make_layer(layer_text(), [np.zeros((2, 3)), np.zeros((3, 2))])
