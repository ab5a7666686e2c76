"""HDF5Data: rows of HDF5 datasets named after the tops, from the .h5 files a text file lists, one file at a time."""

import logging
from pathlib import Path

import numpy as np

from caffelite import parallel
from caffelite.errors import CaffeliteError, FileFormatError, NetError, ShapeError
from caffelite.function import Function, register_layer
from caffelite.io.files import read_text_file
from caffelite.layers._prefetching import shuffle_generator
from caffelite.limits import check_size

log = logging.getLogger("caffelite")


@register_layer("HDF5Data")
class HDF5Data(Function):
    """top_j[i] = dataset top_j of the current file, at its next row; the next file follows, and the first after the
    last. With `shuffle`, the file order is permuted at every pass and the rows of a file every time it is entered.

    Like Caffe, the whole current file is held in memory and nothing is transformed (no transform_param).
    Training on several processes (caffelite.parallel), the TRAIN phase serves the i-th row it passes on rank
    i % K only (Caffe's HDF5DataLayer::Skip), and every rank shuffles alike.
    """

    exact_num_bottom = 0
    min_top = 1

    def setup(self, bottom, top):
        param = self.param.hdf5_data_param
        if self.param.HasField("transform_param"):
            raise NetError(f"{self.describe()}: HDF5Data does not transform data; remove transform_param")
        if param.batch_size <= 0:
            raise NetError(f"{self.describe()}: hdf5_data_param.batch_size must be positive, got {param.batch_size}")
        self.batch_size = param.batch_size
        self.names = list(self.param.top)
        self.files = read_file_list(param.source, self.describe())
        log.info("%s: number of HDF5 files: %d", self.name, len(self.files))
        self.generator = shuffle_generator(self) if param.shuffle else None
        self.rank, self.size = parallel.data_share(self.phase)
        self.offset = 0  # rows passed, on every rank: row `offset` is this rank's when offset % size == rank
        self.file_order = self._permutation(len(self.files))
        self.file_index = 0
        self.item_shapes = None
        self._load(self.file_order[0])
        for tensor, array in zip(top, self.arrays):
            tensor.reshape((self.batch_size,) + array.shape[1:])

    def reshape(self, bottom, top):
        """Nothing: the top shapes are fixed at setup."""

    def forward(self, bottom, top):
        filled = 0
        while filled < self.batch_size:
            # this rank's rows among those left in the file, up to what the batch still needs
            left = len(self.rows) - self.row
            mine = np.arange((self.rank - self.offset) % self.size, left, self.size)[: self.batch_size - filled]
            rows = self.rows[self.row + mine]
            for tensor, array in zip(top, self.arrays):
                tensor.data[filled : filled + len(mine)] = array[rows]
            filled += len(mine)
            passed = int(mine[-1]) + 1 if filled == self.batch_size else left
            self.row += passed
            self.offset += passed
            if self.row == len(self.rows):
                self._next_file()

    def _next_file(self):
        if len(self.files) > 1:
            self.file_index += 1
            if self.file_index == len(self.files):
                self.file_index = 0
                self.file_order = self._permutation(len(self.files))
            self._load(self.file_order[self.file_index])
        else:
            self.rows = self._permutation(len(self.rows))
            self.row = 0

    def _permutation(self, count):
        return np.arange(count) if self.generator is None else self.generator.permutation(count)

    def _load(self, index):
        path, line = self.files[index]
        where = f"{self.describe()}: {self.param.hdf5_data_param.source}:{line}"
        self.arrays = read_dataset_file(path, self.names, self.dtype, where)
        num = self.arrays[0].shape[0]
        if num == 0:
            raise FileFormatError(f"{where}: HDF5 file '{path}': dataset '{self.names[0]}' has no rows")
        for name, array in zip(self.names, self.arrays):
            if array.shape[0] != num:
                raise FileFormatError(
                    f"{where}: HDF5 file '{path}': dataset '{name}' has {array.shape[0]} rows, but dataset "
                    f"'{self.names[0]}' has {num}"
                )
        shapes = [array.shape[1:] for array in self.arrays]
        if self.item_shapes is None:
            self.item_shapes = shapes
        for name, shape, expected in zip(self.names, shapes, self.item_shapes):
            if shape != expected:
                raise FileFormatError(
                    f"{where}: HDF5 file '{path}': dataset '{name}' has rows of shape {shape}, but the first "
                    f"file's have shape {expected}"
                )
        self.rows = self._permutation(num)
        self.row = 0


def read_file_list(source, where):
    """[(path, line number)]: the whitespace-separated file names in the list file `source` (Caffe reads it
    word by word; relative names are relative to the current directory, as in Caffe)."""
    text = read_text_file(source, "HDF5 file list", where)
    files = [(word, number) for number, line in enumerate(text.splitlines(), start=1) for word in line.split()]
    if not files:
        raise FileFormatError(f"{where}: HDF5 file list '{source}' lists no files")
    return files


def read_dataset_file(path, names, dtype, where):
    """The datasets `names` of the HDF5 file at `path`, as arrays of `dtype` with at least one axis."""
    import h5py

    if not Path(path).is_file():
        raise CaffeliteError(f"{where}: HDF5 file '{path}' does not exist (relative paths are taken from the current "
                             f"directory, {Path.cwd()})")
    try:
        with h5py.File(path, "r") as handle:
            return [_dataset(handle, path, name, dtype, where) for name in names]
    except OSError as error:
        raise FileFormatError(f"{where}: cannot read HDF5 file '{path}': {error}") from None


def _dataset(handle, path, name, dtype, where):
    dataset = handle.get(name)
    if dataset is None or not hasattr(dataset, "dtype"):
        known = ", ".join(sorted(key for key in handle if hasattr(handle[key], "dtype"))) or "none"
        raise FileFormatError(f"{where}: HDF5 file '{path}' has no dataset '{name}' (datasets: {known})")
    if dataset.dtype.kind not in "fiub":
        raise FileFormatError(
            f"{where}: HDF5 file '{path}': dataset '{name}' holds {dataset.dtype}, expected floats or integers"
        )
    if dataset.ndim < 1:
        raise FileFormatError(f"{where}: HDF5 file '{path}': dataset '{name}' must have at least 1 axis")
    try:  # a dataset may declare far more cells than the file stores
        check_size(dataset.shape, np.dtype(dtype).itemsize, f"dataset '{name}'")
    except ShapeError as error:
        raise FileFormatError(f"{where}: HDF5 file '{path}': {error}") from None
    return np.asarray(dataset[...], dtype=dtype)
