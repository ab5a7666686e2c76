"""caffelite/io/blob.py: BlobProto <-> ndarray, legacy shapes, double data, Caffe's ShapeEquals rule."""

import re

import numpy as np
import pytest

from caffelite.errors import FileFormatError, ShapeError
from caffelite.io.binary import write_binary
from caffelite.io.blob import (
    array_to_blobproto,
    blob_shape,
    blobproto_to_array,
    legacy_shape_matches,
    read_binaryproto,
    write_binaryproto,
)
from caffelite.proto import caffe_pb2


def legacy_blob(num, channels, height, width, values=None):
    count = num * channels * height * width
    data = np.arange(count, dtype=np.float32) if values is None else values
    return caffe_pb2.BlobProto(num=num, channels=channels, height=height, width=width, data=data.tolist())


def test_array_to_blobproto_writes_shape_and_float_data():
    arr = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7
    blob = array_to_blobproto(arr)
    assert list(blob.shape.dim) == [2, 3, 4]
    assert not blob.HasField("num")
    assert len(blob.data) == 24 and len(blob.diff) == 0 and len(blob.double_data) == 0
    np.testing.assert_array_equal(np.array(blob.data), arr.ravel().astype(np.float32))


def test_fast_packed_encoding_is_what_protobuf_itself_writes():
    arr = np.linspace(-1, 1, 1000, dtype=np.float32).reshape(10, 100)
    reference = caffe_pb2.BlobProto()
    reference.shape.dim.extend(arr.shape)
    reference.data.extend(arr.ravel().tolist())
    assert array_to_blobproto(arr).SerializeToString() == reference.SerializeToString()


def test_round_trip_keeps_shape_and_float32():
    arr = np.random.default_rng(0).standard_normal((3, 1, 5)).astype(np.float32)
    back = blobproto_to_array(array_to_blobproto(arr))
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, arr)


def test_diff_round_trip_and_shape_check():
    arr, diff = np.zeros((2, 2)), np.full((2, 2), 3.0)
    np.testing.assert_array_equal(blobproto_to_array(array_to_blobproto(arr, diff), return_diff=True), diff)
    with pytest.raises(ShapeError):
        array_to_blobproto(arr, np.zeros(4))


def test_legacy_fields_give_a_4d_array():
    back = blobproto_to_array(legacy_blob(2, 3, 1, 2))
    assert back.shape == (2, 3, 1, 2)
    np.testing.assert_array_equal(back.ravel(), np.arange(12))


def test_legacy_fields_win_over_shape_as_in_caffe():
    blob = legacy_blob(1, 1, 2, 3)
    blob.shape.dim.extend([6])
    assert blob_shape(blob) == (1, 1, 2, 3)


def test_double_data_gives_float64():
    blob = caffe_pb2.BlobProto(double_data=[0.1, 0.2, 0.3], data=[9.0])
    blob.shape.dim.append(3)
    back = blobproto_to_array(blob)
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back, [0.1, 0.2, 0.3])


def test_count_must_match_the_shape():
    blob = caffe_pb2.BlobProto(data=[1.0, 2.0, 3.0])
    blob.shape.dim.extend([2, 2])
    with pytest.raises(FileFormatError, match=r"shape \(2, 2\) holds 3 data values, expected 4"):
        blobproto_to_array(blob)


@pytest.mark.parametrize("target", [(10, 500), (1, 10, 500), (1, 1, 10, 500)])
def test_legacy_blob_matches_right_aligned_shapes(target):
    assert legacy_shape_matches(legacy_blob(1, 1, 10, 500), target)


@pytest.mark.parametrize("target", [(10, 501), (2, 10, 500), (500, 10), (1, 1, 1, 10, 500)])
def test_legacy_blob_rejects_other_shapes(target):
    assert not legacy_shape_matches(legacy_blob(1, 1, 10, 500), target)


def test_shape_blob_must_match_exactly():
    blob = array_to_blobproto(np.zeros((10, 500)))
    assert legacy_shape_matches(blob, (10, 500))
    assert not legacy_shape_matches(blob, (1, 10, 500))


def test_binaryproto_round_trip(tmp_path):
    mean = np.random.default_rng(1).uniform(0, 255, (3, 4, 5)).astype(np.float32)
    path = tmp_path / "mean.binaryproto"
    write_binaryproto(mean, path)
    np.testing.assert_array_equal(read_binaryproto(path), mean)


def test_legacy_mean_file_reads_as_4d(tmp_path):
    path = tmp_path / "mean.binaryproto"
    write_binary(legacy_blob(1, 3, 2, 2), path)
    assert read_binaryproto(path).shape == (1, 3, 2, 2)


def test_bad_mean_file_names_the_file(tmp_path):
    path = tmp_path / "mean.binaryproto"
    write_binary(legacy_blob(1, 3, 2, 2, values=np.zeros(5, dtype=np.float32)), path)
    with pytest.raises(FileFormatError, match=f"^{re.escape(str(path))}: blob of shape"):
        read_binaryproto(path)
