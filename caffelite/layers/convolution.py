"""Convolution over any number of spatial axes (2-D in practice, N-D as Caffe allows), with groups and dilation."""

import numpy as np

from caffelite.errors import NetError, ShapeError
from caffelite.fillers import fill
from caffelite.function import Function, register_layer
from caffelite.layers._axis import canonical_axis, count
from caffelite.layers._im2col import (
    BorderedInput,
    Workspace,
    add_into,
    interior,
    kernel_offsets,
    offset_slices,
    window_view,
)

# Upper bound on the column matrix (bytes). Bigger batches are processed in blocks of whole images so that
# memory stays bounded; below the bound the whole batch is one matrix product.
COLUMN_BUDGET = 1 << 27


@register_layer("Convolution")
class Convolution(Function):
    """y[n, o, p] = b[o] + sum_{c in group(o), k} W[o, c, k] x[n, c, p*stride + k*dilation - pad] (zero outside).

    Params: W of shape (num_output, channels/group, *kernel), then b of shape (num_output,) if bias_term.
    Several bottoms are convolved with the same W and b, each into its own top. Axes before `axis` are batch axes.
    """

    min_bottom = 1
    min_top = 1

    def check_blob_counts(self, num_bottom, num_top):
        super().check_blob_counts(num_bottom, num_top)
        if num_bottom != num_top:
            raise NetError(
                f"{self.describe()}: expects as many tops as bottoms, got {num_bottom} bottoms and {num_top} tops"
            )

    # -- setup ------------------------------------------------------------------------------------
    def setup(self, bottom, top):
        conv = self.param.convolution_param
        self.axis = canonical_axis(self, conv.axis, bottom[0].num_axes)
        self.num_spatial = bottom[0].num_axes - self.axis - 1
        self._read_geometry(conv)
        self.channels = bottom[0].shape[self.axis]
        self.num_output = conv.num_output
        self.group = conv.group
        self._check_channels()
        self.bias_term = conv.bias_term
        fill(self.new_param((self.num_output, self.channels // self.group) + self.kernel).data, conv.weight_filler)
        if self.bias_term:
            fill(self.new_param((self.num_output,)).data, conv.bias_filler)
        self._bordered = BorderedInput(fill=0)
        self._work = Workspace()

    def _read_geometry(self, conv):
        self.kernel = self._spatial_option(conv, "kernel_size", "kernel_h", "kernel_w", default=None)
        self.stride = self._spatial_option(conv, "stride", "stride_h", "stride_w", default=1)
        self.pad = self._spatial_option(conv, "pad", "pad_h", "pad_w", default=0)
        self.dilation = self._spatial_option(conv, "dilation", None, None, default=1)
        for name, values in (("kernel size", self.kernel), ("stride", self.stride), ("dilation", self.dilation)):
            if any(v <= 0 for v in values):
                raise NetError(f"{self.describe()}: {name} must be positive on every axis, got {list(values)}")
        # Windows that cannot overlap let col2im store instead of add.
        self._disjoint = all(s >= d * (k - 1) + 1 for s, d, k in zip(self.stride, self.dilation, self.kernel))

    def _spatial_option(self, conv, name, h_name, w_name, default):
        """One value per spatial axis, from `name` (given once or once per axis) or from its _h/_w pair (2-D only)."""
        values = list(getattr(conv, name))
        if h_name is not None and (conv.HasField(h_name) or conv.HasField(w_name)):
            if self.num_spatial != 2:
                raise NetError(
                    f"{self.describe()}: {h_name}/{w_name} need 2 spatial axes, the input has {self.num_spatial}"
                )
            if values:
                raise NetError(f"{self.describe()}: give either {name} or {h_name}/{w_name}, not both")
            return (getattr(conv, h_name), getattr(conv, w_name))
        if not values and default is not None:
            return (default,) * self.num_spatial
        if len(values) == 1:
            return (values[0],) * self.num_spatial
        if len(values) != self.num_spatial:
            raise NetError(
                f"{self.describe()}: {name} must be given once or once per spatial axis "
                f"({self.num_spatial}), got {len(values)} values"
            )
        return tuple(values)

    def _check_channels(self):
        if self.num_output <= 0:
            raise NetError(f"{self.describe()}: num_output must be positive, got {self.num_output}")
        if self.group <= 0:
            raise NetError(f"{self.describe()}: group must be positive, got {self.group}")
        if self.channels % self.group:
            raise NetError(f"{self.describe()}: {self.channels} input channels do not split into {self.group} groups")
        if self.num_output % self.group:
            raise NetError(f"{self.describe()}: num_output {self.num_output} does not split into {self.group} groups")

    # -- reshape ----------------------------------------------------------------------------------
    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != self.axis + 1 + self.num_spatial:
            raise ShapeError(
                f"{self.describe()}: input has {len(shape)} axes, set up for {self.axis + 1 + self.num_spatial}"
            )
        if shape[self.axis] != self.channels:
            raise ShapeError(f"{self.describe()}: input has {shape[self.axis]} channels, the weights expect "
                             f"{self.channels}")
        for i, b in enumerate(bottom[1:], start=1):
            if b.shape != shape:
                raise ShapeError(f"{self.describe()}: bottom[{i}] has shape {b.shape}, bottom[0] has {shape}")
        self.batch = count(shape, 0, self.axis)
        self.in_shape = shape[self.axis + 1:]
        self.padded_shape = tuple(n + 2 * p for n, p in zip(self.in_shape, self.pad))
        self.out_shape = tuple(self._output_size(i) for i in range(self.num_spatial))
        for t in top:
            t.reshape(shape[: self.axis] + (self.num_output,) + self.out_shape)
        column_bytes = (self.channels * count(self.kernel) * count(self.out_shape)) * self.dtype.itemsize
        self.block = max(1, min(self.batch, COLUMN_BUDGET // max(1, column_bytes)))

    def _output_size(self, i):
        extent = self.dilation[i] * (self.kernel[i] - 1) + 1
        span = self.in_shape[i] + 2 * self.pad[i] - extent
        if span < 0:
            raise ShapeError(
                f"{self.describe()}: spatial axis {i} has {self.in_shape[i]} cells (+{self.pad[i]} padding each "
                f"side), smaller than the kernel extent {extent}"
            )
        return span // self.stride[i] + 1

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, bottom, top):
        weight = self._grouped(self.params[0].data)
        bias = self.params[1].data[:, None] if self.bias_term else None
        for b, t in zip(bottom, top):
            y = t.data.reshape(self.batch, self.num_output, -1)
            for start, cols in self._column_blocks(b.data):
                out = self._product(weight, cols, "out")
                # (O, n, P) back to (n, O, P), adding the bias in the same pass.
                out = out.reshape(self.num_output, -1, y.shape[2]).swapaxes(0, 1)
                target = y[start:start + out.shape[0]]
                if bias is None:
                    target[...] = out
                else:
                    np.add(out, bias, out=target)

    # -- backward ---------------------------------------------------------------------------------
    def backward(self, top, propagate_down, bottom):
        weight = self.params[0]
        bias = self.params[1] if self.bias_term else None
        weight_t = self._grouped(weight.data).swapaxes(1, 2)
        weight_grad = self._grouped(weight.grad)
        for t, b, down in zip(top, bottom, propagate_down):
            dy = t.grad.reshape(self.batch, self.num_output, -1)
            # Column gradients are summed here, channels first to match the column layout.
            dx = self._work.zeros("dx", (self.channels, self.batch) + self.padded_shape, self.dtype) if down else None
            for start, cols in self._column_blocks(b.data):
                n = cols.shape[1 + self.num_spatial]
                dy_t = self._work.get("dy", (self.num_output, n, dy.shape[2]), self.dtype)
                dy_t[...] = dy[start:start + n].swapaxes(0, 1)
                dy_t = dy_t.reshape(self.group, -1, n * dy.shape[2])
                if bias is not None:
                    bias.grad += dy_t.reshape(self.num_output, -1).sum(axis=1)
                weight_grad += np.matmul(dy_t, cols.reshape(self.group, -1, dy_t.shape[2]).swapaxes(1, 2))
                if down:
                    # The columns are spent: their buffer now receives the column gradients.
                    np.matmul(weight_t, dy_t, out=cols.reshape(self.group, -1, dy_t.shape[2]))
                    self._add_columns(cols, dx[:, start:start + n])
            if down:
                inside = dx[(Ellipsis,) + interior(self.pad, self.in_shape)]
                b.grad[...] = inside.swapaxes(0, 1).reshape(b.shape)

    # -- im2col / col2im --------------------------------------------------------------------------
    def _column_blocks(self, data):
        """Yield (start, columns) over blocks of images; columns[c, *k, i, *p] = padded x[start + i, c, p*s + k*d],
        so (C*K, n*P) in memory: one matrix product covers every image of the block and, reshaped, every group."""
        x = data.reshape((self.batch, self.channels) + self.in_shape)
        padded = self._bordered.load(x, self.pad, self.padded_shape)
        spatial = self.num_spatial
        # window_view gives (n, C, *k, *p); the column layout wants (C, *k, n, *p).
        order = (1,) + tuple(range(2, 2 + spatial)) + (0,) + tuple(range(2 + spatial, 2 + 2 * spatial))
        for start in range(0, self.batch, self.block):
            block = padded[start:start + self.block]
            windows = window_view(block, self.kernel, self.stride, self.dilation, self.out_shape)
            cols = self._work.get("cols", (self.channels,) + self.kernel + (len(block),) + self.out_shape, self.dtype)
            np.copyto(cols, windows.transpose(order))
            yield start, cols

    def _add_columns(self, cols, dx):
        """col2im: add column gradients (C, *k, n, *p) into dx (C, n, *padded), one strided slice per kernel offset."""
        for offset in kernel_offsets(self.kernel):
            cells = offset_slices(offset, self.stride, self.dilation, self.out_shape)
            add_into(dx[(slice(None), slice(None)) + cells], cols[(slice(None),) + offset], self._disjoint)

    def _grouped(self, weight):
        """W (O, C/g, *k) as (g, O/g, C/g * K): one matrix per group."""
        return weight.reshape(self.group, self.num_output // self.group, -1)

    def _product(self, weight, cols, name):
        columns = cols.reshape(self.group, weight.shape[2], -1)
        out = self._work.get(name, (self.group, weight.shape[1], columns.shape[2]), self.dtype)
        np.matmul(weight, columns, out=out)
        return out
