"""Shared plumbing of the recurrent layers (RNN, LSTM) and the LSTM cell arithmetic (also used by LSTMUnit).

Caffe builds an unrolled Net for RNN and LSTM; here the same recurrence runs as a Python loop over time steps,
with the learnable blobs in the order in which that unrolled Net first creates them, so .caffemodel blobs map
one to one:
    input transform W_x (G, x_dim), b (G,), [static transform W_static (G, static_dim)], then the cell's own blobs,
with G = gate_rows * num_output (RNN: 1, LSTM: 4).
"""

import logging

import numpy as np

from caffelite.errors import NetError, ShapeError
from caffelite.fillers import fill
from caffelite.function import Function
from caffelite.layers._axis import count
from caffelite.layers._logistic import sigmoid

log = logging.getLogger("caffelite")


# -- the LSTM cell, on arrays of shape (..., N, D) / (..., N, 4D) / (..., N) ----------------------------------
def lstm_unit_forward(c_prev, gates, cont):
    """c = cont * sigmoid(f') * c_prev + sigmoid(i') * tanh(g'); h = sigmoid(o') * tanh(c).

    `gates` holds [i', f', o', g'] in blocks of D along its last axis. Returns (c, h, acts) where acts holds the
    activations [i, f, o, g] in the same layout, f already multiplied by cont.
    """
    dim = c_prev.shape[-1]
    acts = np.empty_like(gates)
    acts[..., : 3 * dim] = sigmoid(gates[..., : 3 * dim])
    acts[..., 3 * dim :] = np.tanh(gates[..., 3 * dim :])
    acts[..., dim : 2 * dim] *= cont[..., None]
    i, f, o, g = _blocks(acts, dim)
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return c, h, acts


def lstm_unit_backward(dc, dh, c_prev, c, acts, cont):
    """Gradients (dc_prev, dgates) of one LSTM step, given dc and dh at its outputs.

    As in Caffe, the forget gate's derivative is written f (1 - f) with f = cont * sigmoid(f'): exact for the
    binary cont the layer is specified for (and zero where cont == 0).
    """
    dim = c.shape[-1]
    i, f, o, g = _blocks(acts, dim)
    tanh_c = np.tanh(c)
    dc_total = dc + dh * o * (1 - tanh_c * tanh_c)
    dgates = np.empty_like(acts)
    dgates[..., :dim] = dc_total * g * i * (1 - i)
    dgates[..., dim : 2 * dim] = dc_total * c_prev * f * (1 - f)
    dgates[..., 2 * dim : 3 * dim] = dh * tanh_c * o * (1 - o)
    dgates[..., 3 * dim :] = dc_total * i * (1 - g * g)
    return dc_total * f, dgates


def _blocks(acts, dim):
    return tuple(acts[..., k * dim : (k + 1) * dim] for k in range(4))


# -- the recurrent layer base ----------------------------------------------------------------------------------
class Recurrent(Function):
    """Caffe's RecurrentLayer: bottoms x (T, N, ...), cont (T, N), [x_static (N, ...)], [exposed initial states];
    tops: the output (T, N, num_output), [exposed final states (1, N, num_output)].

    Without expose_hidden the final states of one forward are the initial states of the next (Caffe copies
    h_T into h_0 before each forward); a cont of 0 at a step discards the state carried into it.
    With expose_hidden, backward also takes the gradients of the final-state tops and gives the initial-state
    bottoms theirs; Caffe shares only the data of those blobs with its unrolled net, so it drops both.
    Subclasses set `state_names`, `gate_rows` and implement make_cell_params, run_forward, run_backward.
    """

    state_names = ()
    gate_rows = 1

    def __init__(self, param, *args, **kwargs):
        super().__init__(param, *args, **kwargs)
        self.expose_hidden = param.recurrent_param.expose_hidden
        exposed = len(self.state_names) * self.expose_hidden
        self.min_bottom = 2 + exposed
        self.max_bottom = 3 + exposed
        self.exact_num_top = 1 + exposed

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1

    def setup(self, bottom, top):
        rp = self.param.recurrent_param
        self.num_output = rp.num_output
        if self.num_output <= 0:
            raise NetError(f"{self.describe()}: recurrent_param.num_output must be positive, got {self.num_output}")
        self.debug_info = rp.debug_info
        self.static_input = len(bottom) > 2 + len(self.state_names) * self.expose_hidden
        self._check_sequence_shapes(bottom)
        self.steps = bottom[0].shape[0]
        self.x_dim = count(bottom[0].shape, 2)
        rows = self.gate_rows * self.num_output
        fill(self.new_param((rows, self.x_dim)).data, rp.weight_filler)
        fill(self.new_param((rows,)).data, rp.bias_filler)
        if self.static_input:
            if bottom[2].num_axes < 2:
                raise ShapeError(
                    f"{self.describe()}: x_static must have at least 2 axes (N, ...), got shape {bottom[2].shape}"
                )
            self.static_dim = count(bottom[2].shape, 1)
            fill(self.new_param((rows, self.static_dim)).data, rp.weight_filler)
        self.cell_offset = len(self.params)
        self.make_cell_params(rp.weight_filler, rp.bias_filler)
        self._carried = None

    def reshape(self, bottom, top):
        self._check_sequence_shapes(bottom)
        x_shape = bottom[0].shape
        if x_shape[0] != self.steps:
            raise ShapeError(f"{self.describe()}: the number of time steps changed from {self.steps} to {x_shape[0]}")
        if count(x_shape, 2) != self.x_dim:
            raise ShapeError(
                f"{self.describe()}: x of shape {x_shape} has {count(x_shape, 2)} values per step and stream, "
                f"the weights expect {self.x_dim}"
            )
        streams = x_shape[1]
        if self.static_input:
            static_shape = bottom[2].shape
            if len(static_shape) < 2 or static_shape[0] != streams or count(static_shape, 1) != self.static_dim:
                raise ShapeError(
                    f"{self.describe()}: x_static must be ({streams}, ...) with {self.static_dim} values per "
                    f"stream, got shape {static_shape}"
                )
        state_shape = (1, streams, self.num_output)
        for k, name in enumerate(self.state_names if self.expose_hidden else ()):
            index = self._state_bottom(k)
            if bottom[index].shape != state_shape:
                raise ShapeError(
                    f"{self.describe()}: {name}_0 (bottom {index}) must have shape {state_shape}, "
                    f"got {bottom[index].shape}"
                )
        if self._carried is not None and self._carried[0].shape != state_shape[1:]:
            # Caffe's carried state is undefined after the stream count changes; start over from zero.
            self._carried = None
        top[0].reshape(self.steps, streams, self.num_output)
        for t in top[1:]:
            t.reshape(state_shape)

    def forward(self, bottom, top):
        x, cont = bottom[0].data, bottom[1].data
        if self.expose_hidden:
            initial = [bottom[self._state_bottom(k)].data[0] for k in range(len(self.state_names))]
        elif self._carried is not None:
            initial = self._carried
        else:
            shape = (x.shape[1], self.num_output)
            initial = [np.zeros(shape, dtype=x.dtype) for _ in self.state_names]
        output, final, self._cache = self.run_forward(self._gate_inputs(bottom), cont, initial)
        top[0].data[...] = output
        if self.expose_hidden:
            for t, state in zip(top[1:], final):
                t.data[...] = state
        else:
            self._carried = [state.copy() for state in final]
        if self.debug_info:
            self._log_debug("Forward", "top blob", "data", self.debug_blobs(self._cache))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            raise NetError(f"{self.describe()}: cannot backpropagate to the sequence continuation indicators")
        x, cont = bottom[0].data, bottom[1].data
        streams = x.shape[1]
        if self.expose_hidden:
            final_grads = [t.grad[0] for t in top[1:]]
        else:
            # Truncated BPTT: nothing flows in from the steps after this batch.
            final_grads = [np.zeros((streams, self.num_output), dtype=x.dtype) for _ in self.state_names]
        dgates, initial_grads = self.run_backward(top[0].grad, final_grads, cont, self._cache)
        self._input_transform_backward(dgates, propagate_down, bottom)
        for k, grad in enumerate(initial_grads if self.expose_hidden else ()):
            if propagate_down[self._state_bottom(k)]:
                bottom[self._state_bottom(k)].grad[...] = grad[None]
        if self.debug_info:
            self._log_debug("Backward", "param blob", "diff", [(self.name, str(i), p.grad)
                                                                 for i, p in enumerate(self.params)])

    # -- steps ------------------------------------------------------------------------------------------------
    def _gate_inputs(self, bottom):
        """W_x x_t + b (+ W_static x_static) for every step at once: (T, N, G)."""
        x = bottom[0].data
        steps, streams = x.shape[:2]
        pre = x.reshape(steps * streams, self.x_dim) @ self.params[0].data.T + self.params[1].data
        pre = pre.reshape(steps, streams, -1)
        if self.static_input:
            pre += bottom[2].data.reshape(streams, self.static_dim) @ self.params[2].data.T
        return pre

    def _input_transform_backward(self, dgates, propagate_down, bottom):
        x = bottom[0].data
        steps, streams = x.shape[:2]
        flat = dgates.reshape(steps * streams, -1)
        self.params[0].grad += flat.T @ x.reshape(steps * streams, self.x_dim)
        self.params[1].grad += flat.sum(axis=0)
        if propagate_down[0]:
            bottom[0].grad[...] = (flat @ self.params[0].data).reshape(x.shape)
        if self.static_input:
            # The static input feeds every step: its gradient sums over time.
            dstatic = dgates.sum(axis=0)
            x_static = bottom[2].data.reshape(streams, self.static_dim)
            self.params[2].grad += dstatic.T @ x_static
            if propagate_down[2]:
                bottom[2].grad[...] = (dstatic @ self.params[2].data).reshape(bottom[2].shape)

    def reset(self):
        """Forget the carried hidden state (Caffe's RecurrentLayer::Reset)."""
        self._carried = None

    def cell_param(self, index):
        """The index-th learnable blob of the recurrent cell (after the input transform's blobs)."""
        return self.params[self.cell_offset + index]

    # -- checks and debug output ------------------------------------------------------------------------------
    def _state_bottom(self, k):
        return 2 + self.static_input + k

    def _check_sequence_shapes(self, bottom):
        x_shape, cont_shape = bottom[0].shape, bottom[1].shape
        if len(x_shape) < 3:
            raise ShapeError(
                f"{self.describe()}: x (bottom 0) must have at least 3 axes (T, N, features...), got {x_shape}"
            )
        if cont_shape != x_shape[:2]:
            raise ShapeError(
                f"{self.describe()}: cont (bottom 1) must have shape (T, N) = {x_shape[:2]}, got {cont_shape}"
            )

    def _log_debug(self, direction, kind, what, entries):
        # The lines Caffe's unrolled net prints with debug_info, for the blobs this implementation keeps.
        for layer, blob, array in entries:
            mean = float(np.abs(array).sum() / max(array.size, 1))
            log.info(f"    [{direction}] Layer {layer}, {kind} {blob} {what}: {mean:g}")

    def make_cell_params(self, weight_filler, bias_filler):
        raise NotImplementedError

    def run_forward(self, gate_inputs, cont, initial):
        """-> (output (T, N, H), final states [(N, H)], cache)"""
        raise NotImplementedError

    def run_backward(self, dout, final_grads, cont, cache):
        """-> (d gate_inputs (T, N, G), initial-state grads [(N, H)]); adds into the cell's param grads."""
        raise NotImplementedError

    def debug_blobs(self, cache):
        """[(unrolled layer name, blob name, array)] for debug_info."""
        return []
