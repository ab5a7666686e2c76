"""Filter: kept items against a loop, the first reshape keeps the batch, gradients zero on dropped items, errors."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward


def filter_text(num_filtered):
    bottoms = " ".join(f'bottom: "x{i}"' for i in range(num_filtered)) + ' bottom: "keep"'
    tops = " ".join(f'top: "y{i}"' for i in range(num_filtered))
    return f'name: "f" type: "Filter" {bottoms} {tops}'


def blobs(selector, shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(len(selector),) + s) for s in shapes] + [np.array(selector, dtype=float)]


@pytest.mark.parametrize("selector", [[1, 0, 1, 1, 0], [0, 0, 0, 0, 2.5], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
def test_forward_and_backward_match_loops(selector):
    data = blobs(selector, [(3,), (2, 2)])
    layer, bottom, top = make_layer(filter_text(2), data)
    # Before any forward the selector is not trusted: the tops keep the whole batch.
    assert [t.shape for t in top] == [(5, 3), (5, 2, 2)]
    outputs = run_forward(layer, bottom, top)
    kept = [n for n, s in enumerate(selector) if s != 0]
    for x, y in zip(data, outputs):
        assert y.shape == (len(kept),) + x.shape[1:]
        for row, n in enumerate(kept):
            np.testing.assert_array_equal(y[row], x[n])
    for t in top:
        t.grad[...] = np.random.default_rng(1).normal(size=t.shape)
    layer.backward(top, [True, True, False], bottom)
    for x, b, t in zip(data, bottom, top):
        for n in range(len(selector)):
            expected = t.grad[kept.index(n)] if n in kept else np.zeros(x.shape[1:])
            np.testing.assert_array_equal(b.grad[n], expected)


def test_selector_may_have_trailing_singleton_axes():
    data = blobs([0, 1, 1], [(2,)])
    data[-1] = data[-1].reshape(3, 1, 1)
    layer, bottom, top = make_layer(filter_text(1), data)
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, data[0][1:])


@pytest.mark.parametrize("num_filtered", [1, 2])
def test_gradients(num_filtered):
    layer, bottom, top = make_layer(filter_text(num_filtered), blobs([1, 0, 0, 1], [(2, 2), (3,)][:num_filtered]))
    check_gradients(layer, bottom, top, check_bottom=range(num_filtered))


def test_selector_gets_zero_grad_and_is_exempt_from_force_backward():
    layer, bottom, top = make_layer(filter_text(2), blobs([1, 0], [(2,), (2,)]))
    assert layer.allow_force_backward(0) and layer.allow_force_backward(1) and not layer.allow_force_backward(2)
    run_forward(layer, bottom, top)
    bottom[2].grad[...] = 4
    bottom[0].grad[...] = 4
    layer.backward(top, [False, False, True], bottom)
    assert not bottom[2].grad.any() and np.all(bottom[0].grad == 4)


def test_float32_stays_float32():
    layer, bottom, top = make_layer(filter_text(1), blobs([1, 0, 1], [(2,)]), dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32 and y.shape == (2, 2)


@pytest.mark.parametrize(
    "text, data, error, message",
    [
        ('type: "Filter" bottom: "a" bottom: "s" top: "y" top: "z"', blobs([1, 0], [(2,)]), NetError,
         "one top per filtered bottom"),
        (filter_text(1), [np.zeros((2, 3)), np.zeros((2, 2))], ShapeError, "shape \\(N, 1, ...\\)"),
        (filter_text(2), [np.zeros((2, 3)), np.zeros((3, 3)), np.ones(2)], ShapeError, "bottom\\[1\\]"),
        (filter_text(1), [np.zeros((2, 3)), np.array(1.0)], ShapeError, "selector"),
    ],
)
def test_bad_configurations(text, data, error, message):
    with pytest.raises(error, match=message):
        make_layer(text, data)


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in place"):
        make_layer('type: "Filter" bottom: "x" bottom: "s" top: "x"', blobs([1, 0], [(2,)]))
