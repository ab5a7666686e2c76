"""Define-by-run: the same Functions as the Net, called on Tensors one at a time, with a tape for backward.

    from caffelite import autograd as ag
    x = ag.Tensor(2.5, requires_grad=True)
    y = ag.Tensor(0.5, requires_grad=True)
    z = x / y                       # 5.0
    z.backward()                    # x.grad == 2.0, y.grad == -10.0

    conv = ag.layer("Convolution", num_output=20, kernel_size=5, weight_filler=dict(type="xavier"))
    loss = ag.layer("SoftmaxWithLoss")(ag.layer("InnerProduct", num_output=10)(conv(images)), labels)
    loss.backward()                 # conv.params[0].grad, ...

Every operation runs a Function's own forward and, on backward, its own backward (Caffe's contract: bottoms'
grads assigned, params' grads added), so a layer behaves here exactly as in a Net. `layer(type, **options)` takes
pycaffe's NetSpec keywords; its Function is set up on the first call, when the input shapes are known. Arithmetic
on Tensors (+ - * / @, sum, mean, reshape, negation) is made of small Functions of the same kind, with numpy
broadcasting. Gradients accumulate into `.grad` of the leaves that require them (zero them with `zero_grad`);
intermediate results keep theirs until the next backward through them.
"""

import contextlib
import threading

import numpy as np

from caffelite import function as function_module
from caffelite import tensor as tensor_module
from caffelite.errors import CaffeliteError, ShapeError
from caffelite.net_spec import layer_parameter
from caffelite.phase import TRAIN

_state = threading.local()


def _recording():
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad():
    """Operations inside record nothing (evaluation, weight updates)."""
    previous = _recording()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = previous


class Tensor(tensor_module.Tensor):
    """A caffelite Tensor made from values (like numpy.array), that remembers the operation that made it."""

    def __init__(self, value=0.0, requires_grad=False, dtype=None):
        array = np.array(value, dtype=dtype)
        if dtype is None and array.dtype != np.float64:
            array = array.astype(np.float32)  # float32 unless float64 values are given
        super().__init__(array.shape, dtype=array.dtype)
        self.data[...] = array
        self.requires_grad = requires_grad
        self._node = None

    @classmethod
    def _wrapping(cls, tensor, requires_grad):
        """An autograd Tensor sharing `tensor`'s arrays (a layer's param)."""
        result = cls.__new__(cls)
        result.data, result._grad = tensor.data, tensor._grad
        result.requires_grad, result._node = requires_grad, None
        return result

    # -- values -----------------------------------------------------------------------------------
    def numpy(self):
        return self.data

    def item(self):
        return self.data.item()

    def detach(self):
        return Tensor(self.data.copy())

    def zero_grad(self):
        if self._grad is not None:
            self._grad.fill(0)

    def __repr__(self):
        return f"Tensor({self.data!r}, requires_grad={self.requires_grad})"

    # -- backward ---------------------------------------------------------------------------------
    def backward(self, grad=None):
        """Gradients of this tensor (a scalar, or weighted by `grad`) into every leaf that requires them."""
        if grad is None:
            if self.data.size != 1:
                raise CaffeliteError(f"backward() of a tensor of shape {self.shape} needs its gradient "
                                     "(only a single value seeds itself with 1)")
            grad = np.ones_like(self.data)
        grad = np.asarray(grad, dtype=self.dtype)
        if grad.shape != self.shape:
            raise ShapeError(f"backward(): gradient of shape {grad.shape} for a tensor of shape {self.shape}")
        order = _topological(self)
        for node in order:
            for output in node.outputs:
                output.grad.fill(0)
        self.grad[...] = grad
        for node in reversed(order):
            node.backward()

    # -- arithmetic ---------------------------------------------------------------------------------
    def __add__(self, other):
        return _apply(_Add(), self, other)

    def __radd__(self, other):
        return _apply(_Add(), other, self)

    def __sub__(self, other):
        return _apply(_Sub(), self, other)

    def __rsub__(self, other):
        return _apply(_Sub(), other, self)

    def __mul__(self, other):
        return _apply(_Mul(), self, other)

    def __rmul__(self, other):
        return _apply(_Mul(), other, self)

    def __truediv__(self, other):
        return _apply(_Div(), self, other)

    def __rtruediv__(self, other):
        return _apply(_Div(), other, self)

    def __matmul__(self, other):
        return _apply(_MatMul(), self, other)

    def __rmatmul__(self, other):
        return _apply(_MatMul(), other, self)

    def __neg__(self):
        return _apply(_Scale(-1.0), self)

    def sum(self, axis=None, keepdims=False):
        return _apply(_Sum(axis, keepdims), self)

    def mean(self, axis=None, keepdims=False):
        kept = self.data.size if axis is None else int(np.prod([self.shape[a] for a in np.atleast_1d(axis)]))
        return _apply(_Scale(1.0 / kept), _apply(_Sum(axis, keepdims), self))

    def view(self, *shape):
        """The values in another shape, as an operation (`reshape` stays the Blob's in-place resize)."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        return _apply(_Reshape(shape), self)


def _as_tensor(value, dtype):
    return value if isinstance(value, tensor_module.Tensor) else Tensor(np.asarray(value, dtype=dtype))


class _Node:
    """One recorded call: a Function, the Tensors it read (bottoms) and made (tops), and what backward needs."""

    def __init__(self, function, inputs, outputs, loss_weights):
        self.function, self.inputs, self.outputs, self.loss_weights = function, inputs, outputs, loss_weights

    def backward(self):
        propagate = [getattr(t, "requires_grad", False) for t in self.inputs]
        # The Function assigns its bottoms' grads; here they are added into each input's, so an input used
        # by several operations gets the sum.
        proxies = [_proxy(t) for t in self.inputs]
        for index, weight in self.loss_weights:
            self.outputs[index].grad[...] *= weight
        self.function.backward(self.outputs, propagate, proxies)
        for tensor, proxy, needed in zip(self.inputs, proxies, propagate):
            if needed:
                tensor.grad[...] += proxy.grad


def _proxy(tensor):
    proxy = tensor_module.Tensor.__new__(tensor_module.Tensor)
    proxy.data, proxy._grad = tensor.data, None
    return proxy


def _topological(root):
    order, seen = [], set()
    stack = [(root._node, False)] if getattr(root, "_node", None) else []
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        for tensor in node.inputs:
            if getattr(tensor, "_node", None) is not None and id(tensor._node) not in seen:
                stack.append((tensor._node, False))
    return order


def _apply(function, *inputs, loss_weights=(), top_count=1):
    """Run `function` forward on `inputs` (values become Tensors); record it when any input requires grad."""
    dtype = next((t.dtype for t in inputs if isinstance(t, tensor_module.Tensor)), np.float32)
    bottoms = [_as_tensor(value, dtype) for value in inputs]
    tops = [Tensor(np.zeros((), dtype=dtype)) for _ in range(top_count)]
    function.reshape(bottoms, tops)
    function.forward(bottoms, tops)
    needs = any(getattr(t, "requires_grad", False) for t in bottoms) or any(
        p.requires_grad for p in function.params if isinstance(p, Tensor))
    if needs and _recording():
        node = _Node(function, bottoms, tops, list(loss_weights))
        for top in tops:
            top.requires_grad, top._node = True, node
    return tops[0] if top_count == 1 else tuple(tops)


# -- layers -----------------------------------------------------------------------------------------------
class Layer:
    """A registered layer type called on Tensors; `params` are its learnable Tensors once it has run."""

    def __init__(self, type_name, phase=TRAIN, dtype=np.float32, **options):
        self.param = layer_parameter(type_name, **options)
        self.function = function_module.LAYERS.get(type_name)(self.param, phase=phase, dtype=dtype)
        self._ready = False

    @property
    def params(self):
        return self.function.params

    def __call__(self, *inputs):
        dtype = self.function.dtype
        bottoms = [_as_tensor(value, dtype) for value in inputs]
        top_count = max(len(self.param.top), self.function.min_top or 1)
        if not self._ready:
            tops = [Tensor(np.zeros((), dtype=dtype)) for _ in range(top_count)]
            self.function.check_blob_counts(len(bottoms), len(tops))
            self.function.setup(bottoms, tops)
            # The params become autograd leaves sharing the Function's arrays, so optimizers see them.
            self.function.params[:] = [Tensor._wrapping(p, True) for p in self.function.params]
            self._ready = True
        weights = [(0, 1.0)] if self.function.is_loss else []
        return _apply(self.function, *bottoms, loss_weights=weights, top_count=top_count)


def layer(type_name, phase=TRAIN, dtype=np.float32, **options):
    """`layer("Convolution", num_output=20, kernel_size=5)`: a Layer of that registered type (TRAIN phase)."""
    return Layer(type_name, phase=phase, dtype=dtype, **options)


def parameters(*layers):
    """Every learnable Tensor of `layers`, in order."""
    return [p for item in layers for p in item.params]


class SGD:
    """Caffe's SGD update on autograd params: v = momentum v + lr (grad + weight_decay w); w -= v."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        self.params, self.lr, self.momentum, self.weight_decay = list(params), lr, momentum, weight_decay
        self.history = [np.zeros_like(p.data) for p in self.params]

    def zero_grad(self):
        for p in self.params:
            p.zero_grad()

    def step(self):
        for p, v in zip(self.params, self.history):
            v *= self.momentum
            v += self.lr * (p.grad + self.weight_decay * p.data)
            p.data -= v


# -- arithmetic as Functions ----------------------------------------------------------------------------
class _Operation(function_module.Function):
    """An arithmetic Function (not a prototxt layer type)."""

    def __init__(self):
        super().__init__(_OPERATION_PARAM)


class _Binary(_Operation):
    """Element-wise with numpy broadcasting; backward sums each operand's grad back to its own shape."""

    def reshape(self, bottom, top):
        try:
            shape = np.broadcast_shapes(bottom[0].shape, bottom[1].shape)
        except ValueError:
            raise ShapeError(f"{type(self).__name__[1:]}: shapes {bottom[0].shape} and {bottom[1].shape} do not "
                             "broadcast") from None
        top[0].reshape(shape)

    def backward(self, top, propagate_down, bottom):
        a, b = bottom[0].data, bottom[1].data
        for index, partial in enumerate(self.partials(a, b, top[0].grad)):
            if propagate_down[index]:
                bottom[index].grad[...] = _reduce_to(partial, bottom[index].shape)


class _Add(_Binary):
    def forward(self, bottom, top):
        np.add(bottom[0].data, bottom[1].data, out=top[0].data)

    def partials(self, a, b, dy):
        return dy, dy


class _Sub(_Binary):
    def forward(self, bottom, top):
        np.subtract(bottom[0].data, bottom[1].data, out=top[0].data)

    def partials(self, a, b, dy):
        return dy, -dy


class _Mul(_Binary):
    def forward(self, bottom, top):
        np.multiply(bottom[0].data, bottom[1].data, out=top[0].data)

    def partials(self, a, b, dy):
        return dy * b, dy * a


class _Div(_Binary):
    def forward(self, bottom, top):
        np.divide(bottom[0].data, bottom[1].data, out=top[0].data)

    def partials(self, a, b, dy):
        return dy / b, -dy * a / (b * b)


class _MatMul(_Operation):
    """numpy's matmul (1-D, 2-D and batched operands)."""

    def reshape(self, bottom, top):
        top[0].reshape(_matmul_shape(bottom[0].shape, bottom[1].shape))

    def forward(self, bottom, top):
        top[0].data[...] = np.matmul(bottom[0].data, bottom[1].data)

    def backward(self, top, propagate_down, bottom):
        a, b, dy = bottom[0].data, bottom[1].data, top[0].grad
        a2, b2 = (a[None] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
        dy2 = dy.reshape(np.matmul(a2, b2).shape)
        if propagate_down[0]:
            bottom[0].grad[...] = _reduce_to(np.matmul(dy2, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if propagate_down[1]:
            bottom[1].grad[...] = _reduce_to(np.matmul(np.swapaxes(a2, -1, -2), dy2), b2.shape).reshape(b.shape)


class _Sum(_Operation):
    def __init__(self, axis, keepdims):
        super().__init__()
        self.axis, self.keepdims = axis, keepdims

    def reshape(self, bottom, top):
        top[0].reshape(np.sum(np.empty(bottom[0].shape, np.int8), axis=self.axis, keepdims=self.keepdims).shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            kept = np.sum(np.empty(bottom[0].shape, np.int8), axis=self.axis, keepdims=True).shape
            bottom[0].grad[...] = np.broadcast_to(top[0].grad.reshape(kept), bottom[0].shape)


class _Scale(_Operation):
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


class _Reshape(_Operation):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape

    def reshape(self, bottom, top):
        try:
            shape = np.empty(bottom[0].shape, np.int8).reshape(self.shape).shape
        except ValueError:
            raise ShapeError(f"Reshape: cannot reshape {bottom[0].shape} to {self.shape}") from None
        top[0].reshape(shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data.reshape(top[0].shape)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].grad[...] = top[0].grad.reshape(bottom[0].shape)


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


_OPERATION_PARAM = layer_parameter("Silence")
