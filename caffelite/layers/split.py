"""Copies of one blob for several consumers (inserted by the Net when a blob feeds more than one layer)."""

import numpy as np

from caffelite.errors import NetError
from caffelite.function import Function, register_layer
from caffelite.layers._threads import elementwise


@register_layer("Split")
class Split(Function):
    """top_i = x for every top; dx = sum_i dtop_i"""

    exact_num_bottom = 1
    min_top = 1

    def reshape(self, bottom, top):
        for tensor in top:
            if tensor is bottom[0]:
                raise NetError(f"{self.describe()}: cannot run in place")
            tensor.reshape(bottom[0].shape)

    def forward(self, bottom, top):
        # Copies, not shared arrays: an in-place consumer of one top must not change the others.
        for tensor in top:
            elementwise(np.copyto, tensor.data, bottom[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].grad[...] = sum(tensor.grad for tensor in top)
