"""Element-wise product, weighted sum or maximum of several blobs of one shape."""

import numpy as np

from caffelite.errors import NetError, ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._in_place import refuse_in_place
from caffelite.layers._threads import elementwise
from caffelite.proto import caffe_pb2

_OP = caffe_pb2.EltwiseParameter


@register_layer("Eltwise")
class Eltwise(Function):
    """y = prod_i x_i | sum_i coeff_i x_i | max_i x_i, element by element (operation PROD | SUM | MAX).

    MAX sends each gradient to one winner per element: bottom[1] if x_0 <= x_1, else bottom[0]; then a later bottom
    wins only when strictly larger (Caffe's order). PROD's gradient is the product of the other bottoms
    (stable_prod_grad, the default) or y / x_i.
    """

    min_bottom = 2
    exact_num_top = 1

    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        eltwise_param = self.param.eltwise_param
        self.operation = eltwise_param.operation
        if self.operation not in (_OP.PROD, _OP.SUM, _OP.MAX):
            raise NetError(f"{self.describe()}: unknown operation {self.operation}")
        coeffs = list(eltwise_param.coeff)
        if coeffs and len(coeffs) != len(bottom):
            raise NetError(f"{self.describe()}: {len(coeffs)} coeff values for {len(bottom)} bottoms (need one each)")
        if coeffs and self.operation == _OP.PROD:
            raise NetError(f"{self.describe()}: coeff applies only to the SUM operation")
        self.coeffs = coeffs or [1.0] * len(bottom)
        self.stable_prod_grad = eltwise_param.stable_prod_grad

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        for i, b in enumerate(bottom[1:], start=1):
            if b.shape != shape:
                raise ShapeError(f"{self.describe()}: bottom[{i}] has shape {b.shape}, bottom[0] has {shape}")
        top[0].reshape(shape)

    def forward(self, bottom, top):
        y = top[0].data
        if self.operation == _OP.PROD:
            np.multiply(bottom[0].data, bottom[1].data, out=y)
            for b in bottom[2:]:
                y *= b.data
        elif self.operation == _OP.SUM:
            elementwise(self._weighted_sum, y, *(b.data for b in bottom))
        else:
            self._forward_max(bottom, y)

    def _weighted_sum(self, y, *inputs):
        terms = list(zip(inputs, self.coeffs))
        if len(terms) > 1 and self.coeffs[0] == self.coeffs[1] == 1:
            np.add(inputs[0], inputs[1], out=y)  # Caffe's 0 + x0 + x1 in one pass (ResNet's shortcut sums)
            rest = terms[2:]
        else:
            x, c = terms[0]
            if c == 1:
                np.copyto(y, x)
            else:
                np.multiply(x, c, out=y)
            rest = terms[1:]
        for x, c in rest:
            y += x * c if c != 1 else x

    def _forward_max(self, bottom, y):
        first, second = bottom[0].data, bottom[1].data
        first_wins = first > second  # so ties (and NaNs) go to bottom[1], as in Caffe's comparison
        self.winner = np.where(first_wins, 0, 1).astype(np.min_scalar_type(len(bottom)))
        y[...] = np.where(first_wins, first, second)
        for i, b in enumerate(bottom[2:], start=2):
            better = b.data > y
            np.copyto(y, b.data, where=better)
            self.winner[better] = i

    def backward(self, top, propagate_down, bottom):
        dy = top[0].grad
        for i, (b, wanted) in enumerate(zip(bottom, propagate_down)):
            if not wanted:
                continue
            if self.operation == _OP.PROD:
                b.grad[...] = self._product_of_others(bottom, i, top[0].data) * dy
            elif self.operation == _OP.SUM:
                b.grad[...] = dy * self.coeffs[i] if self.coeffs[i] != 1 else dy
            else:
                b.grad[...] = np.where(self.winner == i, dy, 0)

    def _product_of_others(self, bottom, i, y):
        if not self.stable_prod_grad:
            return y / bottom[i].data  # one division; undefined where x_i == 0
        others = [b.data for j, b in enumerate(bottom) if j != i]
        product = others[0].copy()
        for x in others[1:]:
            product *= x
        return product
