"""Convolution over any number of spatial axes (2-D in practice, N-D as Caffe allows), with groups and dilation."""

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._conv_base import ConvolutionBase
from caffelite.layers._conv_geometry import output_shape


@register_layer("Convolution")
class Convolution(ConvolutionBase):
    """y[n, o, p] = b[o] + sum_{c in group(o), k} W[o, c, k] x[n, c, p*stride + k*dilation - pad] (zero outside).

    Params: W of shape (num_output, channels/group, *kernel), then b of shape (num_output,) if bias_term.
    Several bottoms are convolved with the same W and b, each into its own top. Axes before `axis` are batch axes.
    Depthwise layers (group == channels, num_output a multiple of it) skip im2col.
    """

    transposed = False

    def _output_shape(self):
        return output_shape(self, self.geometry, self.in_shape)

    def reshape(self, bottom, top):
        super().reshape(bottom, top)
        # 1x1 kernels with stride 1 and no padding need no columns: the input already is the column matrix.
        self._pointwise = (self.group == 1 and all(k == 1 for k in self.kernel) and all(s == 1 for s in self.stride)
                           and not any(self.pad))

    def forward(self, bottom, top):
        bias = self.params[1].data if self.bias_term else None
        keep = self.need_backward and len(bottom) == 1
        for b, t in zip(bottom, top):
            if self._pointwise:
                y = self._per_image(t.data, self.num_output)
                np.matmul(self._weight_matrix(), self._per_image(b.data, self.channels), out=y)
                if bias is not None:
                    y += bias[:, None]
            else:
                self._col_pass(self._col_side(b.data), apply_to=self._conv_side(t.data), bias=bias, keep=keep)

    def backward(self, top, propagate_down, bottom):
        for t, b, down in zip(top, bottom, propagate_down):
            dy = self._conv_side(t.grad)
            if self.bias_term:
                self.params[1].grad += dy.reshape(self.batch, self.num_output, -1).sum(axis=(0, 2))
            if self._pointwise:
                self._pointwise_backward(self._per_image(t.grad, self.num_output), b, down)
            else:
                self._col_pass(self._col_side(b.data), weight_grad_with=dy,
                               transpose_into=self._col_side(b.grad) if down else None, reuse=True)

    def _pointwise_backward(self, dy, bottom, down):
        x = self._per_image(bottom.data, self.channels)
        self.params[0].grad.reshape(self.num_output, self.channels)[...] += np.tensordot(dy, x, axes=([0, 2], [0, 2]))
        if down:
            np.matmul(self._weight_matrix().T, dy, out=self._per_image(bottom.grad, self.channels))

    def _weight_matrix(self):
        return self.params[0].data.reshape(self.num_output, self.channels)

    def _per_image(self, array, channels):
        """(images, channels, positions) view of a blob."""
        return array.reshape(self.batch, channels, -1)
