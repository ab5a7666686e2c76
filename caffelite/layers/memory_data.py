"""MemoryData: batches served from arrays the user hands over (pycaffe's Net.set_input_arrays)."""

import logging

import numpy as np

from caffelite.errors import NetError, ShapeError
from caffelite.function import Function, register_layer

log = logging.getLogger("caffelite")


@register_layer("MemoryData")
class MemoryData(Function):
    """top[0] = data[pos : pos + batch_size], top[1] = labels[pos : pos + batch_size]; pos wraps to 0.

    The arrays come from `set_input_arrays(data, labels)` (alias `reset`): data of shape (n, channels, height,
    width) and n labels, n a positive multiple of batch_size. Arrays already of the layer's dtype and C-contiguous
    are kept by reference, as Caffe does, so later changes to them show in later batches. As in Caffe's Reset,
    they are served as given: transform_param does not apply to them (a warning says so).
    """

    exact_num_bottom = 0
    exact_num_top = 2

    def setup(self, bottom, top):
        param = self.param.memory_data_param
        self.batch_size = param.batch_size
        self.item_shape = (param.channels, param.height, param.width)
        if self.batch_size * param.channels * param.height * param.width <= 0:
            raise NetError(
                f"{self.describe()}: memory_data_param needs positive batch_size, channels, height and width, got "
                f"{self.batch_size}, {param.channels}, {param.height}, {param.width}"
            )
        self.data = self.labels = None
        self.position = 0
        top[0].reshape((self.batch_size,) + self.item_shape)
        top[1].reshape(self.batch_size)

    def reshape(self, bottom, top):
        """Nothing: forward gives the tops their shapes."""

    def forward(self, bottom, top):
        if self.data is None:
            raise NetError(
                f"{self.describe()}: no data yet; call set_input_arrays(data, labels) on the layer "
                "(or net.set_input_arrays) before forward"
            )
        window = slice(self.position, self.position + self.batch_size)
        top[0].reshape((self.batch_size,) + self.item_shape)
        top[0].data[...] = self.data[window]
        # Caffe gives the label top a 4-D shape at forward.
        top[1].reshape(self.batch_size, 1, 1, 1)
        top[1].data[...] = self.labels[window].reshape(top[1].shape)
        self.position = (self.position + self.batch_size) % len(self.data)

    def set_input_arrays(self, data, labels):
        """Serve batches from `data` (n, channels, height, width) and `labels` (n,) or (n, 1, 1, 1), from the first."""
        data = self._as_array(data, "data")
        labels = self._as_array(labels, "labels")
        if data.shape[1:] != self.item_shape or data.ndim != 4:
            raise ShapeError(f"{self.describe()}: data must have shape (n, {', '.join(map(str, self.item_shape))}), "
                             f"got {data.shape}")
        if labels.ndim not in (1, 4) or labels.shape[1:] not in ((), (1, 1, 1)):
            raise ShapeError(f"{self.describe()}: labels must have shape (n,) or (n, 1, 1, 1), got {labels.shape}")
        if len(labels) != len(data):
            raise ShapeError(f"{self.describe()}: data and labels must have the same first dimension, got "
                             f"{len(data)} and {len(labels)}")
        if len(data) == 0 or len(data) % self.batch_size:
            raise ShapeError(f"{self.describe()}: the number of items ({len(data)}) must be a positive multiple of "
                             f"batch_size {self.batch_size}")
        if self.param.HasField("transform_param"):
            log.warning("%s: array data given to set_input_arrays is not transformed (as in Caffe)", self.describe())
        self.data, self.labels = data, labels.reshape(len(labels))
        self.position = 0

    reset = set_input_arrays

    def set_batch_size(self, batch_size):
        """Caffe's MemoryDataLayer::set_batch_size; the arrays given later must hold a multiple of it."""
        if batch_size <= 0:
            raise NetError(f"{self.describe()}: batch_size must be positive, got {batch_size}")
        if self.data is not None and len(self.data) % batch_size:
            raise ShapeError(f"{self.describe()}: {len(self.data)} items are not a multiple of batch_size {batch_size}")
        self.batch_size = int(batch_size)

    def _as_array(self, array, what):
        array = np.asarray(array)
        if array.dtype.kind not in "fiub":
            raise ShapeError(f"{self.describe()}: {what} must be numeric, got an array of {array.dtype}")
        return np.ascontiguousarray(array, dtype=self.dtype)  # no copy when it already fits
