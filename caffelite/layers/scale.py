"""Multiply by a scale, learned or given as a second bottom, broadcast along the input's other axes; optional bias."""

import numpy as np

from caffelite.fillers import fill
from caffelite.function import Function, register_layer
from caffelite.layers._threads import over_batch
from caffelite.layers._broadcast import learned_operand_shape, split_dims
from caffelite.layers._im2col import Workspace
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
    _input = None  # the input of the last forward, when it ran in place

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
        self._kept = Workspace()

    def reshape(self, bottom, top):
        axis = self.param.scale_param.axis
        self.dims = split_dims(self, bottom[0].shape, self._scale(bottom).shape, axis)
        if self.bias_term:
            self.bias_dims = split_dims(self, bottom[0].shape, self.params[-1].shape, axis)
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.dims)
        # In place, x is about to be overwritten, and the scale's gradient needs it: kept in a buffer of the
        # layer's own, as a fresh copy on every pass costs the page faults of a new allocation (with the copy on
        # the threads, nsfw's scale_1 (32 MB) inside the net: 29.3 -> 4.6 ms).
        in_place = top[0] is bottom[0] and self.need_backward
        self._input = saved = self._kept.get("input", x.shape, x.dtype) if in_place else None
        y = top[0].data.reshape(self.dims)
        scale = self._scale(bottom).data.reshape(self.dims[1], 1)
        bias = self.params[-1].data.reshape(self.bias_dims[1], 1) if self.bias_term else None

        def body(lo, hi):
            if saved is not None:
                saved[lo:hi] = x[lo:hi]
            self._apply(x[lo:hi], scale, bias, y[lo:hi])

        over_batch(len(x), body, x.size)

    def _apply(self, x, scale, bias, y):
        """y = x * scale (+ bias) for a slice of outer rows, in (outer, dim, inner) form."""
        np.multiply(x, scale, out=y)
        if bias is not None:
            y.reshape((len(y),) + self.bias_dims[1:])[...] += bias

    def backward(self, top, propagate_down, bottom):
        """The bias and scale gradients as per-row sums over the inner axis (a product with ones, and the row dot
        products of dy and x without a temporary), then over the outer rows; the input gradient written in the
        same pass, each slice after its sums (in place, it overwrites dy). nsfw's scale_1 inside the net: 53.2 ->
        6.6 ms (it made two input-sized temporaries)."""
        dy = top[0].grad.reshape(self.dims)
        x = (bottom[0].data if self._input is None else self._input).reshape(self.dims)
        scale = self._scale(bottom)
        scale_sums = np.empty(self.dims[:2], dy.dtype) if len(bottom) == 1 or propagate_down[1] else None
        # The bias covers the same axes as the scale (reshape checked both against the input).
        bias_sums = np.empty(self.dims[:2], dy.dtype) if self.bias_term else None
        dx = bottom[0].grad.reshape(self.dims) if propagate_down[0] else None
        factor = scale.data.reshape(self.dims[1], 1)
        ones = np.ones(self.dims[2], dy.dtype)

        def body(lo, hi):
            if bias_sums is not None:
                np.matmul(dy[lo:hi], ones, out=bias_sums[lo:hi])
            if scale_sums is not None:
                np.einsum("rdi,rdi->rd", dy[lo:hi], x[lo:hi], out=scale_sums[lo:hi])
            if dx is not None:
                np.multiply(dy[lo:hi], factor, out=dx[lo:hi])

        over_batch(len(dy), body, dy.size)
        if bias_sums is not None:
            bias = self.params[-1]
            bias.grad += bias_sums.sum(axis=0).reshape(bias.shape)
        if len(bottom) == 1:
            scale.grad += scale_sums.sum(axis=0).reshape(scale.shape)
        elif scale_sums is not None:
            scale.grad[...] = scale_sums.sum(axis=0).reshape(scale.shape)

    def _scale(self, bottom):
        return bottom[1] if len(bottom) > 1 else self.params[0]
