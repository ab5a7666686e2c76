"""Embed: lookups against a one-hot product, parameter gradients (repeated indices accumulate), index checks."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward

FILLERS = 'weight_filler { type: "gaussian" std: 1 } bias_filler { type: "uniform" min: -1 max: 1 }'


def embed_text(num_output=3, input_dim=5, bias_term=True, fillers=FILLERS):
    options = f"num_output: {num_output} input_dim: {input_dim} bias_term: {str(bias_term).lower()} {fillers}"
    return f'name: "emb" type: "Embed" embed_param {{ {options} }}'


def reference(indices, weight, bias):
    """y = onehot(x) W + b, the one-hot rows built by loops."""
    flat = indices.ravel()
    onehot = np.zeros((flat.size, weight.shape[0]))
    for m, k in enumerate(flat):
        onehot[m, int(k)] = 1
    y = onehot @ weight + (0 if bias is None else bias)
    return y.reshape(indices.shape + (weight.shape[1],)), onehot


INDICES = [np.array([[0, 4, 2], [2, 2, 1]], dtype=float), np.array([3.0]), np.array([[[1.0], [1.0]], [[0.0], [4.0]]])]


@pytest.mark.parametrize("bias_term", [True, False])
@pytest.mark.parametrize("indices", INDICES)
def test_forward_and_param_grads_match_one_hot_products(indices, bias_term):
    layer, bottom, top = make_layer(embed_text(bias_term=bias_term), [indices])
    assert [p.shape for p in layer.params] == [(5, 3)] + [(3,)] * bias_term
    bias = layer.params[1].data if bias_term else None
    (y,) = run_forward(layer, bottom, top)
    expected, onehot = reference(indices, layer.params[0].data, bias)
    np.testing.assert_allclose(y, expected, rtol=1e-14)
    dy = np.random.default_rng(0).normal(size=y.shape)
    top[0].grad[...] = dy
    for p in layer.params:
        p.grad[...] = 1
    layer.backward(top, [False], bottom)
    rows = dy.reshape(-1, 3)
    np.testing.assert_allclose(layer.params[0].grad, 1 + onehot.T @ rows, rtol=1e-14)
    if bias_term:
        np.testing.assert_allclose(layer.params[1].grad, 1 + rows.sum(axis=0), rtol=1e-14)


@pytest.mark.parametrize("bias_term", [True, False])
def test_gradients(bias_term):
    layer, bottom, top = make_layer(embed_text(bias_term=bias_term), [np.array([[0, 3, 3], [4, 0, 3]], dtype=float)])
    check_gradients(layer, bottom, top, check_bottom=[])


def test_inputs_get_no_gradient_and_are_exempt_from_force_backward():
    layer, bottom, top = make_layer(embed_text(), [np.array([1.0, 2.0])])
    assert not layer.allow_force_backward(0)
    run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    bottom[0].grad[...] = 6
    layer.backward(top, [True], bottom)
    assert not bottom[0].grad.any()


def test_float32_and_default_fillers():
    layer, bottom, top = make_layer(embed_text(fillers=""), [np.array([0.0, 1.0])], dtype=np.float32)
    assert all(p.data.dtype == np.float32 and not p.data.any() for p in layer.params)
    layer.params[0].data[...] = np.arange(15, dtype=np.float32).reshape(5, 3)
    layer.params[1].data[...] = 0.5
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [[0.5, 1.5, 2.5], [3.5, 4.5, 5.5]])


@pytest.mark.parametrize("indices, message", [([5.0], "input 5 is outside \\[0, 5\\)"), ([-1.0], "outside"),
                                              ([1.5], "input 1.5 is not an integer")])
def test_bad_inputs(indices, message):
    layer, bottom, top = make_layer(embed_text(), [np.array(indices)])
    with pytest.raises(ShapeError, match=message) as raised:
        run_forward(layer, bottom, top)
    assert "layer 'emb' (Embed)" in str(raised.value)


@pytest.mark.parametrize("text, message", [
    ('type: "Embed" embed_param { input_dim: 4 }', "num_output must be positive"),
    ('type: "Embed" embed_param { num_output: 4 }', "input_dim must be positive"),
])
def test_sizes_are_required(text, message):
    with pytest.raises(NetError, match=message):
        make_layer(text, [np.zeros(2)])


def test_in_place_is_refused():
    with pytest.raises(NetError, match="in place"):
        make_layer('type: "Embed" bottom: "x" top: "x" embed_param { num_output: 2 input_dim: 3 }', [np.zeros(2)])
