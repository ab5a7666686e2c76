"""Fully connected layer."""

from caffelite.errors import NetError, ShapeError
from caffelite.fillers import fill
from caffelite.function import Function, register_layer
from caffelite.layers._axis import canonical_axis, count


@register_layer("InnerProduct")
class InnerProduct(Function):
    """y = x W^T + b, x flattened from `axis` on to (M, K); W is (N, K), or (K, N) with transpose (then y = x W + b).

    params: [W] or [W, b] with b of shape (N,). Axes before `axis` are kept: top shape = shape[:axis] + (N,).
    """

    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        ip_param = self.param.inner_product_param
        self.num_output = ip_param.num_output
        if self.num_output <= 0:
            raise NetError(f"{self.describe()}: num_output must be positive, got {self.num_output}")
        self.bias_term = ip_param.bias_term
        self.transpose = ip_param.transpose
        axis = canonical_axis(self, ip_param.axis, bottom[0].num_axes)
        self.inputs = count(bottom[0].shape, axis)
        weight_shape = (self.inputs, self.num_output) if self.transpose else (self.num_output, self.inputs)
        fill(self.new_param(weight_shape).data, ip_param.weight_filler)
        if self.bias_term:
            fill(self.new_param((self.num_output,)).data, ip_param.bias_filler)

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        axis = canonical_axis(self, self.param.inner_product_param.axis, len(shape))
        if count(shape, axis) != self.inputs:
            raise ShapeError(
                f"{self.describe()}: input of shape {shape} has {count(shape, axis)} values from axis {axis} on, "
                f"the weights expect {self.inputs}"
            )
        self.rows = count(shape, 0, axis)
        top[0].reshape(shape[:axis] + (self.num_output,))

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.rows, self.inputs)
        y = x @ self._weight_nk().T
        if self.bias_term:
            y += self.params[1].data
        top[0].data[...] = y.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].grad.reshape(self.rows, self.num_output)
        x = bottom[0].data.reshape(self.rows, self.inputs)
        weight = self.params[0]
        weight.grad += x.T @ dy if self.transpose else dy.T @ x
        if self.bias_term:
            self.params[1].grad += dy.sum(axis=0)
        if propagate_down[0]:
            bottom[0].grad[...] = (dy @ self._weight_nk()).reshape(bottom[0].shape)

    def _weight_nk(self):
        # Read at each use: the Net may swap in a shared owner's array after setup.
        weight = self.params[0].data
        return weight.T if self.transpose else weight
