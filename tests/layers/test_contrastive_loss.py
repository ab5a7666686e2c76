"""ContrastiveLoss: against a per-pair loop (both versions), Caffe's 1e-4 in the gradient, finite differences."""

import numpy as np
import pytest

from caffelite.errors import ShapeError
from layer_harness import check_gradients, make_layer, run_forward


def layer_text(margin=None, legacy=None):
    options = ("" if margin is None else f"margin: {margin} ") + ("" if legacy is None else f"legacy_version: {legacy}")
    return (f'name: "contrastive" type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "y" top: "loss" '
            f'contrastive_loss_param {{ {options} }}')


def pairs(num=6, channels=3, seed=0, margin=1.0, legacy=False):
    """Random pairs, half similar; dissimilar distances kept off the margin kink (d = m, or d^2 = m if legacy)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.4, (num, channels))
    b = rng.normal(0, 0.4, (num, channels))
    y = (np.arange(num) % 2).astype(np.float64)
    for n in range(num):
        while abs(_margin_slack(a[n], b[n], margin, legacy)) < 0.1:
            b[n] = a[n] + 1.3 * (b[n] - a[n])
    return a, b, y


def _margin_slack(a, b, margin, legacy):
    dist_sq = np.sum((a - b) ** 2)
    return margin - dist_sq if legacy else margin - np.sqrt(dist_sq)


def reference(a, b, y, margin, legacy):
    total = 0.0
    for n in range(a.shape[0]):
        dist_sq = float(np.sum((a[n].ravel() - b[n].ravel()) ** 2))
        if int(y.ravel()[n]):
            total += dist_sq
        elif legacy:
            total += max(margin - dist_sq, 0.0)
        else:
            total += max(margin - np.sqrt(dist_sq), 0.0) ** 2
    return total / a.shape[0] / 2


def reference_grad_a(a, b, y, margin, legacy):
    """Caffe's gradient, with its 1e-4 added to the distance for dissimilar pairs."""
    grad = np.zeros_like(a)
    for n in range(a.shape[0]):
        diff = a[n] - b[n]
        dist = np.sqrt(np.sum(diff ** 2))
        if int(y.ravel()[n]):
            grad[n] = diff
        elif legacy:
            grad[n] = -diff if margin - dist ** 2 > 0 else 0
        elif margin - dist > 0:
            grad[n] = -(margin - dist) / (dist + 1e-4) * diff
    return grad / a.shape[0]


@pytest.mark.parametrize("margin, legacy", [(None, None), (2.0, "false"), (0.5, "true"), (2.0, "true")])
def test_forward_matches_loop(margin, legacy):
    m = 1.0 if margin is None else margin
    a, b, y = pairs(margin=m, legacy=legacy == "true")
    layer, bottom, top = make_layer(layer_text(margin, legacy), [a, b, y])
    (loss,) = run_forward(layer, bottom, top)
    assert loss.shape == () and layer.is_loss
    np.testing.assert_allclose(loss, reference(a, b, y, m, legacy == "true"), rtol=1e-13)


def test_four_axis_blobs_and_non_binary_similarity():
    a, b, _ = pairs(num=4)
    y = np.array([0.7, 2.0, -0.5, 1.0])  # integer parts 0, 2, 0, 1: only nonzero ones are similar
    layer, bottom, top = make_layer(layer_text(), [a.reshape(4, 3, 1, 1), b.reshape(4, 3, 1, 1),
                                                   y.reshape(4, 1, 1, 1)])
    (loss,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(loss, reference(a, b, np.array([0, 1, 0, 1]), 1.0, False), rtol=1e-13)


@pytest.mark.parametrize("margin, legacy", [(1.0, False), (2.0, False), (0.5, True), (2.0, True)])
def test_backward_matches_caffe_formula(margin, legacy):
    a, b, y = pairs(margin=margin, legacy=legacy, seed=1)
    layer, bottom, top = make_layer(layer_text(margin, str(legacy).lower()), [a, b, y])
    run_forward(layer, bottom, top)
    top[0].grad[...] = 2.5
    layer.backward(top, [True, True, False], bottom)
    expected = 2.5 * reference_grad_a(a, b, y, margin, legacy)
    np.testing.assert_allclose(bottom[0].grad, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(bottom[1].grad, -expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("margin, legacy", [(0.5, True), (2.0, True)])
def test_legacy_gradients(margin, legacy):
    a, b, y = pairs(margin=margin, legacy=legacy, seed=2)
    layer, bottom, top = make_layer(layer_text(margin, "true"), [a, b, y])
    check_gradients(layer, bottom, top, check_bottom=[0, 1])


@pytest.mark.parametrize("margin", [1.0, 2.0])
def test_gradients(margin):
    # Caffe divides by d + 1e-4 instead of d, so the analytic gradient is off by about 1e-4 relative.
    a, b, y = pairs(margin=margin, seed=3)
    layer, bottom, top = make_layer(layer_text(margin), [a, b, y])
    check_gradients(layer, bottom, top, check_bottom=[0, 1], tolerance=2e-4)


def test_identical_dissimilar_pair_has_finite_zero_gradient():
    a = np.array([[1.0, 2.0]])
    layer, bottom, top = make_layer(layer_text(), [a, a.copy(), np.array([0.0])])
    (loss,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(loss, 0.5)
    top[0].grad[...] = 1
    layer.backward(top, [True, True, False], bottom)
    assert np.all(bottom[0].grad == 0) and np.all(bottom[1].grad == 0)


def test_similarity_takes_no_gradient():
    a, b, y = pairs()
    layer, bottom, top = make_layer(layer_text(), [a, b, y])
    run_forward(layer, bottom, top)
    bottom[2].grad[...] = 9
    top[0].grad[...] = 1
    layer.backward(top, [False, True, True], bottom)
    assert not np.any(bottom[2].grad) and not np.any(bottom[0].grad) and np.any(bottom[1].grad)
    assert [layer.allow_force_backward(i) for i in range(3)] == [True, True, False]


def test_float32_stays_float32():
    a, b, y = pairs()
    layer, bottom, top = make_layer(layer_text(), [a, b, y], dtype=np.float32)
    (loss,) = run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True, True, False], bottom)
    assert loss.dtype == np.float32 and bottom[0].grad.dtype == np.float32
    np.testing.assert_allclose(loss, reference(a, b, y, 1.0, False), rtol=1e-5)


@pytest.mark.parametrize("shapes, match", [
    (((4, 3), (4, 2), (4,)), "same C"),
    (((4, 3, 2), (4, 3, 2), (4,)), r"\(N, C\)"),
    (((4, 3), (4, 3), (4, 2)), "one similarity per pair"),
    (((4, 3), (4, 3), (3,)), "one similarity per pair"),
    (((4, 3, 1, 1, 1), (4, 3), (4,)), "at most 4 axes"),
    (((4, 3), (3, 3), (4,)), "first dimension"),
])
def test_bad_shapes(shapes, match):
    with pytest.raises(ShapeError, match=match):
        make_layer(layer_text(), [np.zeros(s) for s in shapes])
