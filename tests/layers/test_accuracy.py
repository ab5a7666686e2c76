"""Accuracy: against a per-item loop for top_k, ignore_label, class axis and the per-class top."""

import numpy as np
import pytest

from caffelite.errors import ShapeError
from layer_harness import make_layer, run_forward


def reference(scores, labels, top_k, ignore, axis=1):
    """Loop over items; an item counts when fewer than top_k classes score at least as high as the true one."""
    moved = np.moveaxis(scores, axis, -1)
    classes = moved.shape[-1]
    hits, seen = np.zeros(classes), np.zeros(classes)
    for index in np.ndindex(moved.shape[:-1]):
        label = int(labels[index])
        if label == ignore:
            continue
        row = moved[index]
        better = sum(1 for c in range(classes) if c != label and row[c] >= row[label])
        seen[label] += 1
        hits[label] += better < top_k
    total = hits.sum() / seen.sum() if seen.sum() else 0.0
    per_class = np.array([h / s if s else 0.0 for h, s in zip(hits, seen)])
    return total, per_class


def data(shape=(20, 5), axis=1, seed=0, ignore=None, ties=False):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=shape)
    if ties:
        scores = np.round(scores)  # many equal scores
    label_shape = tuple(d for i, d in enumerate(shape) if i != axis)
    labels = rng.integers(0, shape[axis], label_shape).astype(np.float64)
    if ignore is not None:
        labels.flat[::4] = ignore
    return scores, labels


@pytest.mark.parametrize("top_k", [1, 2, 3, 5])
@pytest.mark.parametrize("ignore", [None, 3, -1])
@pytest.mark.parametrize("ties", [False, True])
def test_matches_loop_with_per_class_top(top_k, ignore, ties):
    scores, labels = data(ignore=ignore, ties=ties)
    ignore_text = "" if ignore is None else f"ignore_label: {ignore}"
    layer, bottom, top = make_layer(
        f'type: "Accuracy" bottom: "s" bottom: "l" top: "acc" top: "per_class" '
        f"accuracy_param {{ top_k: {top_k} {ignore_text} }}",
        [scores, labels],
    )
    accuracy, per_class = run_forward(layer, bottom, top)
    expected, expected_per_class = reference(scores, labels, top_k, ignore)
    assert accuracy.shape == () and per_class.shape == (5,)
    np.testing.assert_allclose(accuracy, expected, rtol=1e-14)
    np.testing.assert_allclose(per_class, expected_per_class, rtol=1e-14)


@pytest.mark.parametrize("axis_text, axis", [("axis: 2", 2), ("axis: -1", 2), ("", 1)])
def test_class_axis(axis_text, axis):
    scores, labels = data(shape=(3, 4, 6), axis=axis, seed=5)
    layer, bottom, top = make_layer(f'type: "Accuracy" accuracy_param {{ {axis_text} top_k: 2 }}',
                                    [scores, labels])
    (accuracy,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(accuracy, reference(scores, labels, 2, None, axis)[0], rtol=1e-14)


def test_by_hand_and_float32():
    scores = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.3, 0.3, 0.4], [0.5, 0.5, 0.0]])
    labels = np.array([1.0, 1.0, 2.0, 1.0])  # hit, miss, hit, tie with class 0 -> miss
    layer, bottom, top = make_layer('type: "Accuracy"', [scores, labels], dtype=np.float32)
    (accuracy,) = run_forward(layer, bottom, top)
    assert accuracy.dtype == np.float32 and accuracy == np.float32(0.5)


def test_everything_ignored_gives_zero():
    scores, _ = data()
    layer, bottom, top = make_layer(
        'type: "Accuracy" top: "a" top: "b" accuracy_param { ignore_label: 4 }', [scores, np.full(20, 4.0)]
    )
    accuracy, per_class = run_forward(layer, bottom, top)
    assert accuracy == 0 and not np.any(per_class)


def test_top_k_above_class_count_is_an_error():
    scores, labels = data()
    with pytest.raises(ShapeError, match="top_k"):
        make_layer('type: "Accuracy" accuracy_param { top_k: 6 }', [scores, labels])


def test_label_count_mismatch():
    with pytest.raises(ShapeError, match="labels"):
        make_layer('type: "Accuracy"', [np.zeros((4, 3)), np.zeros(3)])


def test_not_a_loss_and_no_gradient():
    scores, labels = data()
    layer, bottom, top = make_layer('type: "Accuracy"', [scores, labels])
    assert not layer.is_loss
    run_forward(layer, bottom, top)
    bottom[0].grad[...] = 5
    top[0].grad[...] = 1
    layer.backward(top, [True, False], bottom)
    assert not np.any(bottom[0].grad)
