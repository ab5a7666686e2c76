"""InnerProduct: forward against explicit sums for axis/transpose/bias_term, gradients on bottom, W and b."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from caffelite.layers import inner_product
from layer_harness import check_gradients, make_layer, run_forward

FILLERS = 'weight_filler { type: "gaussian" std: 1 } bias_filler { type: "uniform" min: -1 max: 1 }'


def ip_text(num_output=4, axis=None, transpose=False, bias_term=True, fillers=FILLERS):
    options = f"num_output: {num_output} {fillers} transpose: {str(transpose).lower()} "
    options += f"bias_term: {str(bias_term).lower()} " + ("" if axis is None else f"axis: {axis}")
    return f'name: "fc" type: "InnerProduct" inner_product_param {{ {options} }}'


def reference(x, weight, bias, axis, transpose):
    """Each output element as an explicit sum over the flattened trailing axes."""
    lead = x.shape[:axis]
    rows = x.reshape(int(np.prod(lead)), -1)
    w_nk = weight.T if transpose else weight
    out = np.zeros((rows.shape[0], w_nk.shape[0]))
    for m in range(rows.shape[0]):
        for n in range(w_nk.shape[0]):
            out[m, n] = sum(rows[m, k] * w_nk[n, k] for k in range(rows.shape[1]))
            out[m, n] += 0 if bias is None else bias[n]
    return out.reshape(lead + (w_nk.shape[0],))


COMBOS = [(axis, transpose, bias) for axis in (None, 2, -1) for transpose in (False, True) for bias in (True, False)]


@pytest.mark.parametrize("axis, transpose, bias_term", COMBOS)
def test_forward_matches_sums(axis, transpose, bias_term):
    x = np.random.default_rng(0).normal(size=(2, 3, 2, 2))
    layer, bottom, top = make_layer(ip_text(axis=axis, transpose=transpose, bias_term=bias_term), [x])
    canonical = {None: 1, 2: 2, -1: 3}[axis]
    k = int(np.prod(x.shape[canonical:]))
    assert [p.shape for p in layer.params] == [(k, 4) if transpose else (4, k)] + [(4,)] * bias_term
    (y,) = run_forward(layer, bottom, top)
    bias = layer.params[1].data if bias_term else None
    np.testing.assert_allclose(y, reference(x, layer.params[0].data, bias, canonical, transpose), rtol=1e-12)


@pytest.mark.parametrize("axis, transpose, bias_term", COMBOS)
def test_gradients(axis, transpose, bias_term):
    x = np.random.default_rng(1).normal(size=(2, 2, 3))
    layer, bottom, top = make_layer(ip_text(num_output=3, axis=axis, transpose=transpose, bias_term=bias_term), [x])
    check_gradients(layer, bottom, top)


def test_param_grads_accumulate_and_bottom_grad_is_assigned():
    x = np.random.default_rng(2).normal(size=(3, 5))
    layer, bottom, top = make_layer(ip_text(num_output=2), [x])
    run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    bottom[0].grad[...] = 100
    layer.backward(top, [True], bottom)
    once = [p.grad.copy() for p in layer.params]
    layer.backward(top, [True], bottom)
    for p, g in zip(layer.params, once):
        np.testing.assert_allclose(p.grad, 2 * g)
    np.testing.assert_allclose(bottom[0].grad, np.ones((3, 2)) @ layer.params[0].data)
    np.testing.assert_allclose(once[1], [3, 3])


def test_default_fillers_are_zero_and_params_use_layer_dtype():
    layer, bottom, top = make_layer(ip_text(fillers=""), [np.ones((2, 3))], dtype=np.float32)
    assert all(p.data.dtype == np.float32 and not np.any(p.data) for p in layer.params)


def test_constant_fillers():
    fillers = 'weight_filler { type: "constant" value: 0.5 } bias_filler { type: "constant" value: 2 }'
    layer, bottom, top = make_layer(ip_text(num_output=2, fillers=fillers), [np.ones((1, 4))])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, [[4.0, 4.0]])


def test_batch_may_change_but_input_size_may_not():
    layer, bottom, top = make_layer(ip_text(), [np.ones((2, 3, 2))])
    bottom[0].reshape(5, 6)
    layer.reshape(bottom, top)
    assert top[0].shape == (5, 4)
    bottom[0].reshape(5, 7)
    with pytest.raises(ShapeError, match="layer 'fc' \\(InnerProduct\\)"):
        layer.reshape(bottom, top)


def test_num_output_is_required():
    with pytest.raises(NetError, match="num_output"):
        make_layer('type: "InnerProduct"', [np.ones((2, 3))])


# Small batches take a large W a block of rows at a time; these run both ways with blocks of 3 rows over 7 outputs
# (two whole blocks and a partial one), so each product, its gradients and their accumulation cross block edges.
WAYS = {"blocks": 64, "one product": 0}


@pytest.fixture
def any_weight_blocked(monkeypatch):
    monkeypatch.setattr(inner_product, "BLOCKED_WEIGHT_BYTES", 0)


@pytest.mark.parametrize("way", WAYS)
def test_small_batch_blocks_forward(way, monkeypatch, any_weight_blocked):
    monkeypatch.setattr(inner_product, "WEIGHT_BLOCK", 3)
    monkeypatch.setattr(inner_product, "SMALL_BATCH", WAYS[way])
    x = np.random.default_rng(3).normal(size=(4, 2, 3))
    layer, bottom, top = make_layer(ip_text(num_output=7), [x])
    assert layer._by_blocks == (way == "blocks")
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, reference(x, layer.params[0].data, layer.params[1].data, 1, False), rtol=1e-12)


@pytest.mark.parametrize("way", WAYS)
def test_small_batch_blocks_gradients(way, monkeypatch, any_weight_blocked):
    monkeypatch.setattr(inner_product, "WEIGHT_BLOCK", 3)
    monkeypatch.setattr(inner_product, "SMALL_BATCH", WAYS[way])
    x = np.random.default_rng(4).normal(size=(3, 5))
    layer, bottom, top = make_layer(ip_text(num_output=7), [x])
    check_gradients(layer, bottom, top)
    run_forward(layer, bottom, top)
    top[0].grad[...] = np.random.default_rng(5).normal(size=top[0].shape)
    for p in layer.params:
        p.grad[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.params[0].grad, 1 + top[0].grad.T @ x, rtol=1e-12)


def test_small_batch_float32_matches_the_one_product(any_weight_blocked):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(10, 600)).astype(np.float32)
    layer, bottom, top = make_layer(ip_text(num_output=700), [x], dtype=np.float32)
    assert layer._by_blocks and len(layer._blocks()) == 3
    (y,) = run_forward(layer, bottom, top)
    weight, bias = (p.data.astype(np.float64) for p in layer.params)
    np.testing.assert_allclose(y, x.astype(np.float64) @ weight.T + bias, rtol=1e-4, atol=1e-3)
    top[0].grad[...] = rng.normal(size=top[0].shape)
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(layer.params[0].grad, top[0].grad.T.astype(np.float64) @ x, rtol=1e-4, atol=1e-3)


def test_only_a_weight_matrix_too_large_for_the_cache_is_taken_in_blocks():
    def blocked(num_output, inputs, rows):
        return make_layer(ip_text(num_output=num_output), [np.zeros((rows, inputs))], dtype=np.float32)[0]._by_blocks

    assert blocked(2048, 1025, 10)  # 8.4 MB of float32 weights
    assert not blocked(2048, 1024, 10)  # 8 MB
    assert not blocked(500, 800, 64)  # LeNet's ip1
    assert not blocked(2048, 1025, 65)  # more rows than SMALL_BATCH
