"""HDF5Output: appends its two bottoms to the datasets "data" and "label" of an HDF5 file at every forward."""

import logging
from pathlib import Path

from caffelite.errors import CaffeliteError, FileFormatError, NetError, ShapeError
from caffelite.function import Function, register_layer

log = logging.getLogger("caffelite")

# Caffe's HDF5_DATA_DATASET_NAME and HDF5_DATA_LABEL_NAME.
DATASET_NAMES = ("data", "label")


@register_layer("HDF5Output")
class HDF5Output(Function):
    """file["data"] += bottom[0], file["label"] += bottom[1], stored as 4-D (num, channels, height, width) blobs.

    Caffe creates (truncates) the file at setup and writes the two datasets at a forward; where Caffe can write
    them only once, caffelite appends each forward's rows, so a test pass of many batches ends up in one file.
    The file is closed between forwards, so it can be read while the net lives.
    """

    exact_num_bottom = 2
    exact_num_top = 0

    def setup(self, bottom, top):
        import h5py

        self.file_name = self.param.hdf5_output_param.file_name
        if not self.file_name:
            raise NetError(f"{self.describe()}: hdf5_output_param.file_name is required")
        if not Path(self.file_name).parent.is_dir():
            raise CaffeliteError(f"{self.describe()}: cannot create '{self.file_name}': its directory does not exist")
        try:
            h5py.File(self.file_name, "w").close()
        except OSError as error:
            raise CaffeliteError(f"{self.describe()}: cannot create HDF5 file '{self.file_name}': {error}") from None

    def reshape(self, bottom, top):
        blobs = [self._legacy_4d(index, tensor) for index, tensor in enumerate(bottom)]
        if blobs[0][0] != blobs[1][0]:
            raise ShapeError(
                f"{self.describe()}: data and label need the same batch size, got {bottom[0].shape} and "
                f"{bottom[1].shape}"
            )

    def forward(self, bottom, top):
        import h5py

        try:
            with h5py.File(self.file_name, "a") as handle:
                for name, tensor in zip(DATASET_NAMES, bottom):
                    self._append(handle, name, tensor.data.reshape(self._legacy_4d(0, tensor)))
        except OSError as error:
            raise FileFormatError(f"{self.describe()}: cannot write HDF5 file '{self.file_name}': {error}") from None
        log.info("%s: saved %d rows to %s", self.name, bottom[0].num, self.file_name)

    def backward(self, top, propagate_down, bottom):
        """Nothing: the layer only records its inputs."""

    def _append(self, handle, name, rows):
        if name not in handle:
            handle.create_dataset(name, data=rows, maxshape=(None,) + rows.shape[1:], chunks=True)
            return
        dataset = handle[name]
        if dataset.shape[1:] != rows.shape[1:]:
            raise ShapeError(
                f"{self.describe()}: '{self.file_name}': dataset '{name}' holds rows of shape {dataset.shape[1:]}, "
                f"this forward's have shape {rows.shape[1:]}"
            )
        start = dataset.shape[0]
        dataset.resize(start + rows.shape[0], axis=0)
        dataset[start:] = rows

    def _legacy_4d(self, index, tensor):
        # Caffe stores the blobs through num/channels/height/width, so they are written with 4 axes.
        if tensor.num_axes > 4:
            raise ShapeError(f"{self.describe()}: bottom[{index}] has {tensor.num_axes} axes; at most 4 fit the "
                             f"(num, channels, height, width) layout")
        return (tensor.num, tensor.channels, tensor.height, tensor.width)
