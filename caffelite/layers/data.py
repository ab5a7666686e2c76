"""Data: batches of Datum records read from an LMDB in key order, transformed, prefetched by a background thread."""

import numpy as np

from caffelite import parallel
from caffelite.data.datum import datum_to_array
from caffelite.data.db import open_db
from caffelite.data.transformer import DataTransformer, needs_random
from caffelite.errors import FileFormatError, NetError
from caffelite.function import register_layer
from caffelite.layers._prefetching import PrefetchingData, child_generator
from caffelite.proto import caffe_pb2


@register_layer("Data")
class Data(PrefetchingData):
    """top[0] = transform(next batch_size records), top[1] = their labels; wraps to the first record at the end.

    Training on several processes (caffelite.parallel), the TRAIN phase reads record i on rank i % K only.
    The first record fixes the item shape reported at setup; each batch then takes the shape of its own first
    record (Caffe's rule), and every record of a batch must share it. Call `close()` to stop the prefetch thread
    early; it is also stopped when the layer is garbage-collected and at interpreter exit.
    """

    min_top = 1
    max_top = 2

    def setup(self, bottom, top):
        param = self.param.data_param
        if param.batch_size <= 0:
            raise NetError(f"{self.describe()}: data_param.batch_size must be positive, got {param.batch_size}")
        self._db = open_db(param.source, param.backend, layer=self.describe())
        try:
            super().setup(bottom, top)
        except BaseException:
            self._db.close()
            raise

    def make_loader(self, top):
        param = self.param.data_param
        cursor = self._db.cursor(rand_skip=param.rand_skip)
        transform_param = self.param.transform_param
        generator = child_generator() if needs_random(transform_param, self.phase) else None
        transformer = DataTransformer(transform_param, self.phase, generator, self.dtype, where=self.describe())
        share = parallel.data_share(self.phase)
        loader = _BatchLoader(cursor, transformer, param.batch_size, share, param.source, self.describe())
        item_shape = transformer.output_shape(loader.decode(cursor.key, cursor.value).shape)
        top[0].reshape((param.batch_size,) + item_shape)
        if len(top) > 1:
            top[1].reshape(param.batch_size)
        return loader

    def worker_resources(self):
        return (self._db,)


class _BatchLoader:
    """Reads, decodes and transforms one batch; runs in the prefetch thread (it holds no reference to the layer)."""

    def __init__(self, cursor, transformer, batch_size, share, source, where):
        self.cursor = cursor
        self.transformer = transformer
        self.batch_size = batch_size
        self.share = share
        self.source = source
        self.where = where

    def __call__(self):
        records = self.cursor.read(self.batch_size, self.share)
        datums = [self._parse(key, value) for key, value in records]
        items = self._stack(records, datums)
        labels = np.array([datum.label for datum in datums], dtype=self.transformer.dtype)
        return self.transformer.transform(items), labels

    def decode(self, key, value):
        return self._to_array(key, self._parse(key, value))

    def _parse(self, key, value):
        datum = caffe_pb2.Datum()
        try:
            datum.ParseFromString(value)
        except Exception as error:  # protobuf's DecodeError
            raise self._error(key, f"is not a Datum ({error})") from None
        return datum

    def _to_array(self, key, datum):
        try:
            return datum_to_array(
                datum, force_color=self.transformer.force_color, force_gray=self.transformer.force_gray
            )
        except FileFormatError as error:
            raise self._error(key, f"is malformed: {error}") from None

    def _stack(self, records, datums):
        """(N, C, H, W) items; plain uint8 records are joined as raw bytes without a per-item array."""
        first = datums[0]
        shape = (first.channels, first.height, first.width)
        raw = not any(d.encoded or len(d.float_data) for d in datums)
        if raw:
            size = shape[0] * shape[1] * shape[2]
            for (key, _), datum in zip(records, datums):
                if (datum.channels, datum.height, datum.width) != shape or len(datum.data) != size:
                    self._to_array(key, datum)  # raises the precise error for a malformed record
                    raise self._error(key, f"has shape {(datum.channels, datum.height, datum.width)}, "
                                           f"but this batch's first record has shape {shape}")
            pixels = b"".join(datum.data for datum in datums)
            return np.frombuffer(pixels, dtype=np.uint8).reshape((len(datums),) + shape)
        arrays = [self._to_array(key, datum) for (key, _), datum in zip(records, datums)]
        for (key, _), array in zip(records, arrays):
            if array.shape != arrays[0].shape:
                raise self._error(key, f"has shape {array.shape}, but this batch's first record has shape "
                                       f"{arrays[0].shape}")
        return np.stack(arrays)

    def _error(self, key, what):
        name = key.decode(errors="replace") if isinstance(key, bytes) else key
        return FileFormatError(f"{self.where}: record '{name}' of '{self.source}' {what}")
