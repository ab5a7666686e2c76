"""What the RNN and LSTM layer tests share: the layer text, inputs, and the checks both recurrent layers must pass."""

import numpy as np
import pytest

from caffelite.errors import NetError
from layer_harness import make_layer, run_forward

FILLERS = 'weight_filler { type: "gaussian" std: 0.6 } bias_filler { type: "gaussian" std: 0.4 }'


def recurrent_text(layer_type, name, top, states, num_output=3, expose_hidden=False, fillers=FILLERS, extra="",
                   static=False):
    """A recurrent layer on bottoms x, cont (and x_static); `states` names the hidden states, which expose_hidden
    adds as bottoms `{state}0` and tops `{state}T`."""
    bottoms = 'bottom: "x" bottom: "cont"' + (' bottom: "x_static"' if static else "")
    tops = f'top: "{top}"'
    if expose_hidden:
        bottoms += "".join(f' bottom: "{state}0"' for state in states)
        tops += "".join(f' top: "{state}T"' for state in states)
    return (
        f'name: "{name}" type: "{layer_type}" {bottoms} {tops} recurrent_param {{ num_output: {num_output} '
        f'{fillers} expose_hidden: {str(expose_hidden).lower()} {extra} }}'
    )


def params_of(layer):
    return [p.data.copy() for p in layer.params]


def sequence(steps=3, streams=2, features=(2, 2), seed=0):
    return np.random.default_rng(seed).normal(size=(steps, streams) + features)


def check_cont_zero_mid_sequence_restarts_that_stream(text):
    x = sequence(steps=4)
    layer, bottom, top = make_layer(text, [x, np.array([[0, 0], [1, 1], [0, 1], [1, 1]], dtype=float)])
    (out,) = run_forward(layer, bottom, top)
    # Stream 0 from step 2 on sees only x[2:], as if it were a fresh sequence.
    fresh, bottom2, top2 = make_layer(text, [x[2:], np.array([[0, 0], [1, 1]], dtype=float)])
    (out_fresh,) = run_forward(fresh, bottom2, top2)
    np.testing.assert_allclose(out[2:, 0], out_fresh[:, 0], rtol=1e-12)
    assert not np.allclose(out[2:, 1], out_fresh[:, 1])


def check_state_is_carried_between_forwards(text):
    # Caffe's TestForward: one batch of T steps equals T batches of one step (cont 0 then 1, 1, ...).
    x = sequence(steps=3)
    cont = np.array([[0, 0], [1, 1], [1, 1]], dtype=float)
    layer, bottom, top = make_layer(text, [x, cont])
    (whole,) = run_forward(layer, bottom, top)
    stepper, bottom1, top1 = make_layer(text, [x[:1], cont[:1]])
    for t in range(3):
        bottom1[0].data[...] = x[t : t + 1]
        bottom1[1].data[...] = cont[t : t + 1]
        np.testing.assert_allclose(run_forward(stepper, bottom1, top1)[0][0], whole[t], rtol=1e-12)
    # All-zero cont: every step starts afresh, so only the first step agrees.
    restarting, bottom1, top1 = make_layer(text, [x[:1], np.zeros((1, 2))])
    for t in range(3):
        bottom1[0].data[...] = x[t : t + 1]
        step = run_forward(restarting, bottom1, top1)[0][0]
        assert np.allclose(step, whole[t]) == (t == 0)


def check_reset_forgets_the_carried_state(text):
    x, cont = sequence(steps=2), np.ones((2, 2))
    layer, bottom, top = make_layer(text, [x, cont])
    first = run_forward(layer, bottom, top)[0]
    assert not np.allclose(run_forward(layer, bottom, top)[0], first)
    layer.reset()
    np.testing.assert_array_equal(run_forward(layer, bottom, top)[0], first)


def check_no_gradient_to_cont(text):
    layer, bottom, top = make_layer(text, [sequence(), np.ones((3, 2))])
    run_forward(layer, bottom, top)
    assert not layer.allow_force_backward(1) and layer.allow_force_backward(0)
    with pytest.raises(NetError, match="continuation"):
        layer.backward(top, [True, True], bottom)
