"""Convolution over any number of spatial axes (2-D in practice, N-D as Caffe allows), with groups and dilation."""

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

    def forward(self, bottom, top):
        bias = self.params[1].data if self.bias_term else None
        for b, t in zip(bottom, top):
            self._col_pass(self._col_side(b.data), apply_to=self._conv_side(t.data), bias=bias)

    def backward(self, top, propagate_down, bottom):
        for t, b, down in zip(top, bottom, propagate_down):
            dy = self._conv_side(t.grad)
            if self.bias_term:
                self.params[1].grad += dy.reshape(self.batch, self.num_output, -1).sum(axis=(0, 2))
            self._col_pass(self._col_side(b.data), weight_grad_with=dy,
                           transpose_into=self._col_side(b.grad) if down else None)

