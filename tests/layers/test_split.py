"""Split: every top shares the bottom's data; backward sums the tops' grads."""

import numpy as np
import pytest

import caffelite.layers._threads as threads
from caffelite.errors import NetError
from layer_harness import check_gradients, make_layer, run_forward


def split_text(num_top):
    return 'type: "Split" bottom: "x" ' + " ".join(f'top: "x_{i}"' for i in range(num_top))


@pytest.mark.parametrize("num_top", [1, 2, 3])
def test_forward_shares_and_backward_sums(num_top):
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


def test_tops_share_the_bottom_array_as_caffe_does():
    x = np.arange(6.0).reshape(2, 3)
    layer, bottom, top = make_layer(split_text(2), [x])
    run_forward(layer, bottom, top)
    assert all(tensor.data is bottom[0].data for tensor in top)
    assert all(tensor.grad is not bottom[0].grad for tensor in top)
    # A bottom that got a new array (a reshape to another size) is shared anew at the next forward.
    top[0].grad[...] = 1
    bottom[0].reshape(4, 5)
    layer.reshape(bottom, top)
    assert all(tensor.shape == (4, 5) and tensor.grad.shape == (4, 5) for tensor in top)
    bottom[0].data = bottom[0].data.copy()  # the bottom's producer may replace its array
    layer.forward(bottom, top)
    assert all(tensor.data is bottom[0].data for tensor in top)


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in place"):
        make_layer('type: "Split" bottom: "x" top: "x"', [np.zeros(3)])


@pytest.mark.parametrize("num_top", [1, 2, 3])
def test_backward_sums_the_same_bits_on_several_threads(num_top, monkeypatch):
    """The diffs are summed in top order, slice by slice on the threads, into the bottom's diff."""
    x = np.random.default_rng(0).normal(size=(5, 3, 4)).astype(np.float32)
    grads = [np.random.default_rng(i + 1).normal(size=x.shape).astype(np.float32) for i in range(num_top)]
    sums = []
    for count, minimum in [("1", threads.ELEMENTWISE_MIN_ELEMENTS), ("3", 0)]:
        monkeypatch.setenv("CAFFELITE_NUM_THREADS", count)
        monkeypatch.setattr(threads, "ELEMENTWISE_MIN_ELEMENTS", minimum)
        layer, bottom, top = make_layer(split_text(num_top), [x], dtype=np.float32)
        run_forward(layer, bottom, top)
        for tensor, grad in zip(top, grads):
            tensor.grad[...] = grad
        bottom[0].grad[...] = np.nan
        layer.backward(top, [True], bottom)
        sums.append(bottom[0].grad.copy())
    expected = grads[0].copy()
    for grad in grads[1:]:
        expected += grad
    for result in sums:
        np.testing.assert_array_equal(result, expected)
