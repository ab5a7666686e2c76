"""Indices (and optionally values) of the top_k largest entries."""

import numpy as np

from caffelite.errors import NetError, ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._axis import canonical_axis, count
from caffelite.layers._in_place import refuse_in_place


@register_layer("ArgMax")
class ArgMax(Function):
    """y = indices of the top_k largest x along argmax_param.axis, or over each item's flattened values if no axis.

    Ties go to the larger index (Caffe sorts (value, index) pairs in descending order). With an axis, top is x's shape
    with that axis cut to top_k, holding indices, or values if out_max_val. Without an axis, top is (N, 1, top_k)
    (padded with 1s to x's rank), or (N, 2, top_k) with indices in [:, 0] and values in [:, 1] if out_max_val.
    """

    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        argmax_param = self.param.argmax_param
        self.out_max_val = argmax_param.out_max_val
        self.top_k = argmax_param.top_k
        if self.top_k < 1:
            raise NetError(f"{self.describe()}: top_k must be at least 1, got {self.top_k}")
        self.has_axis = argmax_param.HasField("axis")

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if self.has_axis:
            self.axis = canonical_axis(self, self.param.argmax_param.axis, len(shape))
            candidates, what = shape[self.axis], f"axis {self.axis}"
            top_shape = shape[:self.axis] + (self.top_k,) + shape[self.axis + 1:]
        else:
            if not shape:
                raise ShapeError(f"{self.describe()}: needs an input with a batch axis, got a scalar")
            candidates, what = count(shape, 1), "each item's values"
            top_shape = (shape[0], 2 if self.out_max_val else 1, self.top_k) + (1,) * (len(shape) - 3)
        if self.top_k > candidates:
            raise ShapeError(f"{self.describe()}: top_k {self.top_k} exceeds the {candidates} entries of {what} "
                             f"(input {shape})")
        top[0].reshape(top_shape)

    def forward(self, bottom, top):
        x = bottom[0].data
        if self.has_axis:
            ranked, values = self._top_k(np.moveaxis(x, self.axis, -1))
            result = values if self.out_max_val else ranked
            top[0].data[...] = np.moveaxis(result, -1, self.axis)
        else:
            ranked, values = self._top_k(x.reshape(x.shape[0], -1))
            out = top[0].data.reshape(x.shape[0], -1, self.top_k)
            out[:, 0] = ranked
            if self.out_max_val:
                out[:, 1] = values

    def _top_k(self, x):
        """Indices and values of the top_k largest along the last axis, largest first, ties to the larger index."""
        if self.top_k == 1:
            # argmax takes the first of equal maxima; on the reversed axis that is the last one.
            ranked = x.shape[-1] - 1 - np.argmax(x[..., ::-1], axis=-1)[..., None]
        else:
            # A stable ascending sort keeps equal values in index order; reversed, the larger index comes first.
            ranked = np.argsort(x, axis=-1, kind="stable")[..., ::-1][..., :self.top_k]
        return ranked, np.take_along_axis(x, ranked, axis=-1)

    def backward(self, top, propagate_down, bottom):
        # Not differentiable: Caffe aborts here; a zero gradient is the safe equivalent when a net still asks.
        if propagate_down[0]:
            bottom[0].grad[...] = 0
