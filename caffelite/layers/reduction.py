"""Reduce all trailing axes to one number."""

import numpy as np

from caffelite.errors import NetError
from caffelite.function import Function, register_layer
from caffelite.layers._axis import canonical_axis, count
from caffelite.layers._in_place import refuse_in_place
from caffelite.proto import caffe_pb2

_OP = caffe_pb2.ReductionParameter


@register_layer("Reduction")
class Reduction(Function):
    """y[i] = coeff * (sum_j x[i, j] | sum_j |x[i, j]| | sum_j x[i, j]^2 | mean_j x[i, j]), where i runs over the
    axes before reduction_param.axis (default 0: y is a scalar) and j over all the axes from it on."""

    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        self.operation = self.param.reduction_param.operation
        if self.operation not in (_OP.SUM, _OP.ASUM, _OP.SUMSQ, _OP.MEAN):
            raise NetError(f"{self.describe()}: unknown reduction operation {self.operation}")

    def reshape(self, bottom, top):
        reduction_param = self.param.reduction_param
        shape = bottom[0].shape
        axis = canonical_axis(self, reduction_param.axis, len(shape))
        self.num, self.dim = count(shape, 0, axis), count(shape, axis)
        top[0].reshape(shape[:axis])
        # The coefficient in the blob's precision, MEAN's 1/dim folded in, as Caffe computes it.
        coeff = self.dtype.type(reduction_param.coeff)
        self.coeff = coeff / self.dtype.type(self.dim) if self.operation == _OP.MEAN else coeff

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.num, self.dim)
        if self.operation == _OP.ASUM:
            y = np.abs(x).sum(axis=1)
        elif self.operation == _OP.SUMSQ:
            y = np.einsum("ij,ij->i", x, x)
        else:
            y = x.sum(axis=1)
        top[0].data[...] = (y * self.coeff).reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        scale = top[0].grad.reshape(self.num, 1) * self.coeff
        x = bottom[0].data.reshape(self.num, self.dim)
        if self.operation == _OP.ASUM:
            dx = np.sign(x) * scale
        elif self.operation == _OP.SUMSQ:
            dx = x * (2 * scale)
        else:
            dx = np.broadcast_to(scale, x.shape)
        bottom[0].grad[...] = dx.reshape(bottom[0].shape)
