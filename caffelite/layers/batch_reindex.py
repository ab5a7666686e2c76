"""Pick (and repeat or permute) items of a batch by index."""

from caffelite.errors import ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._in_place import refuse_in_place
from caffelite.layers._index_ops import read_indices, sum_rows_by_index


@register_layer("BatchReindex")
class BatchReindex(Function):
    """y[i] = x[int(index[i])] for the 1-D bottom[1] `index`; dx[n] = sum of dy[i] over i with index[i] == n."""

    exact_num_bottom = 2
    exact_num_top = 1

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1  # the indices have no gradient

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)

    def reshape(self, bottom, top):
        if bottom[1].num_axes != 1:
            raise ShapeError(f"{self.describe()}: the indices (bottom[1]) must be 1-D, got shape {bottom[1].shape}")
        if bottom[0].num_axes == 0:
            raise ShapeError(f"{self.describe()}: bottom[0] needs a batch axis, got a scalar")
        top[0].reshape(bottom[1].shape + bottom[0].shape[1:])

    def forward(self, bottom, top):
        self.indices = read_indices(self, bottom[1].data, bottom[0].shape[0], "index", integral=False)
        top[0].data[...] = bottom[0].data[self.indices]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            bottom[1].grad[...] = 0  # piecewise constant in the indices
        if propagate_down[0]:
            rows, sums = sum_rows_by_index(top[0].grad, self.indices)
            bottom[0].grad[...] = 0
            bottom[0].grad[rows] = sums
