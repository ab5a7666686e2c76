"""Cut a blob into consecutive parts along one axis."""

from caffelite.errors import NetError, ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._axis_parts import check_axis_options, part_indices, parts_axis
from caffelite.layers._in_place import refuse_in_place


@register_layer("Slice")
class Slice(Function):
    """y_i = x[..., p_{i-1}:p_i, ...] along slice_param.axis (default 1; legacy slice_dim) with p = (0, slice_point..,
    size), or equal parts when no slice_point is given; dx = [dy_0, dy_1, ...] joined back."""

    exact_num_bottom = 1
    min_top = 1

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        slice_param = self.param.slice_param
        check_axis_options(self, slice_param, "slice_dim")
        self.points = list(slice_param.slice_point)
        if self.points and len(self.points) != len(top) - 1:
            raise NetError(
                f"{self.describe()}: {len(self.points)} slice points for {len(top)} tops (need one fewer than tops)"
            )
        previous = 0
        for point in self.points:
            if point <= previous:
                raise NetError(f"{self.describe()}: slice points {self.points} must be positive and increasing")
            previous = point

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        self.axis = parts_axis(self, self.param.slice_param, "slice_dim", len(shape))
        size = shape[self.axis]
        if self.points:
            if len(top) > size or self.points[-1] > size:
                raise ShapeError(
                    f"{self.describe()}: slice points {self.points} do not fit axis {self.axis} of size {size} "
                    f"(input {shape})"
                )
            edges = [0] + self.points + [size]
            sizes = [b - a for a, b in zip(edges, edges[1:])]
        else:
            if size % len(top):
                raise ShapeError(
                    f"{self.describe()}: {len(top)} tops do not evenly divide axis {self.axis} of size {size}"
                )
            sizes = [size // len(top)] * len(top)
        self.blocks = part_indices(self.axis, sizes)
        for t, part in zip(top, sizes):
            t.reshape(shape[:self.axis] + (part,) + shape[self.axis + 1:])

    def forward(self, bottom, top):
        for t, block in zip(top, self.blocks):
            t.data[...] = bottom[0].data[block]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            for t, block in zip(top, self.blocks):
                bottom[0].grad[block] = t.grad
