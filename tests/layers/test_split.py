"""Split: every top a copy of the bottom; backward sums the tops' grads."""

import numpy as np
import pytest

from caffelite.errors import NetError
from layer_harness import check_gradients, make_layer, run_forward


def split_text(num_top):
    return 'type: "Split" bottom: "x" ' + " ".join(f'top: "x_{i}"' for i in range(num_top))


@pytest.mark.parametrize("num_top", [1, 2, 3])
def test_forward_copies_and_backward_sums(num_top):
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    layer, bottom, top = make_layer(split_text(num_top), [x])
    outputs = run_forward(layer, bottom, top)
    for y in outputs:
        np.testing.assert_array_equal(y, x)
    grads = [np.random.default_rng(i + 1).normal(size=x.shape) for i in range(num_top)]
    for tensor, grad in zip(top, grads):
        tensor.grad[...] = grad
    layer.backward(top, [True], bottom)
    expected = np.zeros_like(x)
    for grad in grads:
        expected = expected + grad
    np.testing.assert_allclose(bottom[0].grad, expected, rtol=1e-15)


@pytest.mark.parametrize("num_top", [1, 3])
def test_gradients(num_top):
    layer, bottom, top = make_layer(split_text(num_top), [np.random.default_rng(0).normal(size=(3, 4))])
    check_gradients(layer, bottom, top)


def test_tops_are_independent_of_each_other():
    x = np.arange(6.0).reshape(2, 3)
    layer, bottom, top = make_layer(split_text(2), [x])
    run_forward(layer, bottom, top)
    top[0].data[...] = -1  # e.g. an in-place ReLU on one branch
    np.testing.assert_array_equal(top[1].data, x)
    np.testing.assert_array_equal(bottom[0].data, x)


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in place"):
        make_layer('type: "Split" bottom: "x" top: "x"', [np.zeros(3)])
