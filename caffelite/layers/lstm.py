"""Long short-term memory layer, Caffe's LSTM."""

import numpy as np

from caffelite.fillers import fill
from caffelite.function import register_layer
from caffelite.layers._recurrent import Recurrent, lstm_unit_backward, lstm_unit_forward


@register_layer("LSTM")
class LSTM(Recurrent):
    """[i' f' o' g']_t = W_hc (cont_t h_{t-1}) + W_xc x_t + b_c [+ W_xc_static x_static]; then LSTMUnit:
    c_t = cont_t sigmoid(f') c_{t-1} + sigmoid(i') tanh(g'), h_t = sigmoid(o') tanh(c_t)

    params (Caffe's order): W_xc (4H, x_dim), b_c (4H,), [W_xc_static (4H, static_dim)], W_hc (4H, H); the 4H
    rows are the gates i, f, o, g in blocks of H. top[0] is h (T, N, H); with expose_hidden, bottoms h_0, c_0
    and tops h_T, c_T (1, N, H).
    """

    state_names = ("h", "c")
    gate_rows = 4

    def make_cell_params(self, weight_filler, bias_filler):
        fill(self.new_param((4 * self.num_output, self.num_output)).data, weight_filler)  # W_hc

    def run_forward(self, gate_inputs, cont, initial):
        w_hc = self.cell_param(0).data
        steps = len(gate_inputs)
        shape = (steps,) + initial[0].shape
        h, c, c_prev, h_conted = (np.empty(shape, dtype=gate_inputs.dtype) for _ in range(4))
        acts = np.empty_like(gate_inputs)
        h_previous, c_previous = initial
        for t in range(steps):
            h_conted[t] = cont[t][:, None] * h_previous
            c_prev[t] = c_previous
            gates = h_conted[t] @ w_hc.T + gate_inputs[t]
            c[t], h[t], acts[t] = lstm_unit_forward(c_previous, gates, cont[t])
            h_previous, c_previous = h[t], c[t]
        return h, [h[-1], c[-1]], (h, c, c_prev, h_conted, acts)

    def run_backward(self, dout, final_grads, cont, cache):
        h, c, c_prev, h_conted, acts = cache
        w_hc = self.cell_param(0)
        dgates = np.empty_like(acts)
        dh_carried, dc_carried = final_grads
        for t in reversed(range(len(h))):
            dc_carried, dgates[t] = lstm_unit_backward(
                dc_carried, dout[t] + dh_carried, c_prev[t], c[t], acts[t], cont[t]
            )
            dh_carried = (dgates[t] @ w_hc.data) * cont[t][:, None]
        hidden = self.num_output
        w_hc.grad += dgates.reshape(-1, 4 * hidden).T @ h_conted.reshape(-1, hidden)
        return dgates, [dh_carried, dc_carried]

    def debug_blobs(self, cache):
        h, c = cache[:2]
        entries = []
        for t in range(len(h)):
            entries.append((f"{self.name}_unit_{t + 1}", f"c_{t + 1}", c[t]))
            entries.append((f"{self.name}_unit_{t + 1}", f"h_{t + 1}", h[t]))
        return entries
