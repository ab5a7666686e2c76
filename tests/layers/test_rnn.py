"""RNN: Caffe's blob layout, forward against explicit per-step formulas, state carrying and expose_hidden,
cont resets, x_static, gradients through time on every bottom that takes one and on every param, errors."""

import logging
import math

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
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


def rnn_text(num_output=3, expose_hidden=False, fillers=FILLERS, extra="", static=False, name="rnn"):
    return recurrent_text("RNN", name, "o", ("h",), num_output, expose_hidden, fillers, extra, static)


def reference(x, cont, params, x_static=None, h0=None):
    """Per step and stream, each unit as an explicit sum: returns (o, h_T)."""
    if x_static is None:
        w_xh, b_h, w_hh, w_ho, b_o = params
    else:
        w_xh, b_h, w_static, w_hh, w_ho, b_o = params
    steps, streams = cont.shape
    hidden = len(b_h)
    xs = x.reshape(steps, streams, -1)
    h_prev = np.zeros((streams, hidden)) if h0 is None else h0.reshape(streams, hidden).copy()
    o = np.zeros((steps, streams, hidden))
    for t in range(steps):
        h_new = np.zeros((streams, hidden))
        for n in range(streams):
            for j in range(hidden):
                s = b_h[j] + sum(w_xh[j, k] * xs[t, n, k] for k in range(xs.shape[2]))
                s += sum(w_hh[j, k] * cont[t, n] * h_prev[n, k] for k in range(hidden))
                if x_static is not None:
                    flat = x_static.reshape(streams, -1)
                    s += sum(w_static[j, k] * flat[n, k] for k in range(flat.shape[1]))
                h_new[n, j] = math.tanh(s)
            for j in range(hidden):
                o[t, n, j] = math.tanh(b_o[j] + sum(w_ho[j, k] * h_new[n, k] for k in range(hidden)))
        h_prev = h_new
    return o, h_prev[None]


def test_blob_layout_matches_caffe_unrolled_net():
    x, cont = sequence(features=(2, 3)), np.ones((3, 2))
    layer, _, top = make_layer(rnn_text(num_output=4), [x, cont])
    assert [p.shape for p in layer.params] == [(4, 6), (4,), (4, 4), (4, 4), (4,)]
    assert top[0].shape == (3, 2, 4)
    layer, _, _ = make_layer(rnn_text(num_output=4, static=True), [x, cont, np.ones((2, 5, 1))])
    # W_xh, b_h, W_xh_static, W_hh, W_ho, b_o: the order the unrolled net first creates them.
    assert [p.shape for p in layer.params] == [(4, 6), (4,), (4, 5), (4, 4), (4, 4), (4,)]


def test_fillers_apply_to_every_blob_and_default_to_zero():
    fillers = 'weight_filler { type: "constant" value: 0.5 } bias_filler { type: "constant" value: -2 }'
    layer, _, _ = make_layer(rnn_text(fillers=fillers, static=True), [sequence(), np.ones((3, 2)), np.ones((2, 2))])
    for index, p in enumerate(layer.params):
        assert np.all(p.data == (-2 if index in (1, 5) else 0.5))
    layer, _, _ = make_layer(rnn_text(fillers=""), [sequence(), np.ones((3, 2))], dtype=np.float32)
    assert all(p.data.dtype == np.float32 and not np.any(p.data) for p in layer.params)


@pytest.mark.parametrize("static", [False, True])
def test_forward_matches_explicit_steps(static):
    x = sequence(steps=4)
    cont = np.array([[0, 0], [1, 1], [0, 1], [1, 1]], dtype=float)  # stream 0 restarts at step 2
    bottoms = [x, cont] + ([np.random.default_rng(3).normal(size=(2, 3))] if static else [])
    layer, bottom, top = make_layer(rnn_text(static=static), bottoms)
    (o,) = run_forward(layer, bottom, top)
    expected, _ = reference(x, cont, params_of(layer), x_static=bottoms[2] if static else None)
    np.testing.assert_allclose(o, expected, rtol=1e-12, atol=1e-14)


def test_cont_zero_mid_sequence_restarts_that_stream():
    check_cont_zero_mid_sequence_restarts_that_stream(rnn_text())


def test_state_is_carried_between_forwards_without_expose_hidden():
    check_state_is_carried_between_forwards(rnn_text())


def test_reset_forgets_the_carried_state():
    check_reset_forgets_the_carried_state(rnn_text())


def test_expose_hidden_round_trip_equals_the_longer_sequence():
    x = sequence(steps=4)
    cont = np.array([[0, 1], [1, 1], [1, 0], [1, 1]], dtype=float)
    h0 = np.random.default_rng(5).normal(size=(1, 2, 3))
    whole, bottom, top = make_layer(rnn_text(expose_hidden=True), [x, cont, h0])
    o_whole, h_final = run_forward(whole, bottom, top)
    expected, expected_h = reference(x, cont, params_of(whole), h0=h0)
    np.testing.assert_allclose(o_whole, expected, rtol=1e-12)
    np.testing.assert_allclose(h_final, expected_h, rtol=1e-12)
    half, bottom2, top2 = make_layer(rnn_text(expose_hidden=True), [x[:2], cont[:2], h0])
    o_first, h_mid = run_forward(half, bottom2, top2)
    bottom2[0].data[...], bottom2[1].data[...], bottom2[2].data[...] = x[2:], cont[2:], h_mid
    o_second, h_end = run_forward(half, bottom2, top2)
    np.testing.assert_allclose(np.concatenate([o_first, o_second]), o_whole, rtol=1e-12)
    np.testing.assert_allclose(h_end, h_final, rtol=1e-12)


def test_expose_hidden_does_not_carry_state():
    x, cont, h0 = sequence(steps=2), np.ones((2, 2)), np.zeros((1, 2, 3))
    layer, bottom, top = make_layer(rnn_text(expose_hidden=True), [x, cont, h0])
    first = run_forward(layer, bottom, top)
    for a, b in zip(run_forward(layer, bottom, top), first):
        np.testing.assert_array_equal(a, b)


# -- gradients ------------------------------------------------------------------------------------------------
def test_gradients():
    cont = np.array([[0, 0], [1, 1], [1, 0]], dtype=float)
    layer, bottom, top = make_layer(rnn_text(), [sequence(features=(3,)), cont])
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_gradients_with_static_input():
    cont = np.array([[0, 0], [1, 0], [1, 1]], dtype=float)
    x_static = np.random.default_rng(4).normal(size=(2, 2, 1))
    layer, bottom, top = make_layer(rnn_text(static=True), [sequence(features=(2,)), cont, x_static])
    check_gradients(layer, bottom, top, check_bottom=[0, 2])


@pytest.mark.parametrize("static", [False, True])
def test_gradients_through_exposed_hidden_state(static):
    # cont is 1 at the first step, so h0 matters; hT's gradient flows back through every step.
    cont = np.array([[1, 1], [0, 1], [1, 1]], dtype=float)
    h0 = np.random.default_rng(6).normal(size=(1, 2, 2))
    bottoms = [sequence(features=(2,)), cont] + ([np.ones((2, 2)) * 0.3] if static else []) + [h0]
    layer, bottom, top = make_layer(rnn_text(num_output=2, expose_hidden=True, static=static), bottoms)
    check_gradients(layer, bottom, top, check_bottom=[0, 2, 3] if static else [0, 2])


def test_param_grads_accumulate_bottom_grads_are_assigned_propagate_down_respected():
    cont = np.array([[0, 0], [1, 1], [1, 1]], dtype=float)
    layer, bottom, top = make_layer(rnn_text(), [sequence(), cont])
    run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    bottom[0].grad[...] = 100
    layer.backward(top, [True, False], bottom)
    once = [p.grad.copy() for p in layer.params]
    dx = bottom[0].grad.copy()
    assert not np.any(dx == 100)
    layer.backward(top, [True, False], bottom)
    for p, g in zip(layer.params, once):
        np.testing.assert_allclose(p.grad, 2 * g)
    np.testing.assert_allclose(bottom[0].grad, dx)
    bottom[0].grad[...] = 7
    layer.backward(top, [False, False], bottom)
    assert np.all(bottom[0].grad == 7)


def test_no_gradient_to_cont():
    check_no_gradient_to_cont(rnn_text())


def test_float32_stays_float32():
    layer, bottom, top = make_layer(rnn_text(), [sequence(), np.ones((3, 2))], dtype=np.float32)
    (o,) = run_forward(layer, bottom, top)
    assert o.dtype == np.float32
    top[0].grad[...] = 1
    layer.backward(top, [True, False], bottom)
    assert bottom[0].grad.dtype == np.float32 and all(p.grad.dtype == np.float32 for p in layer.params)


def test_stream_count_may_change_but_not_steps_or_features():
    layer, bottom, top = make_layer(rnn_text(), [sequence(), np.ones((3, 2))])
    run_forward(layer, bottom, top)
    bottom[0].reshape(3, 5, 2, 2)
    bottom[0].data[...] = sequence(streams=5)
    bottom[1].reshape(3, 5)
    bottom[1].data[...] = 1
    (o,) = run_forward(layer, bottom, top)
    assert top[0].shape == (3, 5, 3)
    # The state carried from 2 streams does not fit 5: they start from zero, like a fresh layer.
    fresh, bottom5, top5 = make_layer(rnn_text(), [bottom[0].data, bottom[1].data])
    np.testing.assert_array_equal(run_forward(fresh, bottom5, top5)[0], o)
    bottom[0].reshape(4, 5, 2, 2)
    bottom[1].reshape(4, 5)
    with pytest.raises(ShapeError, match="time steps"):
        layer.reshape(bottom, top)
    bottom[0].reshape(3, 5, 5)
    bottom[1].reshape(3, 5)
    with pytest.raises(ShapeError, match="layer 'rnn' \\(RNN\\)"):
        layer.reshape(bottom, top)


def test_debug_info_logs_internal_blobs(caplog):
    layer, bottom, top = make_layer(rnn_text(extra="debug_info: true"), [sequence(), np.ones((3, 2))])
    with caplog.at_level(logging.INFO, logger="caffelite"):
        run_forward(layer, bottom, top)
        top[0].grad[...] = 1
        layer.backward(top, [True, False], bottom)
    text = caplog.text
    assert "[Forward] Layer rnn_h_neuron_3, top blob h_3 data:" in text
    assert "[Backward] Layer rnn, param blob 4 diff:" in text


@pytest.mark.parametrize(
    "text, bottoms, error, match",
    [
        (rnn_text(num_output=0), [np.ones((3, 2, 2)), np.ones((3, 2))], NetError, "num_output"),
        (rnn_text(), [np.ones((3, 2)), np.ones((3, 2))], ShapeError, "3 axes"),
        (rnn_text(), [np.ones((3, 2, 2)), np.ones((3, 1))], ShapeError, "cont"),
        (rnn_text(), [np.ones((3, 2, 2)), np.ones((3, 2, 1))], ShapeError, "cont"),
        (rnn_text(static=True), [np.ones((3, 2, 2)), np.ones((3, 2)), np.ones((3, 4))], ShapeError, "x_static"),
        (rnn_text(static=True), [np.ones((3, 2, 2)), np.ones((3, 2)), np.ones(2)], ShapeError, "x_static"),
        (rnn_text(expose_hidden=True), [np.ones((3, 2, 2)), np.ones((3, 2)), np.ones((1, 2, 4))], ShapeError,
         "h_0"),
        (rnn_text(expose_hidden=True), [np.ones((3, 2, 2)), np.ones((3, 2))], NetError, "at least 3 bottoms"),
        (rnn_text(), [np.ones((3, 2, 2)), np.ones((3, 2)), np.ones((2, 1)), np.ones((2, 1))], NetError,
         "at most 3 bottoms"),
    ],
)
def test_configuration_errors(text, bottoms, error, match):
    with pytest.raises(error, match=match):
        make_layer(text, bottoms)


def test_expose_hidden_needs_the_final_state_top():
    text = rnn_text(expose_hidden=True).replace(' top: "hT"', "")
    with pytest.raises(NetError, match="expects 2 tops"):
        make_layer(text, [np.ones((3, 2, 2)), np.ones((3, 2)), np.zeros((1, 2, 3))])
