"""LSTM: Caffe's blob layout and gate order, forward against explicit per-step formulas, state carrying and
expose_hidden, cont resets, x_static, gradients through time on every bottom that takes one and every param."""

import logging
import math

import numpy as np
import pytest
from google.protobuf import text_format

import caffelite
from caffelite.errors import NetError, ShapeError
from caffelite.proto import caffe_pb2
from layer_harness import check_gradients, make_layer, run_forward
from recurrent_helpers import (
    FILLERS,
    check_cont_zero_mid_sequence_restarts_that_stream,
    check_no_gradient_to_cont,
    check_reset_forgets_the_carried_state,
    check_state_is_carried_between_forwards,
    params_of,
    recurrent_text,
    sequence,
)


def lstm_text(num_output=3, expose_hidden=False, fillers=FILLERS, extra="", static=False, name="lstm"):
    return recurrent_text("LSTM", name, "h", ("h", "c"), num_output, expose_hidden, fillers, extra, static)


def logistic(v):
    return 1.0 / (1.0 + math.exp(-v))


def reference(x, cont, params, x_static=None, h0=None, c0=None):
    """Per step, stream and unit, each gate as an explicit sum over its own rows (i, f, o, g blocks of H).

    Returns (h for every step, h_T, c_T)."""
    if x_static is None:
        w_xc, b_c, w_hc = params
    else:
        w_xc, b_c, w_static, w_hc = params
    steps, streams = cont.shape
    hidden = w_hc.shape[1]
    xs = x.reshape(steps, streams, -1)
    h_prev = np.zeros((streams, hidden)) if h0 is None else h0.reshape(streams, hidden).copy()
    c_prev = np.zeros((streams, hidden)) if c0 is None else c0.reshape(streams, hidden).copy()
    out = np.zeros((steps, streams, hidden))

    def gate_input(row, t, n):
        s = b_c[row] + sum(w_xc[row, k] * xs[t, n, k] for k in range(xs.shape[2]))
        s += sum(w_hc[row, k] * cont[t, n] * h_prev[n, k] for k in range(hidden))
        if x_static is not None:
            flat = x_static.reshape(streams, -1)
            s += sum(w_static[row, k] * flat[n, k] for k in range(flat.shape[1]))
        return s

    for t in range(steps):
        h_new, c_new = np.zeros((streams, hidden)), np.zeros((streams, hidden))
        for n in range(streams):
            for j in range(hidden):
                i = logistic(gate_input(j, t, n))
                f = logistic(gate_input(hidden + j, t, n))
                o = logistic(gate_input(2 * hidden + j, t, n))
                g = math.tanh(gate_input(3 * hidden + j, t, n))
                c_new[n, j] = cont[t, n] * f * c_prev[n, j] + i * g
                h_new[n, j] = o * math.tanh(c_new[n, j])
        out[t] = h_new
        h_prev, c_prev = h_new, c_new
    return out, h_prev[None], c_prev[None]


def test_blob_layout_matches_caffe_unrolled_net():
    x, cont = sequence(features=(3, 2)), np.ones((3, 2))
    layer, _, top = make_layer(lstm_text(num_output=5), [x, cont])
    assert [p.shape for p in layer.params] == [(20, 6), (20,), (20, 5)]
    assert top[0].shape == (3, 2, 5)
    layer, _, _ = make_layer(lstm_text(num_output=5, static=True), [x, cont, np.ones((2, 2, 3, 4))])
    # W_xc, b_c, W_xc_static, W_hc: the order the unrolled net first creates them.
    assert [p.shape for p in layer.params] == [(20, 6), (20,), (20, 24), (20, 5)]


def test_gate_order_is_i_f_o_g():
    # One unit, no weights: only the bias rows [i, f, o, g] drive the cell.
    fillers = 'bias_filler { type: "constant" value: 0 }'
    layer, bottom, top = make_layer(lstm_text(num_output=1, fillers=fillers), [np.ones((2, 1, 1)), np.ones((2, 1))])
    bias = np.array([0.3, -1.2, 0.8, 0.5])
    layer.params[1].data[...] = bias
    (h,) = run_forward(layer, bottom, top)
    i, f, o, g = logistic(bias[0]), logistic(bias[1]), logistic(bias[2]), math.tanh(bias[3])
    c1 = i * g
    c2 = f * c1 + i * g
    np.testing.assert_allclose(h[:, 0, 0], [o * math.tanh(c1), o * math.tanh(c2)], rtol=1e-14)


@pytest.mark.parametrize("static", [False, True])
def test_forward_matches_explicit_steps(static):
    x = sequence(steps=4)
    cont = np.array([[0, 0], [1, 1], [0, 1], [1, 1]], dtype=float)  # stream 0 restarts at step 2
    bottoms = [x, cont] + ([np.random.default_rng(3).normal(size=(2, 3))] if static else [])
    layer, bottom, top = make_layer(lstm_text(static=static), bottoms)
    (h,) = run_forward(layer, bottom, top)
    expected = reference(x, cont, params_of(layer), x_static=bottoms[2] if static else None)[0]
    np.testing.assert_allclose(h, expected, rtol=1e-12, atol=1e-14)


def test_cont_zero_mid_sequence_restarts_that_stream():
    check_cont_zero_mid_sequence_restarts_that_stream(lstm_text())


def test_state_is_carried_between_forwards_without_expose_hidden():
    check_state_is_carried_between_forwards(lstm_text())


def test_reset_forgets_the_carried_state():
    check_reset_forgets_the_carried_state(lstm_text())


def test_expose_hidden_round_trip_equals_the_longer_sequence():
    x = sequence(steps=4)
    cont = np.array([[1, 1], [1, 0], [1, 1], [0, 1]], dtype=float)
    rng = np.random.default_rng(5)
    h0, c0 = rng.normal(size=(1, 2, 3)), rng.normal(size=(1, 2, 3))
    whole, bottom, top = make_layer(lstm_text(expose_hidden=True), [x, cont, h0, c0])
    h_whole, h_final, c_final = run_forward(whole, bottom, top)
    expected = reference(x, cont, params_of(whole), h0=h0, c0=c0)
    for got, want in zip((h_whole, h_final, c_final), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    half, bottom2, top2 = make_layer(lstm_text(expose_hidden=True), [x[:2], cont[:2], h0, c0])
    h_first, h_mid, c_mid = run_forward(half, bottom2, top2)
    for b, value in zip(bottom2, (x[2:], cont[2:], h_mid, c_mid)):
        b.data[...] = value
    h_second, h_end, c_end = run_forward(half, bottom2, top2)
    np.testing.assert_allclose(np.concatenate([h_first, h_second]), h_whole, rtol=1e-12)
    np.testing.assert_allclose(h_end, h_final, rtol=1e-12)
    np.testing.assert_allclose(c_end, c_final, rtol=1e-12)


# -- gradients ------------------------------------------------------------------------------------------------
def test_gradients():
    cont = np.array([[0, 0], [1, 1], [1, 0]], dtype=float)
    layer, bottom, top = make_layer(lstm_text(num_output=2), [sequence(features=(3,)), cont])
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_gradients_with_static_input():
    cont = np.array([[0, 0], [1, 0], [1, 1]], dtype=float)
    x_static = np.random.default_rng(4).normal(size=(2, 2, 1))
    layer, bottom, top = make_layer(lstm_text(num_output=2, static=True), [sequence(features=(2,)), cont, x_static])
    check_gradients(layer, bottom, top, check_bottom=[0, 2])


@pytest.mark.parametrize("static", [False, True])
def test_gradients_through_exposed_hidden_state(static):
    # cont is 1 at the first step, so h0 and c0 matter; hT's and cT's gradients flow back through every step.
    cont = np.array([[1, 1], [0, 1], [1, 1]], dtype=float)
    rng = np.random.default_rng(6)
    states = [rng.normal(size=(1, 2, 2)), rng.normal(size=(1, 2, 2))]
    bottoms = [sequence(features=(2,)), cont] + ([np.full((2, 2), 0.3)] if static else []) + states
    layer, bottom, top = make_layer(lstm_text(num_output=2, expose_hidden=True, static=static), bottoms)
    check_gradients(layer, bottom, top, check_bottom=[0, 2, 3, 4] if static else [0, 2, 3])


def test_param_grads_accumulate_bottom_grads_are_assigned_propagate_down_respected():
    cont = np.array([[1, 1], [1, 1], [1, 1]], dtype=float)
    h0, c0 = np.full((1, 2, 3), 0.2), np.full((1, 2, 3), -0.4)
    layer, bottom, top = make_layer(lstm_text(expose_hidden=True), [sequence(), cont, h0, c0])
    run_forward(layer, bottom, top)
    for t in top:
        t.grad[...] = 1
    for b in bottom:
        b.grad[...] = 100
    layer.backward(top, [True, False, True, True], bottom)
    once = [p.grad.copy() for p in layer.params]
    grads = [b.grad.copy() for b in bottom]
    assert not any(np.any(grads[i] == 100) for i in (0, 2, 3)) and np.all(grads[1] == 100)
    layer.backward(top, [True, False, True, True], bottom)
    for p, g in zip(layer.params, once):
        np.testing.assert_allclose(p.grad, 2 * g)
    for b, g in zip(bottom, grads):
        np.testing.assert_allclose(b.grad, g)
    for b in bottom:
        b.grad[...] = 7
    layer.backward(top, [False, False, False, True], bottom)
    assert all(np.all(b.grad == 7) for b in bottom[:3])
    np.testing.assert_allclose(bottom[3].grad, grads[3])


def test_no_gradient_to_cont():
    check_no_gradient_to_cont(lstm_text())


def test_float32_stays_float32():
    layer, bottom, top = make_layer(lstm_text(), [sequence(), np.ones((3, 2))], dtype=np.float32)
    (h,) = run_forward(layer, bottom, top)
    assert h.dtype == np.float32
    expected = reference(sequence(), np.ones((3, 2)), [p.data.astype(float) for p in layer.params])[0]
    np.testing.assert_allclose(h, expected, rtol=1e-5, atol=1e-6)
    top[0].grad[...] = 1
    layer.backward(top, [True, False], bottom)
    assert bottom[0].grad.dtype == np.float32 and all(p.grad.dtype == np.float32 for p in layer.params)


def test_debug_info_logs_internal_blobs(caplog):
    layer, bottom, top = make_layer(lstm_text(extra="debug_info: true"), [sequence(), np.ones((3, 2))])
    with caplog.at_level(logging.INFO, logger="caffelite"):
        run_forward(layer, bottom, top)
    assert "[Forward] Layer lstm_unit_2, top blob c_2 data:" in caplog.text


@pytest.mark.parametrize(
    "text, bottoms, error, match",
    [
        (lstm_text(num_output=0), [np.ones((3, 2, 2)), np.ones((3, 2))], NetError, "num_output"),
        (lstm_text(), [np.ones((3, 2)), np.ones((3, 2))], ShapeError, "3 axes"),
        (lstm_text(), [np.ones((3, 2, 2)), np.ones((2, 2))], ShapeError, "cont"),
        (lstm_text(static=True), [np.ones((3, 2, 2)), np.ones((3, 2)), np.ones((1, 4))], ShapeError, "x_static"),
        (lstm_text(expose_hidden=True), [np.ones((3, 2, 2)), np.ones((3, 2)), np.ones((1, 2, 3)),
                                         np.ones((2, 3))], ShapeError, "c_0"),
        (lstm_text(expose_hidden=True), [np.ones((3, 2, 2)), np.ones((3, 2)), np.ones((1, 2, 3))], NetError,
         "at least 4 bottoms"),
    ],
)
def test_configuration_errors(text, bottoms, error, match):
    with pytest.raises(error, match=match):
        make_layer(text, bottoms)


def test_expose_hidden_with_static_input_orders_bottoms_x_cont_static_h0_c0():
    x, cont = sequence(), np.ones((3, 2))
    x_static = np.random.default_rng(8).normal(size=(2, 3))
    h0, c0 = np.full((1, 2, 3), 0.5), np.full((1, 2, 3), -0.5)
    layer, bottom, top = make_layer(lstm_text(expose_hidden=True, static=True), [x, cont, x_static, h0, c0])
    h, h_final, c_final = run_forward(layer, bottom, top)
    expected = reference(x, cont, params_of(layer), x_static=x_static, h0=h0, c0=c0)
    for got, want in zip((h, h_final, c_final), expected):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_in_a_net_caffe_blobs_load_one_to_one_and_cont_takes_no_gradient():
    text = """
    force_backward: true
    layer { name: "in" type: "Input" top: "x" top: "cont" top: "target"
            input_param { shape { dim: 3 dim: 2 dim: 2 } shape { dim: 3 dim: 2 } shape { dim: 3 dim: 2 dim: 3 } } }
    layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h" recurrent_param { num_output: 3 } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "h" bottom: "target" top: "loss" }
    """
    net = caffelite.Net(text_format.Parse(text, caffe_pb2.NetParameter()), caffelite.TRAIN, dtype=np.float64)
    rng = np.random.default_rng(9)
    weights = [rng.normal(0, 0.5, (12, 2)), rng.normal(0, 0.5, 12), rng.normal(0, 0.5, (12, 3))]
    trained = caffe_pb2.NetParameter()
    layer = trained.layer.add(name="lstm", type="LSTM")
    for array in weights:  # as Caffe saves them: W_xc, b_c, W_hc
        blob = layer.blobs.add()
        blob.shape.dim.extend(array.shape)
        blob.data.extend(array.ravel())
    net.copy_from(trained)
    x, cont = rng.normal(size=(3, 2, 2)), np.array([[0, 0], [1, 1], [1, 0]], dtype=float)
    out = net.forward(blobs=["h"], x=x, cont=cont, target=np.zeros((3, 2, 3)))
    # A .caffemodel holds float32 values.
    expected = reference(x, cont, [w.astype(np.float32).astype(float) for w in weights])[0]
    np.testing.assert_allclose(out["h"], expected, rtol=1e-12, atol=1e-14)
    grads = net.backward()
    assert np.any(grads["x"] != 0) and not np.any(grads["cont"])
    assert all(np.any(p.diff != 0) for p in net.params["lstm"])
