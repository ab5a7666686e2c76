"""Tensor arithmetic as Functions: + - * / @, sum, scaling, view, transpose.

They follow the layer contract (reshape, forward, backward on Tensors' data and grad) so the tape runs them like
any layer, but they are not prototxt layer types and are not registered. Element-wise ones broadcast as numpy
does; their backward sums each operand's grad back to that operand's shape.
"""

import numpy as np

from caffelite.errors import ShapeError
from caffelite.function import Function
from caffelite.proto import caffe_pb2


class Operation(Function):
    """An arithmetic Function; `type` names it in errors."""

    def __init__(self):
        super().__init__(caffe_pb2.LayerParameter(name=self.type, type=self.type))


class _Binary(Operation):
    def reshape(self, bottom, top):
        try:
            shape = np.broadcast_shapes(bottom[0].shape, bottom[1].shape)
        except ValueError:
            raise ShapeError(f"{self.type}: shapes {bottom[0].shape} and {bottom[1].shape} do not broadcast") from None
        top[0].reshape(shape)

    def backward(self, top, propagate_down, bottom):
        a, b = bottom[0].data, bottom[1].data
        for index, partial in enumerate(self.partials(a, b, top[0].grad)):
            if propagate_down[index]:
                bottom[index].grad[...] = _reduce_to(partial, bottom[index].shape)


class Add(_Binary):
    type = "Add"

    def forward(self, bottom, top):
        np.add(bottom[0].data, bottom[1].data, out=top[0].data)

    def partials(self, a, b, dy):
        return dy, dy


class Sub(_Binary):
    type = "Sub"

    def forward(self, bottom, top):
        np.subtract(bottom[0].data, bottom[1].data, out=top[0].data)

    def partials(self, a, b, dy):
        return dy, -dy


class Mul(_Binary):
    type = "Mul"

    def forward(self, bottom, top):
        np.multiply(bottom[0].data, bottom[1].data, out=top[0].data)

    def partials(self, a, b, dy):
        return dy * b, dy * a


class Div(_Binary):
    type = "Div"

    def forward(self, bottom, top):
        np.divide(bottom[0].data, bottom[1].data, out=top[0].data)

    def partials(self, a, b, dy):
        return dy / b, -dy * a / (b * b)


class MatMul(Operation):
    """numpy's matmul: 1-D, 2-D and batched (broadcast) operands."""

    type = "MatMul"

    def reshape(self, bottom, top):
        top[0].reshape(_matmul_shape(bottom[0].shape, bottom[1].shape))

    def forward(self, bottom, top):
        top[0].data[...] = np.matmul(bottom[0].data, bottom[1].data)

    def backward(self, top, propagate_down, bottom):
        a, b, dy = bottom[0].data, bottom[1].data, top[0].grad
        # 1-D operands are matrices with one row (left) or one column (right) whose extra axis numpy drops.
        a2, b2 = (a[None] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
        dy2 = dy.reshape(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1]))
        if propagate_down[0]:
            bottom[0].grad[...] = _reduce_to(np.matmul(dy2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if propagate_down[1]:
            bottom[1].grad[...] = _reduce_to(np.matmul(np.swapaxes(a2, -1, -2), dy2), b2.shape).reshape(b.shape)


class Sum(Operation):
    type = "Sum"

    def __init__(self, axis, keepdims):
        super().__init__()
        self.axis, self.keepdims = axis, keepdims

    def reshape(self, bottom, top):
        top[0].reshape(_summed_shape(bottom[0].shape, self.axis, self.keepdims))

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            kept = _summed_shape(bottom[0].shape, self.axis, True)
            bottom[0].grad[...] = np.broadcast_to(top[0].grad.reshape(kept), bottom[0].shape)


class Scale(Operation):
    """y = factor * x, for a fixed number (negation, mean's division)."""

    type = "Scale"

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        np.multiply(bottom[0].data, self.factor, out=top[0].data)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            np.multiply(top[0].grad, self.factor, out=bottom[0].grad)


class View(Operation):
    type = "View"

    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def reshape(self, bottom, top):
        try:
            shape = np.empty(bottom[0].shape, np.int8).reshape(self.shape).shape
        except ValueError:
            raise ShapeError(f"View: cannot view {bottom[0].shape} as {self.shape}") from None
        top[0].reshape(shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].grad[...] = top[0].grad.reshape(bottom[0].shape)


class Transpose(Operation):
    """Axes reversed (numpy's .T)."""

    type = "Transpose"

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape[::-1])

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data.T

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].grad[...] = top[0].grad.T


def _summed_shape(shape, axis, keepdims):
    return np.sum(np.empty(shape, np.int8), axis=axis, keepdims=keepdims).shape


def _matmul_shape(a, b):
    """numpy's matmul result shape, or ShapeError (1-D operands gain and then lose an axis)."""
    if not a or not b:
        raise ShapeError(f"MatMul: shapes {a} and {b}: scalars do not multiply as matrices")
    left = (1,) + a if len(a) == 1 else a
    right = b + (1,) if len(b) == 1 else b
    try:
        if left[-1] != right[-2]:
            raise ValueError
        batch = np.broadcast_shapes(left[:-2], right[:-2])
    except ValueError:
        raise ShapeError(f"MatMul: shapes {a} and {b} do not multiply") from None
    return batch + (left[-2],) * (len(a) > 1) + (right[-1],) * (len(b) > 1)


def _reduce_to(values, shape):
    """Sum a broadcast result back to an operand's shape."""
    extra = values.ndim - len(shape)
    if extra > 0:
        values = values.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and values.shape[i] != 1)
    return values.sum(axis=axes, keepdims=True) if axes else values
