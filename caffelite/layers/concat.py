"""Join blobs along one axis."""

from caffelite.errors import ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._axis_parts import check_axis_options, part_indices, parts_axis
from caffelite.layers._in_place import refuse_in_place


@register_layer("Concat")
class Concat(Function):
    """y = [x_0, x_1, ...] joined along concat_param.axis (default 1; legacy concat_dim); dx_i = dy's block i"""

    min_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        check_axis_options(self, self.param.concat_param, "concat_dim")

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        self.axis = parts_axis(self, self.param.concat_param, "concat_dim", len(shape))
        for i, b in enumerate(bottom[1:], start=1):
            others_match = b.shape[:self.axis] + b.shape[self.axis + 1:] == shape[:self.axis] + shape[self.axis + 1:]
            if b.num_axes != len(shape) or not others_match:
                raise ShapeError(
                    f"{self.describe()}: bottom[{i}] has shape {b.shape}, bottom[0] has {shape}; "
                    f"all axes but the concat axis {self.axis} must match"
                )
        sizes = [b.shape[self.axis] for b in bottom]
        self.blocks = part_indices(self.axis, sizes)
        top[0].reshape(shape[:self.axis] + (sum(sizes),) + shape[self.axis + 1:])

    def forward(self, bottom, top):
        for b, block in zip(bottom, self.blocks):
            top[0].data[block] = b.data

    def backward(self, top, propagate_down, bottom):
        for b, block, wanted in zip(bottom, self.blocks, propagate_down):
            if wanted:
                b.grad[...] = top[0].grad[block]
