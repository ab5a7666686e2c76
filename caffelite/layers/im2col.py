"""Unfold every convolution window of an image into a column (Caffe's im2col, exposed as a layer)."""

from caffelite.errors import ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._axis import canonical_axis, count
from caffelite.layers._conv_geometry import check_num_axes, output_shape, read_geometry, windows_are_disjoint
from caffelite.layers._im2col import (
    BorderedInput,
    Workspace,
    add_into,
    interior,
    kernel_offsets,
    offset_slices,
    window_view,
)
from caffelite.layers._in_place import refuse_in_place


@register_layer("Im2col")
class Im2col(Function):
    """y[n, c*K + k, p] = x[n, c, p*stride + k*dilation - pad] (0 outside), k running over the kernel's K positions
    last axis fastest; dx sums dy back over every window that read each cell. Options from convolution_param."""

    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        conv = self.param.convolution_param
        self.axis = canonical_axis(self, conv.axis, bottom[0].num_axes)
        self.num_spatial = bottom[0].num_axes - self.axis - 1
        if self.num_spatial < 1:
            raise ShapeError(
                f"{self.describe()}: input of shape {bottom[0].shape} has no spatial axis after channel axis "
                f"{self.axis}"
            )
        self.geometry = read_geometry(self, conv, self.num_spatial)
        self.kernel, self.stride, self.pad, self.dilation = self.geometry
        self._disjoint = windows_are_disjoint(self.geometry)
        self._bordered = BorderedInput(fill=0)
        self._work = Workspace()

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        check_num_axes(self, shape, self.axis, self.num_spatial)
        self.batch, self.channels = count(shape, 0, self.axis), shape[self.axis]
        self.in_shape = shape[self.axis + 1:]
        self.padded_shape = tuple(n + 2 * p for n, p in zip(self.in_shape, self.pad))
        self.out_shape = output_shape(self, self.geometry, self.in_shape)
        top[0].reshape(shape[:self.axis] + (self.channels * count(self.kernel),) + self.out_shape)

    def forward(self, bottom, top):
        x = bottom[0].data.reshape((self.batch, self.channels) + self.in_shape)
        padded = self._bordered.load(x, self.pad, self.padded_shape)
        # (n, C, *kernel, *out) is already Caffe's row order c*K + k: one strided copy does the whole batch.
        windows = window_view(padded, self.kernel, self.stride, self.dilation, self.out_shape)
        top[0].data.reshape(windows.shape)[...] = windows

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        dy = top[0].grad.reshape((self.batch, self.channels) + self.kernel + self.out_shape)
        dx = self._work.zeros("dx", (self.batch, self.channels) + self.padded_shape, self.dtype)
        both = (slice(None), slice(None))
        for offset in kernel_offsets(self.kernel):
            cells = offset_slices(offset, self.stride, self.dilation, self.out_shape)
            add_into(dx[both + cells], dy[both + offset], self._disjoint)
        bottom[0].grad[...] = dx[(Ellipsis,) + interior(self.pad, self.in_shape)].reshape(bottom[0].shape)
