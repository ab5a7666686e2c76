"""The autograd Tensor and its tape: each operation on Tensors that require grad records a node (the Function, its
inputs, its outputs); `backward()` runs the nodes' Functions backward in reverse topological order.

A graph is walked back once (then its nodes are released, as torch frees a graph): compute it again to backward
again. Output tensors hold their node, a node holds its inputs and only weak references to its outputs, so a
graph nobody refers to is freed at once.
"""

import contextlib
import threading
import weakref

import numpy as np

from caffelite import tensor as tensor_module
from caffelite.autograd import operations
from caffelite.errors import CaffeliteError, ShapeError

_state = threading.local()


def recording():
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad():
    """Operations inside record nothing (evaluation, weight updates)."""
    previous = recording()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = previous


class Tensor(tensor_module.Tensor):
    """A caffelite Tensor made from values (like numpy.array) that remembers the operation that made it.

    float32 unless given a float64 numpy array or scalar (or an explicit dtype); Python numbers give float32.
    `lr_mult` and `decay_mult` are the ParamSpec multipliers an optimizer applies (a layer's params take them from
    its `param` keyword).
    """

    lr_mult = 1.0
    decay_mult = 1.0
    __array_ufunc__ = None  # numpy array (op) Tensor defers to the Tensor's reflected operator

    def __init__(self, value=0.0, requires_grad=False, dtype=None):
        if isinstance(value, tensor_module.Tensor):
            value = value.data
        if dtype is None:
            given = getattr(value, "dtype", None)  # numpy arrays and scalars; Python numbers have none
            dtype = np.float64 if given == np.float64 else np.float32
        array = np.array(value, dtype=dtype)
        super().__init__(array.shape, dtype=array.dtype)
        self.data[...] = array
        self.requires_grad = requires_grad
        self._node = None

    @classmethod
    def from_array(cls, array, dtype=None):
        return cls(array, dtype=dtype)

    @classmethod
    def sharing(cls, tensor, requires_grad):
        """An autograd Tensor over `tensor`'s data and grad arrays (a layer's param made a leaf)."""
        result = cls.__new__(cls)
        result.data, result._grad = tensor.data, tensor.grad
        result.requires_grad, result._node = requires_grad, None
        return result

    # -- values -----------------------------------------------------------------------------------
    def numpy(self):
        """The data array itself (not a copy)."""
        return self.data

    def item(self):
        return self.data.item()

    def detach(self):
        """The same data, outside the graph."""
        return Tensor.sharing(self, False)

    def zero_grad(self):
        if self._grad is not None:
            self._grad.fill(0)

    def __repr__(self):
        return f"Tensor({self.data!r}, requires_grad={self.requires_grad})"

    # -- backward ---------------------------------------------------------------------------------
    def backward(self, grad=None):
        """Add the gradient of this tensor (a single value, or weighted by `grad`) into every leaf that requires it.

        Intermediate tensors keep the gradient they received (readable as `.grad` while they live).
        """
        if not self.requires_grad:
            raise CaffeliteError("backward() of a tensor that does not require grad (no input of its operations "
                                 "has requires_grad=True, or it was computed under no_grad())")
        if grad is None:
            if self.data.size != 1:
                raise CaffeliteError(f"backward() of a tensor of shape {self.shape} needs its gradient "
                                     "(only a single value seeds itself with 1)")
            grad = np.ones_like(self.data)
        grad = np.asarray(grad, dtype=self.dtype)
        if grad.shape != self.shape:
            raise ShapeError(f"backward(): gradient of shape {grad.shape} for a tensor of shape {self.shape}")
        order = _topological(self)
        self.grad[...] += grad
        for node in reversed(order):
            node.backward()

    # -- arithmetic -------------------------------------------------------------------------------
    def __add__(self, other):
        return apply(operations.Add(), self, other)

    def __radd__(self, other):
        return apply(operations.Add(), other, self)

    def __sub__(self, other):
        return apply(operations.Sub(), self, other)

    def __rsub__(self, other):
        return apply(operations.Sub(), other, self)

    def __mul__(self, other):
        return apply(operations.Mul(), self, other)

    def __rmul__(self, other):
        return apply(operations.Mul(), other, self)

    def __truediv__(self, other):
        return apply(operations.Div(), self, other)

    def __rtruediv__(self, other):
        return apply(operations.Div(), other, self)

    def __matmul__(self, other):
        return apply(operations.MatMul(), self, other)

    def __rmatmul__(self, other):
        return apply(operations.MatMul(), other, self)

    def __neg__(self):
        return apply(operations.Scale(-1.0), self)

    def sum(self, axis=None, keepdims=False):
        return apply(operations.Sum(axis, keepdims), self)

    def mean(self, axis=None, keepdims=False):
        total = self.sum(axis, keepdims)
        return apply(operations.Scale(total.data.size / self.data.size), total)

    def view(self, *shape):
        """The values in another shape, as an operation (`reshape` stays the Blob's in-place resize, which the
        Functions call on their tops)."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        return apply(operations.View(shape), self)

    @property
    def T(self):
        return apply(operations.Transpose(), self)


def as_tensor(value, dtype):
    """Tensors as they are; numbers and arrays as constant Tensors of `dtype`."""
    return value if isinstance(value, tensor_module.Tensor) else Tensor(np.asarray(value, dtype=dtype))


def apply(function, *inputs, top_count=1):
    """Run `function` (reshaped, forward) on `inputs`; record it when any input or param requires grad.

    Returns the output Tensor (a tuple when top_count > 1).
    """
    dtype = next((t.dtype for t in inputs if isinstance(t, tensor_module.Tensor)), np.float32)
    bottoms = [as_tensor(value, dtype) for value in inputs]
    tops = [Tensor(np.zeros((), dtype=dtype)) for _ in range(top_count)]
    function.reshape(bottoms, tops)
    function.forward(bottoms, tops)
    needs = any(getattr(t, "requires_grad", False) for t in [*bottoms, *function.params])
    if needs and recording():
        node = Node(function, bottoms, tops)
        for top in tops:
            top.requires_grad, top._node = True, node
    return tops[0] if top_count == 1 else tuple(tops)


class Node:
    """One recorded call: a Function, the Tensors it read (bottoms) and made (tops)."""

    def __init__(self, function, inputs, outputs):
        self.function, self.inputs = function, inputs
        self._outputs = [(weakref.ref(t), t.data) for t in outputs]
        self.released = False

    def backward(self):
        # An output nobody holds any more received no gradient; its Function may still read its data.
        tops = [ref() or _bare(data) for ref, data in self._outputs]
        propagate = [getattr(t, "requires_grad", False) for t in self.inputs]
        # The Function assigns its bottoms' grads; here they are added into each input's, so an input used
        # by several operations gets the sum.
        proxies = [_bare(t.data) for t in self.inputs]
        self.function.backward(tops, propagate, proxies)
        for tensor, proxy, needed in zip(self.inputs, proxies, propagate):
            if needed:
                tensor.grad[...] += proxy.grad
        self.released = True


def _bare(data):
    tensor = tensor_module.Tensor.__new__(tensor_module.Tensor)
    tensor.data, tensor._grad = data, None
    return tensor


def _topological(root):
    """The nodes `root` depends on, each after every node that made one of its inputs."""
    order, seen = [], set()
    stack = [(root._node, False)] if root._node is not None else []
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        if node.released:
            raise CaffeliteError(f"backward() through {node.function.describe()} again: a graph is walked back "
                                 "once; compute the result again to backward again")
        seen.add(id(node))
        stack.append((node, True))
        for tensor in node.inputs:
            parent = getattr(tensor, "_node", None)
            if parent is not None and id(parent) not in seen:
                stack.append((parent, False))
    return order
