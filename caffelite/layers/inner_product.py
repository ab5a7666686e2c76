"""Fully connected layer."""

import numpy as np

from caffelite.errors import NetError, ShapeError
from caffelite.fillers import fill
from caffelite.function import Function, register_layer
from caffelite.layers._axis import canonical_axis, count
from caffelite.layers._im2col import Workspace

# With few rows (a deploy net's 10 images, a solver's 64) the products are thin and OpenBLAS streams a large W
# through memory at a fraction of the bandwidth a plain read reaches; computed a block of W's rows at a time,
# each block is read once and used while in cache. Measured on the 2-core Xeon machine, CaffeNet fc6 (4096 x
# 9216) at 10 rows: forward 30 ms -> 16-17 ms, weight gradient 69 -> 48 ms; fc7 forward 12.8 -> 6.6 ms. At 128
# rows the two ways cost the same, at 256 the blocks are slower. The input gradient gains nothing from blocks.
# A W that stays in cache gains nothing either and pays for the extra products: in-process A/B on the 2-core AMD
# VM (forward + backward ms, one product vs blocks), LeNet's ip1 (500 x 800, 1.6 MB) at 64 rows 1.62 vs 1.96,
# 1000 x 1024 (4 MB) at 10 rows 1.81 vs 2.07, 1024 x 2048 (8 MB) even, 1000 x 4096 (16 MB) at 10 rows 8.83 vs
# 8.13, fc6 (151 MB) at 10 rows 104 vs 74 ms. So only a W larger than BLOCKED_WEIGHT_BYTES takes blocks.
SMALL_BATCH = 64
WEIGHT_BLOCK = 256
BLOCKED_WEIGHT_BYTES = 1 << 23


@register_layer("InnerProduct")
class InnerProduct(Function):
    """y = x W^T + b, x flattened from `axis` on to (M, K); W is (N, K), or (K, N) with transpose (then y = x W + b).

    params: [W] or [W, b] with b of shape (N,). Axes before `axis` are kept: top shape = shape[:axis] + (N,).
    """

    exact_num_bottom = 1
    exact_num_top = 1

    def setup(self, bottom, top):
        ip_param = self.param.inner_product_param
        self.num_output = ip_param.num_output
        if self.num_output <= 0:
            raise NetError(f"{self.describe()}: num_output must be positive, got {self.num_output}")
        self.bias_term = ip_param.bias_term
        self.transpose = ip_param.transpose
        axis = canonical_axis(self, ip_param.axis, bottom[0].num_axes)
        self.inputs = count(bottom[0].shape, axis)
        weight_shape = (self.inputs, self.num_output) if self.transpose else (self.num_output, self.inputs)
        fill(self.new_param(weight_shape).data, ip_param.weight_filler)
        if self.bias_term:
            fill(self.new_param((self.num_output,)).data, ip_param.bias_filler)
        self._work = Workspace()

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        axis = canonical_axis(self, self.param.inner_product_param.axis, len(shape))
        if count(shape, axis) != self.inputs:
            raise ShapeError(
                f"{self.describe()}: input of shape {shape} has {count(shape, axis)} values from axis {axis} on, "
                f"the weights expect {self.inputs}"
            )
        self.rows = count(shape, 0, axis)
        top[0].reshape(shape[:axis] + (self.num_output,))
        self._by_blocks = (self.rows <= SMALL_BATCH and not self.transpose
                           and self.params[0].data.nbytes > BLOCKED_WEIGHT_BYTES)

    def forward(self, bottom, top):
        x = bottom[0].data.reshape(self.rows, self.inputs)
        y = top[0].data.reshape(self.rows, self.num_output)
        if self._by_blocks:
            weight = self.params[0].data
            y_t = self._work.get("y_t", (self.num_output, self.rows), y.dtype)
            for lo, hi in self._blocks():
                np.matmul(weight[lo:hi], x.T, out=y_t[lo:hi])
            y[...] = y_t.T
        else:
            np.matmul(x, self._weight_nk().T, out=y)
        if self.bias_term:
            y += self.params[1].data

    def backward(self, top, propagate_down, bottom):
        dy = top[0].grad.reshape(self.rows, self.num_output)
        x = bottom[0].data.reshape(self.rows, self.inputs)
        weight = self.params[0]
        if self._by_blocks:
            part = self._work.get("grad_block", (min(WEIGHT_BLOCK, self.num_output), self.inputs), dy.dtype)
            for lo, hi in self._blocks():
                np.matmul(dy.T[lo:hi], x, out=part[:hi - lo])
                weight.grad[lo:hi] += part[:hi - lo]
        else:
            weight.grad += x.T @ dy if self.transpose else dy.T @ x
        if self.bias_term:
            self.params[1].grad += dy.sum(axis=0)
        if propagate_down[0]:
            np.matmul(dy, self._weight_nk(), out=bottom[0].grad.reshape(self.rows, self.inputs))

    def _blocks(self):
        """(first, last + 1) of each block of W's rows."""
        return [(lo, min(lo + WEIGHT_BLOCK, self.num_output)) for lo in range(0, self.num_output, WEIGHT_BLOCK)]

    def _weight_nk(self):
        # Read at each use: the Net may swap in a shared owner's array after setup.
        weight = self.params[0].data
        return weight.T if self.transpose else weight
