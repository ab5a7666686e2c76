"""Concat: forward against np.concatenate-free block copies, gradients, axis/concat_dim options and errors."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward


def concat_text(num_bottom, options=""):
    bottoms = " ".join(f'bottom: "x{i}"' for i in range(num_bottom))
    return f'name: "cat" type: "Concat" {bottoms} top: "y" concat_param {{ {options} }}'


def reference(xs, axis):
    """Fill the output element by element: the k-th index along `axis` belongs to the input that covers it."""
    sizes = [x.shape[axis] for x in xs]
    shape = list(xs[0].shape)
    shape[axis] = sum(sizes)
    y = np.empty(shape)
    for index in np.ndindex(*shape):
        k, part = index[axis], 0
        while k >= sizes[part]:
            k -= sizes[part]
            part += 1
        y[index] = xs[part][index[:axis] + (k,) + index[axis + 1:]]
    return y


def inputs(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s) for s in shapes]


@pytest.mark.parametrize(
    "shapes, options, axis",
    [
        ([(2, 3, 2), (2, 1, 2)], "", 1),
        ([(2, 3, 2), (2, 1, 2), (2, 4, 2)], "axis: 1", 1),
        ([(1, 3), (4, 3)], "axis: 0", 0),
        ([(2, 3, 2), (2, 3, 5)], "axis: -1", 2),
        ([(2, 3, 2), (2, 3, 1)], "concat_dim: 2", 2),
        ([(3, 2), (1, 2)], "concat_dim: 0", 0),
        ([(2, 3)], "", 1),
    ],
)
def test_forward_matches_reference(shapes, options, axis):
    xs = inputs(shapes)
    layer, bottom, top = make_layer(concat_text(len(xs), options), xs)
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, reference(xs, axis))


@pytest.mark.parametrize("shapes, options", [([(2, 3, 2), (2, 1, 2), (2, 2, 2)], ""), ([(1, 3), (2, 3)], "axis: 0"),
                                             ([(2, 2)], "")])
def test_gradients(shapes, options):
    xs = inputs(shapes, seed=1)
    layer, bottom, top = make_layer(concat_text(len(xs), options), xs)
    check_gradients(layer, bottom, top)


def test_backward_respects_propagate_down():
    xs = inputs([(2, 1), (2, 2)])
    layer, bottom, top = make_layer(concat_text(2), xs)
    run_forward(layer, bottom, top)
    top[0].grad[...] = np.arange(6.0).reshape(2, 3)
    bottom[0].grad[...] = 7
    layer.backward(top, [False, True], bottom)
    assert np.all(bottom[0].grad == 7)
    np.testing.assert_array_equal(bottom[1].grad, [[1, 2], [4, 5]])


def test_shapes_follow_the_inputs():
    layer, bottom, top = make_layer(concat_text(2), inputs([(2, 3), (2, 1)]))
    bottom[0].reshape(5, 2)
    bottom[1].reshape(5, 4)
    layer.reshape(bottom, top)
    assert top[0].shape == (5, 6)


@pytest.mark.parametrize(
    "shapes, options, error, message",
    [
        ([(2, 3), (3, 3)], "", ShapeError, "all axes but the concat axis 1 must match"),
        ([(2, 3), (2, 3, 1)], "", ShapeError, "bottom\\[1\\]"),
        ([(2, 3), (2, 3)], "axis: 2", ShapeError, "axis 2 out of range"),
        ([(2, 3), (2, 3)], "concat_dim: 2", ShapeError, "concat_dim 2 out of range"),
        ([(2, 3), (2, 3)], "axis: 1 concat_dim: 1", NetError, "not both"),
    ],
)
def test_bad_configurations(shapes, options, error, message):
    with pytest.raises(error, match=message) as raised:
        make_layer(concat_text(len(shapes), options), inputs(shapes))
    assert "layer 'cat' (Concat)" in str(raised.value)


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in place"):
        make_layer('type: "Concat" bottom: "a" bottom: "b" top: "a"', inputs([(2, 2), (2, 2)]))
