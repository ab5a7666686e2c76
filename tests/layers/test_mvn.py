"""MVN: forward against per-plane formulas (eps added to the std), Caffe's backward, gradients, in place."""

import itertools

import numpy as np
import pytest

from caffelite.errors import ShapeError
from layer_harness import check_float32_backward, check_gradients, make_layer, run_forward


def reference(x, normalize_variance, across_channels, eps):
    x4 = x.reshape(x.shape + (1,) * (4 - x.ndim))
    y = np.empty_like(x4)
    groups = [(n,) for n in range(x4.shape[0])] if across_channels else list(
        itertools.product(range(x4.shape[0]), range(x4.shape[1])))
    for index in groups:
        values = x4[index]
        centred = values - values.sum() / values.size
        if normalize_variance:
            centred = centred / (np.sqrt((centred ** 2).sum() / values.size) + eps)
        y[index] = centred
    return y


def mvn_text(options="", names='bottom: "x" top: "y"'):
    return f'name: "mvn" type: "MVN" {names} mvn_param {{ {options} }}'


@pytest.mark.parametrize("normalize_variance", [True, False])
@pytest.mark.parametrize("across_channels", [False, True])
@pytest.mark.parametrize("eps", [1e-9, 0.5])
def test_forward_matches_per_plane_formulas(normalize_variance, across_channels, eps):
    x = np.random.default_rng(0).normal(loc=3, scale=2, size=(2, 3, 4, 5))
    options = (f"normalize_variance: {str(normalize_variance).lower()} "
               f"across_channels: {str(across_channels).lower()} eps: {eps}")
    layer, bottom, top = make_layer(mvn_text(options), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, reference(x, normalize_variance, across_channels, float(np.float32(eps))),
                               rtol=1e-12, atol=1e-12)


def test_eps_is_added_to_the_standard_deviation_not_the_variance():
    x = np.array([[[[0.0, 2.0]]]])  # mean 1, std 1
    layer, bottom, top = make_layer(mvn_text("eps: 1"), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y.ravel(), [-0.5, 0.5])  # / (1 + 1), not / sqrt(1 + 1)


@pytest.mark.parametrize("options", ["", "across_channels: true", "normalize_variance: false",
                                     "normalize_variance: false across_channels: true"])
@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(options, in_place):
    x = np.random.default_rng(1).normal(size=(2, 3, 3, 2))
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    layer, bottom, top = make_layer(mvn_text(options, names), [x])
    assert (top[0] is bottom[0]) == in_place
    check_gradients(layer, bottom, top)


def test_backward_is_caffes_formula_with_a_large_eps():
    """Caffe's backward divides by (std + eps) but leaves eps out of the derivative of std."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 2, 3, 3))
    layer, bottom, top = make_layer(mvn_text("eps: 0.25"), [x])
    (y,) = run_forward(layer, bottom, top)
    dy = rng.normal(size=y.shape)
    top[0].grad[...] = dy
    layer.backward(top, [True], bottom)
    planes = (2, 3)
    std = np.sqrt(((x - x.mean(axis=planes, keepdims=True)) ** 2).mean(axis=planes, keepdims=True))
    expected = (dy - dy.mean(axis=planes, keepdims=True) - (dy * y).mean(axis=planes, keepdims=True) * y) / (
        std + 0.25)
    np.testing.assert_allclose(bottom[0].grad, expected, rtol=1e-12)


def test_top_is_caffes_legacy_4d_shape():
    x = np.random.default_rng(3).normal(size=(4, 6))
    layer, bottom, top = make_layer(mvn_text(), [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == (4, 6, 1, 1)
    # Each (n, c) plane holds one value: it is centred to 0.
    np.testing.assert_allclose(y, 0)
    layer, bottom, top = make_layer(mvn_text("across_channels: true"), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y.reshape(4, 6), reference(x, True, True, float(np.float32(1e-9))).reshape(4, 6),
                               rtol=1e-12)
    check_gradients(layer, bottom, top)
    with pytest.raises(ShapeError, match="layer 'mvn' \\(MVN\\): input must have at most 4 axes"):
        make_layer(mvn_text(), [np.ones((1, 2, 3, 4, 5))])


def test_float32_and_propagate_down():
    x = np.random.default_rng(4).normal(size=(2, 3, 6, 6))
    layer, bottom, top = make_layer(mvn_text(), [x], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, reference(x.astype(np.float32).astype(np.float64), True, False, 1e-9), atol=1e-5)
    check_float32_backward(layer, bottom, top)
    np.testing.assert_allclose(bottom[0].grad, 0, atol=1e-5)  # a constant grad is removed with the mean
