"""Keep only the batch items a selector marks."""

import numpy as np

from caffelite.errors import NetError, ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._in_place import refuse_in_place


@register_layer("Filter")
class Filter(Function):
    """y_t = x_t[{n : s[n] != 0}] for each bottom x_t but the last, the selector s; dx_t = dy_t on kept items, else 0.

    The first reshape (at setup, before any selector is known) keeps the whole batch, as Caffe does.
    """

    min_bottom = 2
    min_top = 1

    def check_blob_counts(self, num_bottom, num_top):
        super().check_blob_counts(num_bottom, num_top)
        if num_top != num_bottom - 1:
            raise NetError(
                f"{self.describe()}: expects one top per filtered bottom ({num_bottom - 1}), got {num_top}"
            )

    def allow_force_backward(self, bottom_index):
        return bottom_index != len(self.param.bottom) - 1  # the selector has no gradient

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        self._first_reshape = True

    def reshape(self, bottom, top):
        selector = bottom[-1]
        if selector.num_axes == 0 or any(d != 1 for d in selector.shape[1:]):
            raise ShapeError(
                f"{self.describe()}: the selector (last bottom) must have shape (N, 1, ...), got {selector.shape}"
            )
        for i, b in enumerate(bottom[:-1]):
            if b.num_axes == 0 or b.shape[0] != selector.shape[0]:
                raise ShapeError(
                    f"{self.describe()}: bottom[{i}] has shape {b.shape}; its first axis must match the selector's "
                    f"{selector.shape[0]}"
                )
        self.kept = np.flatnonzero(selector.data.reshape(-1))
        kept_count = selector.shape[0] if self._first_reshape else len(self.kept)
        self._first_reshape = False
        for b, t in zip(bottom, top):
            t.reshape((kept_count,) + b.shape[1:])

    def forward(self, bottom, top):
        for b, t in zip(bottom, top):
            t.data[...] = b.data[self.kept]

    def backward(self, top, propagate_down, bottom):
        if propagate_down[-1]:
            bottom[-1].grad[...] = 0  # piecewise constant in the selector
        for b, t, wanted in zip(bottom, top, propagate_down):
            if wanted:
                b.grad[...] = 0
                b.grad[self.kept] = t.grad
