"""Deconvolution: the transpose of Convolution (fractionally strided convolution), with the same options."""

from caffelite.errors import ShapeError
from caffelite.function import register_layer
from caffelite.layers._conv_base import ConvolutionBase


@register_layer("Deconvolution")
class Deconvolution(ConvolutionBase):
    """y = b + W^T * x: each input cell x[n, c, q] adds W[c, o, k] x[n, c, q] into y[n, o, q*stride + k*dilation - pad].

    The backward of a Convolution run forward. Output size stride (in - 1) + dilation (kernel - 1) + 1 - 2 pad.
    Params: W of shape (channels, num_output/group, *kernel), then b of shape (num_output,) if bias_term.
    Several bottoms share W and b, each into its own top. Depthwise layers (group == num_output, e.g. bilinear
    upsampling with group == num_output == channels) skip the column matrix.
    """

    transposed = True

    def _output_shape(self):
        out = []
        for i, (n, k, s, p, d) in enumerate(zip(self.in_shape, self.kernel, self.stride, self.pad, self.dilation)):
            size = s * (n - 1) + d * (k - 1) + 1 - 2 * p
            if size <= 0:
                raise ShapeError(
                    f"{self.describe()}: spatial axis {i} of {n} cells gives an empty output "
                    f"(stride {s}, kernel {k}, dilation {d}, pad {p})"
                )
            out.append(size)
        return tuple(out)

    def forward(self, bottom, top):
        for b, t in zip(bottom, top):
            self._transpose_pass(self._conv_side(b.data), self._col_side(t.data))
            if self.bias_term:
                t.data.reshape(self.batch, self.num_output, -1)[...] += self.params[1].data[:, None]

    def backward(self, top, propagate_down, bottom):
        for t, b, down in zip(top, bottom, propagate_down):
            dy = self._col_side(t.grad)
            if self.bias_term:
                self._add_bias_grad(dy)
            # One im2col of the top grad serves both the weight grad and the bottom grad.
            self._col_pass(dy, apply_to=self._conv_side(b.grad) if down else None,
                           weight_grad_with=self._conv_side(b.data))
