"""One time step of the LSTM cell non-linearity, Caffe's LSTMUnit."""

from caffelite.errors import NetError, ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._recurrent import lstm_unit_backward, lstm_unit_forward


@register_layer("LSTMUnit")
class LSTMUnit(Function):
    """c = cont sigmoid(f') c_prev + sigmoid(i') tanh(g'); h = sigmoid(o') tanh(c), with x = [i' f' o' g'].

    bottoms: c_prev (1, N, D), x (1, N, 4D) gate inputs in blocks of D, cont (1, N); tops: c, h (1, N, D).
    """

    exact_num_bottom = 3
    exact_num_top = 2

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2

    def reshape(self, bottom, top):
        c_shape, x_shape, cont_shape = (b.shape for b in bottom)
        if len(c_shape) != 3 or len(x_shape) != 3 or len(cont_shape) != 2:
            raise ShapeError(
                f"{self.describe()}: expects c_prev (1, N, D), x (1, N, 4D) and cont (1, N), "
                f"got shapes {c_shape}, {x_shape}, {cont_shape}"
            )
        streams = c_shape[1]
        if any(s[0] != 1 or s[1] != streams for s in (c_shape, x_shape, cont_shape)):
            raise ShapeError(
                f"{self.describe()}: every bottom must have 1 time step and the same number of streams, "
                f"got shapes {c_shape}, {x_shape}, {cont_shape}"
            )
        if x_shape[2] != 4 * c_shape[2]:
            raise ShapeError(
                f"{self.describe()}: x must have 4 * {c_shape[2]} = {4 * c_shape[2]} gate inputs per stream, "
                f"got {x_shape[2]}"
            )
        top[0].reshape(c_shape)
        top[1].reshape(c_shape)

    def forward(self, bottom, top):
        c, h, _ = lstm_unit_forward(bottom[0].data, bottom[1].data, bottom[2].data)
        top[0].data[...] = c
        top[1].data[...] = h

    def backward(self, top, propagate_down, bottom):
        if propagate_down[2]:
            raise NetError(f"{self.describe()}: cannot backpropagate to the sequence continuation indicators")
        if not (propagate_down[0] or propagate_down[1]):
            return
        c_prev, gates, cont = bottom[0].data, bottom[1].data, bottom[2].data
        # The activations are recomputed from the bottoms, as Caffe does, rather than kept from forward.
        _, _, acts = lstm_unit_forward(c_prev, gates, cont)
        dc_prev, dgates = lstm_unit_backward(top[0].grad, top[1].grad, c_prev, top[0].data, acts, cont)
        if propagate_down[0]:
            bottom[0].grad[...] = dc_prev
        if propagate_down[1]:
            bottom[1].grad[...] = dgates
