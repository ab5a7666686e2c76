"""Add a bias, learned or given as a second bottom, broadcast along the input's other axes."""

from caffelite.fillers import fill
from caffelite.function import Function, register_layer
from caffelite.layers._broadcast import learned_operand_shape, split_dims, sum_to_operand


@register_layer("Bias")
class Bias(Function):
    """y = x + b, b's axes matching x.shape[axis:axis + num_axes]; b is bottom[1], or else the param [b]"""

    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1

    def setup(self, bottom, top):
        bias_param = self.param.bias_param
        if len(bottom) == 1:
            shape = learned_operand_shape(self, bottom[0].shape, bias_param.axis, bias_param.num_axes)
            fill(self.new_param(shape).data, bias_param.filler)

    def reshape(self, bottom, top):
        bias = bottom[1] if len(bottom) > 1 else self.params[0]
        self.dims = split_dims(self, bottom[0].shape, bias.shape, self.param.bias_param.axis)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        bias = (bottom[1] if len(bottom) > 1 else self.params[0]).data
        y = bottom[0].data.reshape(self.dims) + bias.reshape(self.dims[1], 1)
        top[0].data[...] = y.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].grad
        if len(bottom) == 1:
            self.params[0].grad += sum_to_operand(dy, self.dims, self.params[0].shape)
        elif propagate_down[1]:
            bottom[1].grad[...] = sum_to_operand(dy, self.dims, bottom[1].shape)
        if propagate_down[0] and top[0] is not bottom[0]:  # in place, the grad already is dy
            bottom[0].grad[...] = dy
