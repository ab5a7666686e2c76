"""Look up a learned vector for each integer input (a one-hot InnerProduct)."""

from caffelite.errors import NetError
from caffelite.fillers import fill
from caffelite.function import Function, register_layer
from caffelite.layers._in_place import refuse_in_place
from caffelite.layers._index_ops import read_indices, sum_rows_by_index


@register_layer("Embed")
class Embed(Function):
    """y[..., :] = W[x[...], :] + b, for integer x in [0, input_dim); W is (input_dim, num_output), b is (num_output,).

    dW[k] += sum of dy over the inputs equal to k; db += sum of all dy; the inputs get no gradient.
    """

    exact_num_bottom = 1
    exact_num_top = 1

    def allow_force_backward(self, bottom_index):
        return False  # the input is a set of indices

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        embed_param = self.param.embed_param
        self.num_output = embed_param.num_output
        self.input_dim = embed_param.input_dim
        if self.num_output <= 0:
            raise NetError(f"{self.describe()}: num_output must be positive, got {self.num_output}")
        if self.input_dim <= 0:
            raise NetError(f"{self.describe()}: input_dim must be positive, got {self.input_dim}")
        self.bias_term = embed_param.bias_term
        # (K, N): the transpose of InnerProduct's layout, so each lookup reads one contiguous row.
        fill(self.new_param((self.input_dim, self.num_output)).data, embed_param.weight_filler)
        if self.bias_term:
            fill(self.new_param((self.num_output,)).data, embed_param.bias_filler)

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape + (self.num_output,))

    def forward(self, bottom, top):
        self.indices = read_indices(self, bottom[0].data, self.input_dim, "input", integral=True)
        y = top[0].data.reshape(-1, self.num_output)
        y[...] = self.params[0].data[self.indices]
        if self.bias_term:
            y += self.params[1].data

    def backward(self, top, propagate_down, bottom):
        dy = top[0].grad.reshape(-1, self.num_output)
        rows, sums = sum_rows_by_index(dy, self.indices)
        self.params[0].grad[rows] += sums
        if self.bias_term:
            self.params[1].grad += dy.sum(axis=0)
        if propagate_down[0]:
            bottom[0].grad[...] = 0  # piecewise constant in the indices
