"""Softmax along one axis."""

import numpy as np

from caffelite.function import Function, register_layer
from caffelite.layers._axis import canonical_axis


def softmax(x, axis):
    """exp(x) / sum(exp(x)) along `axis`, shifted by the maximum so exp never overflows."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@register_layer("Softmax")
class Softmax(Function):
    """y_c = exp(x_c) / sum_k exp(x_k) along softmax_param.axis (default 1); other axes are independent."""

    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        self.axis = canonical_axis(self, self.param.softmax_param.axis, bottom[0].num_axes)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = softmax(bottom[0].data, self.axis)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:  # uses only the top, so in place is fine
            y, dy = top[0].data, top[0].grad
            bottom[0].grad[...] = (dy - np.sum(dy * y, axis=self.axis, keepdims=True)) * y
