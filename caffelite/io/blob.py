"""BlobProto <-> numpy arrays, Caffe's shape rules for saved blobs, and .binaryproto files (mean images)."""

import math

import numpy as np

from caffelite.errors import FileFormatError, ShapeError
from caffelite.io.binary import read_binary, write_binary
from caffelite.proto import caffe_pb2

_LEGACY_DIMS = ("num", "channels", "height", "width")


def blob_shape(blob):
    """The shape a BlobProto describes: its legacy 4-D num/channels/height/width when any is set, else `shape`.

    The legacy fields win, as in Caffe's Blob::FromProto and pycaffe.
    """
    if _has_legacy_shape(blob):
        shape = tuple(getattr(blob, name) for name in _LEGACY_DIMS)
    else:
        shape = tuple(int(dim) for dim in blob.shape.dim)
    if any(dim < 0 for dim in shape):
        raise FileFormatError(f"blob has a negative dimension in its shape {shape}")
    return shape


def blobproto_to_array(blob, return_diff=False):
    """The blob's data (or diff) as an array of its shape: float32 from `data`, float64 from `double_data`."""
    shape = blob_shape(blob)
    values = _stored_values(blob, "diff" if return_diff else "data")
    if len(values) != math.prod(shape):
        what = "diff" if return_diff else "data"
        raise FileFormatError(f"blob of shape {shape} holds {len(values)} {what} values, expected {math.prod(shape)}")
    return values.reshape(shape)


def array_to_blobproto(arr, diff=None):
    """A BlobProto with `shape` and float `data` (and `diff` when given, of the same shape)."""
    arr = np.asarray(arr)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(arr.shape)
    _set_floats(blob, "data", arr)
    if diff is not None:
        diff = np.asarray(diff)
        if diff.shape != arr.shape:
            raise ShapeError(f"diff of shape {diff.shape} does not match data of shape {arr.shape}")
        _set_floats(blob, "diff", diff)
    return blob


def legacy_shape_matches(blob_proto, shape):
    """Caffe's Blob::ShapeEquals: does the saved blob fit a blob of `shape`?

    A legacy 4-D blob is compared right-aligned, the target padded with leading 1s, so legacy (1, 1, 10, 500)
    matches (10, 500); a target of more than 4 axes never matches a legacy blob. A `shape` blob must be equal.
    """
    shape = tuple(int(dim) for dim in shape)
    if not _has_legacy_shape(blob_proto):
        return shape == blob_shape(blob_proto)
    return len(shape) <= 4 and (1,) * (4 - len(shape)) + shape == blob_shape(blob_proto)


def read_binaryproto(path):
    """The array in a binary BlobProto file (a mean image from compute_image_mean, for instance)."""
    blob = read_binary(path, caffe_pb2.BlobProto)
    try:
        return blobproto_to_array(blob)
    except FileFormatError as exc:
        raise FileFormatError(f"{path}: {exc}") from None


def write_binaryproto(arr, path):
    """Save `arr` as a binary BlobProto file, atomically."""
    write_binary(array_to_blobproto(arr), path)


def _has_legacy_shape(blob):
    return any(blob.HasField(name) for name in _LEGACY_DIMS)


def _stored_values(blob, kind):
    """Caffe reads `double_<kind>` when it has values, else the float `<kind>`."""
    doubles = getattr(blob, f"double_{kind}")
    if len(doubles):
        return np.array(doubles, dtype=np.float64)
    return np.array(getattr(blob, kind), dtype=np.float32)


def _set_floats(blob, field, arr):
    # Appending element by element costs seconds per million values; merging the packed wire encoding
    # (a tag, a length, then little-endian float32s) is a single copy.
    payload = np.ascontiguousarray(arr, dtype="<f4").tobytes()
    number = blob.DESCRIPTOR.fields_by_name[field].number
    blob.MergeFromString(_varint(number << 3 | 2) + _varint(len(payload)) + payload)


def _varint(value):
    encoded = bytearray()
    while value > 0x7F:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)
