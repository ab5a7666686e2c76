"""BatchReindex: forward against a per-item loop, backward sums repeated picks, index checks."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward

TEXT = 'name: "pick" type: "BatchReindex" bottom: "x" bottom: "i" top: "y"'


def reference_forward(x, indices):
    return np.stack([x[int(i)] for i in indices]) if len(indices) else np.zeros((0,) + x.shape[1:])


def reference_backward(x_shape, indices, dy):
    dx = np.zeros(x_shape)
    for k, i in enumerate(indices):
        dx[int(i)] += dy[k]
    return dx


@pytest.mark.parametrize(
    "indices", [[2, 0, 1, 3], [1, 1, 1], [3, 0, 3, 3, 2, 0, 1], [0], [2.7, 0.2, 1.999]]
)
def test_forward_and_backward_match_loops(indices):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 2))
    layer, bottom, top = make_layer(TEXT, [x, np.array(indices, dtype=float)])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == (len(indices), 3, 2)
    np.testing.assert_array_equal(y, reference_forward(x, indices))
    dy = rng.normal(size=y.shape)
    top[0].grad[...] = dy
    bottom[0].grad[...] = 99
    layer.backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].grad, reference_backward(x.shape, indices, dy), rtol=1e-14)


@pytest.mark.parametrize("indices", [[2, 0, 1], [0, 0, 2, 0, 2]])
def test_gradients(indices):
    x = np.random.default_rng(1).normal(size=(3, 2, 2))
    layer, bottom, top = make_layer(TEXT, [x, np.array(indices, dtype=float)])
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_no_indices_gives_an_empty_top_and_zero_grad():
    layer, bottom, top = make_layer(TEXT, [np.ones((3, 2)), np.zeros((0,))])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == (0, 2)
    bottom[0].grad[...] = 5
    layer.backward(top, [True, False], bottom)
    assert not bottom[0].grad.any()


def test_indices_get_zero_grad_and_are_exempt_from_force_backward():
    layer, bottom, top = make_layer(TEXT, [np.ones((3, 2)), np.array([1.0, 2.0])])
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)
    run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    bottom[1].grad[...] = 3
    layer.backward(top, [False, True], bottom)
    assert not bottom[1].grad.any()


def test_float32_stays_float32():
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    layer, bottom, top = make_layer(TEXT, [x, np.array([2.0, 0.0])], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [[4, 5], [0, 1]])


@pytest.mark.parametrize("indices, message", [([0, 3], "index 3 is outside \\[0, 3\\)"), ([-0.5], "outside"),
                                              ([np.nan], "outside")])
def test_out_of_range_indices(indices, message):
    layer, bottom, top = make_layer(TEXT, [np.ones((3, 2)), np.array(indices)])
    with pytest.raises(ShapeError, match=message) as raised:
        run_forward(layer, bottom, top)
    assert "layer 'pick' (BatchReindex)" in str(raised.value)


def test_indices_must_be_one_dimensional():
    with pytest.raises(ShapeError, match="1-D"):
        make_layer(TEXT, [np.ones((3, 2)), np.zeros((2, 1))])


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in place"):
        make_layer('type: "BatchReindex" bottom: "x" bottom: "i" top: "x"', [np.ones((3, 2)), np.array([0.0])])
