"""ArgMax: indices/values against an explicit sort of (value, index) pairs, Caffe's shapes with and without axis."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import make_layer, run_forward


def argmax_text(options=""):
    return f'name: "am" type: "ArgMax" argmax_param {{ {options} }}'


def ranked(values, top_k):
    """Caffe's order: (value, index) pairs, largest first, so of equal values the larger index comes first."""
    pairs = sorted(((v, j) for j, v in enumerate(values)), reverse=True)
    return [j for _, j in pairs[:top_k]], [v for v, _ in pairs[:top_k]]


def reference_without_axis(x, top_k, out_max_val):
    rows = x.reshape(x.shape[0], -1)
    y = np.zeros((x.shape[0], 2 if out_max_val else 1, top_k) + (1,) * (x.ndim - 3))
    for n in range(rows.shape[0]):
        indices, values = ranked(list(rows[n]), top_k)
        for j in range(top_k):
            y[(n, 0, j) + (0,) * (x.ndim - 3)] = indices[j]
            if out_max_val:
                y[(n, 1, j) + (0,) * (x.ndim - 3)] = values[j]
    return y


def reference_with_axis(x, axis, top_k, out_max_val):
    shape = list(x.shape)
    shape[axis] = top_k
    y = np.zeros(shape)
    others = x.shape[:axis] + x.shape[axis + 1:]
    for rest in np.ndindex(*others):
        line = [x[rest[:axis] + (k,) + rest[axis:]] for k in range(x.shape[axis])]
        indices, values = ranked(line, top_k)
        for j in range(top_k):
            y[rest[:axis] + (j,) + rest[axis:]] = values[j] if out_max_val else indices[j]
    return y


def with_ties(shape, seed=0):
    # Few distinct values, so ties are common and the tie rule is exercised.
    return np.random.default_rng(seed).integers(0, 4, size=shape).astype(float)


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4), (2, 3, 2, 2), (4,)])
@pytest.mark.parametrize("top_k", [1, 3])
@pytest.mark.parametrize("out_max_val", [False, True])
def test_without_axis(shape, top_k, out_max_val):
    x = with_ties(shape)
    options = f"top_k: {top_k} out_max_val: {str(out_max_val).lower()}"
    if top_k > int(np.prod(shape[1:])):
        with pytest.raises(ShapeError, match="top_k 3 exceeds"):
            make_layer(argmax_text(options), [x])
        return
    layer, bottom, top = make_layer(argmax_text(options), [x])
    (y,) = run_forward(layer, bottom, top)
    expected = reference_without_axis(x, top_k, out_max_val)
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("shape, axis, canonical", [((2, 5, 3), 1, 1), ((2, 5, 3), -1, 2), ((4, 3), 0, 0),
                                                    ((2, 3, 4, 3), 2, 2)])
@pytest.mark.parametrize("top_k", [1, 2])
@pytest.mark.parametrize("out_max_val", [False, True])
def test_with_axis(shape, axis, canonical, top_k, out_max_val):
    x = with_ties(shape, seed=1)
    options = f"axis: {axis} top_k: {top_k} out_max_val: {str(out_max_val).lower()}"
    layer, bottom, top = make_layer(argmax_text(options), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, reference_with_axis(x, canonical, top_k, out_max_val))


def test_ties_go_to_the_larger_index_and_float32_stays_float32():
    x = np.array([[1.0, 5.0, 5.0, 0.0, 5.0]], dtype=np.float32)
    layer, bottom, top = make_layer(argmax_text("top_k: 4 out_max_val: true"), [x], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32 and y.shape == (1, 2, 4)
    np.testing.assert_array_equal(y, [[[4, 2, 1, 0], [5, 5, 5, 1]]])


def test_backward_writes_zero_when_asked():
    layer, bottom, top = make_layer(argmax_text(), [np.ones((2, 3))])
    run_forward(layer, bottom, top)
    bottom[0].grad[...] = 3
    layer.backward(top, [True], bottom)
    assert not bottom[0].grad.any()


@pytest.mark.parametrize(
    "options, shape, error, message",
    [
        ("top_k: 0", (2, 3), NetError, "at least 1"),
        ("top_k: 4", (2, 3), ShapeError, "top_k 4 exceeds the 3 entries"),
        ("axis: 0 top_k: 3", (2, 3), ShapeError, "exceeds the 2 entries of axis 0"),
        ("axis: 2", (2, 3), ShapeError, "axis 2 out of range"),
    ],
)
def test_bad_configurations(options, shape, error, message):
    with pytest.raises(error, match=message) as raised:
        make_layer(argmax_text(options), [np.zeros(shape)])
    assert "layer 'am' (ArgMax)" in str(raised.value)


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in place"):
        make_layer('type: "ArgMax" bottom: "x" top: "x"', [np.zeros((2, 3))])
