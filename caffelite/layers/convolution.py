"""Convolution over any number of spatial axes (2-D in practice, N-D as Caffe allows), with groups and dilation."""

import numpy as np

from caffelite.function import register_layer
from caffelite.layers._axis import count
from caffelite.layers._conv_base import ConvolutionBase
from caffelite.layers._im2col import BorderedInput
from caffelite.layers._threads import copy_split
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

    def setup(self, bottom, top):
        super().setup(bottom, top)
        self._bordered_diff = BorderedInput(fill=0)

    def _plan(self, bottom):
        super()._plan(bottom)
        # 1x1 kernels with stride 1 and no padding need no columns: the input already is the column matrix.
        self._pointwise = (self.group == 1 and all(k == 1 for k in self.kernel) and all(s == 1 for s in self.stride)
                           and not any(self.pad))
        # With stride and dilation 1 the input gradient is a correlation of the top diff, padded by kernel - 1 - pad,
        # with the flipped, transposed weights: im2col of the diff and one product, where the general way (a
        # product, then col2im adding every kernel offset into the input) reads and writes the input K times.
        # Taken when the diff's columns are no larger than the input's (num_output <= channels at 'same' padding):
        # they then fit the same blocks. Measured on CIFAR-10 quick's conv2 (32 -> 32, 5x5, 16x16, batch 100):
        # 34 ms instead of 47-55 ms.
        self._correlate = (
            self.group == 1 and all(s == 1 for s in self.stride) and all(d == 1 for d in self.dilation)
            and all(p <= k - 1 for p, k in zip(self.pad, self.kernel))
            and self.num_output * count(self.in_shape) <= self.channels * count(self.out_shape)
        )

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
                self._add_bias_grad(dy)
            if self._pointwise:
                self._pointwise_backward(self._per_image(t.grad, self.num_output), b, down)
            else:
                correlate = down and self._correlate
                self._col_pass(self._col_side(b.data), weight_grad_with=dy,
                               transpose_into=self._col_side(b.grad) if down and not correlate else None, reuse=True)
                if correlate:
                    self._correlate_input_grad(dy, b.grad.reshape(self.batch, self.channels, -1))

    def _pointwise_backward(self, dy, bottom, down):
        x = self._per_image(bottom.data, self.channels)
        self.params[0].grad.reshape(self.num_output, self.channels)[...] += np.tensordot(dy, x, axes=([0, 2], [0, 2]))
        if down:
            np.matmul(self._weight_matrix().T, dy, out=self._per_image(bottom.grad, self.channels))

    def _correlate_input_grad(self, dy, dx):
        """dx (images, C, positions) = the top diff dy, bordered by kernel - 1 - pad, correlated with W flipped in
        space and transposed to (C, O * K)."""
        border = tuple(k - 1 - p for k, p in zip(self.kernel, self.pad))
        padded = self._bordered_diff.load(dy, border, tuple(n + 2 * b for n, b in zip(self.out_shape, border)))
        spatial = (slice(None, None, -1),) * self.num_spatial
        weight = self.params[0].data[(slice(None), slice(None)) + spatial].swapaxes(0, 1).reshape(self.channels, -1)
        unit = (1,) * self.num_spatial
        for start in range(0, self.batch, self.block):
            cols = self._columns(padded[start:start + self.block], unit, unit, self.in_shape)
            n = cols.shape[1 + self.num_spatial]
            out = self._work.get("out", (self.channels, n * dx.shape[2]), self.dtype)
            np.matmul(weight, cols.reshape(weight.shape[1], -1), out=out)
            copy_split(dx[start:start + n], out.reshape(self.channels, n, -1).swapaxes(0, 1))

    def _weight_matrix(self):
        return self.params[0].data.reshape(self.num_output, self.channels)

    def _per_image(self, array, channels):
        """(images, channels, positions) view of a blob."""
        return array.reshape(self.batch, channels, -1)
