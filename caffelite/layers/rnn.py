"""Elman recurrent layer, Caffe's RNN."""

import numpy as np

from caffelite.fillers import fill
from caffelite.function import register_layer
from caffelite.layers._recurrent import Recurrent


@register_layer("RNN")
class RNN(Recurrent):
    """h_t = tanh(W_hh (cont_t h_{t-1}) + W_xh x_t + b_h [+ W_xh_static x_static]); o_t = tanh(W_ho h_t + b_o)

    params (Caffe's order): W_xh (H, x_dim), b_h (H,), [W_xh_static (H, static_dim)], W_hh (H, H), W_ho (H, H),
    b_o (H,). top[0] is o (T, N, H); with expose_hidden, bottom h_0 and top h_T (1, N, H).
    """

    state_names = ("h",)
    gate_rows = 1

    def make_cell_params(self, weight_filler, bias_filler):
        hidden = self.num_output
        fill(self.new_param((hidden, hidden)).data, weight_filler)  # W_hh
        fill(self.new_param((hidden, hidden)).data, weight_filler)  # W_ho
        fill(self.new_param((hidden,)).data, bias_filler)  # b_o

    def run_forward(self, gate_inputs, cont, initial):
        w_hh = self.cell_param(0).data
        h = np.empty_like(gate_inputs)
        h_conted = np.empty_like(gate_inputs)
        previous = initial[0]
        for t in range(len(gate_inputs)):
            h_conted[t] = cont[t][:, None] * previous
            h[t] = np.tanh(h_conted[t] @ w_hh.T + gate_inputs[t])
            previous = h[t]
        o = np.tanh(h @ self.cell_param(1).data.T + self.cell_param(2).data)
        return o, [h[-1]], (h, h_conted, o)

    def run_backward(self, dout, final_grads, cont, cache):
        h, h_conted, o = cache
        hidden = self.num_output
        w_hh, w_ho, b_o = (self.cell_param(i) for i in range(3))
        do_pre = dout * (1 - o * o)
        w_ho.grad += do_pre.reshape(-1, hidden).T @ h.reshape(-1, hidden)
        b_o.grad += do_pre.reshape(-1, hidden).sum(axis=0)
        dh_from_output = do_pre @ w_ho.data
        dh_pre = np.empty_like(h)
        carried = final_grads[0]
        for t in reversed(range(len(h))):
            dh_pre[t] = (dh_from_output[t] + carried) * (1 - h[t] * h[t])
            carried = (dh_pre[t] @ w_hh.data) * cont[t][:, None]
        w_hh.grad += dh_pre.reshape(-1, hidden).T @ h_conted.reshape(-1, hidden)
        return dh_pre, [carried]

    def debug_blobs(self, cache):
        h, _, o = cache
        entries = []
        for t in range(len(h)):
            entries.append((f"{self.name}_h_neuron_{t + 1}", f"h_{t + 1}", h[t]))
            entries.append((f"{self.name}_o_neuron_{t + 1}", f"o_{t + 1}", o[t]))
        return entries
