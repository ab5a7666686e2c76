"""Give a blob a new shape without touching its values."""

from caffelite.errors import NetError, ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._axis import count
from caffelite.layers._in_place import refuse_in_place


@register_layer("Reshape")
class Reshape(Function):
    """y = x with axes [axis, axis + num_axes) replaced by reshape_param.shape (0 copies a dim, -1 infers one);
    dx = dy reshaped back."""

    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        reshape_param = self.param.reshape_param
        self.dims = [int(d) for d in reshape_param.shape.dim]
        self.copy_axes = [i for i, d in enumerate(self.dims) if d == 0]
        inferred = [i for i, d in enumerate(self.dims) if d == -1]
        if len(inferred) > 1:
            raise NetError(f"{self.describe()}: shape {self.dims} has more than one -1; at most one dim is inferred")
        self.inferred_axis = inferred[0] if inferred else None
        if any(d < -1 for d in self.dims):
            raise NetError(f"{self.describe()}: shape {self.dims} has a dim below -1")
        self.num_axes = reshape_param.num_axes
        if self.num_axes < -1:
            raise NetError(f"{self.describe()}: num_axes must be >= 0, or -1 for all, got {self.num_axes}")

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        start, end = self._replaced_range(len(shape))
        new_shape = list(shape[:start]) + self.dims + list(shape[end:])
        for i in self.copy_axes:
            if start + i >= len(shape):
                raise ShapeError(
                    f"{self.describe()}: shape dim {i} is 0 (copy) but the {len(shape)}-axis input has no axis "
                    f"{start + i} to copy"
                )
            new_shape[start + i] = shape[start + i]
        if self.inferred_axis is not None:
            new_shape[start + self.inferred_axis] = self._inferred_dim(shape, new_shape, start)
        if count(new_shape) != count(shape):
            raise ShapeError(
                f"{self.describe()}: cannot reshape {shape} ({count(shape)} values) to {tuple(new_shape)} "
                f"({count(new_shape)} values)"
            )
        top[0].reshape(new_shape)

    def _replaced_range(self, num_axes):
        """[start, end): the input axes that reshape_param.shape replaces."""
        axis = self.param.reshape_param.axis
        # Unlike most axis options, axis == num_axes is valid (append after the last axis): -1 means num_axes.
        start = axis if axis >= 0 else num_axes + axis + 1
        if not 0 <= start <= num_axes:
            raise ShapeError(f"{self.describe()}: axis {axis} out of range for a {num_axes}-axis input")
        end = num_axes if self.num_axes == -1 else start + self.num_axes
        if end > num_axes:
            raise ShapeError(
                f"{self.describe()}: axis {start} + num_axes {self.num_axes} goes past the {num_axes}-axis input"
            )
        return start, end

    def _inferred_dim(self, shape, new_shape, start):
        position = start + self.inferred_axis
        known = count(new_shape[:position]) * count(new_shape[position + 1:])
        if known == 0 or count(shape) % known:
            raise ShapeError(
                f"{self.describe()}: input count {count(shape)} is not divisible by the product of the other "
                f"dims ({known}) of {self.dims}"
            )
        return count(shape) // known

    def forward(self, bottom, top):
        # Caffe shares the bottom's memory; a copy keeps each Tensor owning its arrays, at the cost of one pass.
        top[0].data[...] = bottom[0].data.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].grad[...] = top[0].grad.reshape(bottom[0].shape)
