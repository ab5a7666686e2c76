"""Multiply by a scale, learned or given as a second bottom, broadcast along the input's other axes; optional bias."""

import numpy as np

from caffelite.fillers import fill
from caffelite.function import Function, register_layer
from caffelite.layers._threads import over_batch
from caffelite.layers._broadcast import learned_operand_shape, split_dims, sum_to_operand
from caffelite.proto import caffe_pb2


@register_layer("Scale")
class Scale(Function):
    """y = x * s (+ b), s's axes matching x.shape[axis:axis + num_axes]; s is bottom[1] or the param

    params: [s] or [s, b] with one bottom; [] or [b] with two. Caffe runs the bias as an inner Bias layer set
    up on the same axis (and, with two bottoms, bottom[1]'s number of axes), so b has the matching shape.
    """

    min_bottom = 1
    max_bottom = 2
    exact_num_top = 1
    _input = None

    def setup(self, bottom, top):
        scale_param = self.param.scale_param
        shape = bottom[0].shape
        if len(bottom) == 1:
            scale_shape = learned_operand_shape(self, shape, scale_param.axis, scale_param.num_axes)
            filler = scale_param.filler
            if not scale_param.HasField("filler"):
                filler = caffe_pb2.FillerParameter(type="constant", value=1)  # identity until trained
            fill(self.new_param(scale_shape).data, filler)
        self.bias_term = scale_param.bias_term
        if self.bias_term:
            bias_axes = bottom[1].num_axes if len(bottom) > 1 else scale_param.num_axes
            bias_shape = learned_operand_shape(self, shape, scale_param.axis, bias_axes)
            fill(self.new_param(bias_shape).data, scale_param.bias_filler)

    def reshape(self, bottom, top):
        axis = self.param.scale_param.axis
        self.dims = split_dims(self, bottom[0].shape, self._scale(bottom).shape, axis)
        if self.bias_term:
            self.bias_dims = split_dims(self, bottom[0].shape, self.params[-1].shape, axis)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        # In place, x is about to be overwritten, and the scale's gradient needs it.
        self._input = x.copy() if top[0] is bottom[0] and self.need_backward else None
        y = top[0].data.reshape(self.dims)
        x = x.reshape(self.dims)
        scale = self._scale(bottom).data.reshape(self.dims[1], 1)
        bias = self.params[-1].data.reshape(self.bias_dims[1], 1) if self.bias_term else None
        over_batch(len(x), lambda lo, hi: self._apply(x[lo:hi], scale, bias, y[lo:hi]), x.size)

    def _apply(self, x, scale, bias, y):
        """y = x * scale (+ bias) for a slice of outer rows, in (outer, dim, inner) form."""
        np.multiply(x, scale, out=y)
        if bias is not None:
            y.reshape((len(y),) + self.bias_dims[1:])[...] += bias

    def backward(self, top, propagate_down, bottom):
        dy = top[0].grad
        if self.bias_term:
            bias = self.params[-1]
            bias.grad += sum_to_operand(dy, self.bias_dims, bias.shape)
        scale = self._scale(bottom)
        x = bottom[0].data if self._input is None else self._input
        if len(bottom) == 1:
            scale.grad += sum_to_operand(dy * x, self.dims, scale.shape)
        elif propagate_down[1]:
            scale.grad[...] = sum_to_operand(dy * x, self.dims, scale.shape)
        # Last: in place, this overwrites dy, which the sums above still needed.
        if propagate_down[0]:
            dx = dy.reshape(self.dims) * scale.data.reshape(self.dims[1], 1)
            bottom[0].grad[...] = dx.reshape(bottom[0].shape)

    def _scale(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.params[0]
