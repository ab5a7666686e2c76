"""Merge a range of axes into one."""

from caffelite.errors import NetError, ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._axis import canonical_axis, count


@register_layer("Flatten")
class Flatten(Function):
    """y = x reshaped with axes axis..end_axis (defaults 1..-1) merged into one; dx = dy reshaped back"""

    exact_num_bottom = 1
    exact_num_top = 1

    def reshape(self, bottom, top):
        if top[0] is bottom[0]:
            raise NetError(f"{self.describe()}: cannot run in place")
        flatten_param = self.param.flatten_param
        shape, num_axes = bottom[0].shape, bottom[0].num_axes
        start = canonical_axis(self, flatten_param.axis, num_axes)
        end = canonical_axis(self, flatten_param.end_axis, num_axes)
        if end + 1 < start:
            raise ShapeError(f"{self.describe()}: end_axis {end} comes before axis {start}")
        top[0].reshape(shape[:start] + (count(shape, start, end + 1),) + shape[end + 1 :])

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].grad[...] = top[0].grad.reshape(bottom[0].shape)
