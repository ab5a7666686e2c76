"""Tensor: Caffe's Blob, a `data` array and a `grad` array of one shape."""

import threading

import numpy as np

from caffelite.errors import ShapeError
from caffelite.limits import check_size

_ALLOCATING = threading.Lock()


class Tensor:
    """`data` and `grad` (alias `diff`) are numpy arrays of one shape and dtype (float32 unless asked otherwise).

    `grad` is allocated (as zeros) on first use, as Caffe allocates a blob's diff: a forward-only net never pays
    for it.
    """

    def __init__(self, shape=(), dtype=np.float32):
        shape = _checked_shape(shape)
        check_size(shape, np.dtype(dtype).itemsize, "a blob")
        self.data = np.zeros(shape, dtype=dtype)
        self._grad = None

    @property
    def grad(self):
        if self._grad is None:
            with _ALLOCATING:  # threads sharing a layer's work must all get the one array
                if self._grad is None:
                    self._grad = np.zeros(self.data.shape, dtype=self.data.dtype)
        return self._grad

    @grad.setter
    def grad(self, value):
        self._grad = value

    @classmethod
    def from_array(cls, array, dtype=None):
        array = np.asarray(array)
        tensor = cls(array.shape, dtype=dtype or (array.dtype if array.dtype.kind == "f" else np.float32))
        tensor.data[...] = array
        return tensor

    @property
    def diff(self):
        return self.grad

    @diff.setter
    def diff(self, value):
        self.grad = value

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def count(self):
        return int(self.data.size)

    @property
    def num_axes(self):
        return self.data.ndim

    def _legacy_dim(self, index):
        # Caffe's LegacyShape: axes past the last read as 1 (a (64, 10) blob has height 1, width 1).
        if self.data.ndim > 4:
            raise ShapeError(f"blob of shape {self.shape} has no legacy 4-D view")
        return self.shape[index] if index < self.data.ndim else 1

    @property
    def num(self):
        return self._legacy_dim(0)

    @property
    def channels(self):
        return self._legacy_dim(1)

    @property
    def height(self):
        return self._legacy_dim(2)

    @property
    def width(self):
        return self._legacy_dim(3)

    def reshape(self, *shape):
        """Give the tensor a new shape; contents are kept when the element count is unchanged, else zeroed."""
        if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
            shape = tuple(shape[0])
        shape = _checked_shape(shape)
        if shape == self.shape:
            return
        if int(np.prod(shape, dtype=np.int64)) == self.count:
            self.data = self.data.reshape(shape)
            if self._grad is not None:
                self._grad = self._grad.reshape(shape)
        else:
            check_size(shape, self.data.dtype.itemsize, "a blob")
            self.data = np.zeros(shape, dtype=self.data.dtype)
            self._grad = None

    def reshape_like(self, other):
        self.reshape(other.shape)

    def shape_string(self):
        """Caffe's log form: `64 1 28 28 (50176)`."""
        return "".join(f"{d} " for d in self.shape) + f"({self.count})"

    def __repr__(self):
        return f"Tensor(shape={self.shape}, dtype={self.data.dtype})"


def _checked_shape(shape):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = tuple(int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ShapeError(f"negative dimension in shape {shape}")
    return shape
