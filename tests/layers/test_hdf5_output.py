"""HDF5Output: bottoms appended to the datasets "data" and "label" (Caffe's names, 4-D blobs) at every forward."""

import h5py
import numpy as np
import pytest
from google.protobuf import text_format
from layer_harness import make_layer, run_forward

from caffelite.errors import CaffeliteError, NetError, ShapeError
from caffelite.function import LAYERS
from caffelite.proto import caffe_pb2
from caffelite.tensor import Tensor


def build(text, bottoms, dtype=np.float64):
    """Like layer_harness.make_layer, for a layer with no tops (the harness always makes one)."""
    param = text_format.Parse(text, caffe_pb2.LayerParameter())
    bottom = [Tensor.from_array(np.asarray(b, dtype=dtype), dtype=dtype) for b in bottoms]
    layer = LAYERS.get(param.type)(param, dtype=dtype)
    layer.check_blob_counts(len(bottom), 0)
    layer.setup(bottom, [])
    layer.reshape(bottom, [])
    return layer, bottom, []


def output_layer(path, data, label, dtype=np.float64):
    text = f'name: "out" type: "HDF5Output" bottom: "data" bottom: "label" hdf5_output_param {{ file_name: "{path}" }}'
    return build(text, [data, label], dtype=dtype)


def test_setup_truncates_and_forwards_append(tmp_path):
    path = tmp_path / "out.h5"
    with h5py.File(path, "w") as handle:
        handle["old"] = np.zeros(3)
    rng = np.random.default_rng(0)
    data, label = rng.standard_normal((2, 3, 4, 5)), np.array([1.0, 2.0])
    layer, bottom, top = output_layer(path, data, label)
    assert top == []
    with h5py.File(path, "r") as handle:
        assert list(handle) == []
    run_forward(layer, bottom, top)
    more = rng.standard_normal((2, 3, 4, 5))
    bottom[0].data[...] = more
    bottom[1].data[...] = [3.0, 4.0]
    run_forward(layer, bottom, top)
    with h5py.File(path, "r") as handle:
        assert sorted(handle) == ["data", "label"]
        np.testing.assert_array_equal(handle["data"][...], np.concatenate([data, more]))
        assert handle["label"].shape == (4, 1, 1, 1)  # Caffe writes num x channels x height x width
        np.testing.assert_array_equal(handle["label"][...].ravel(), [1, 2, 3, 4])
        assert handle["data"].dtype == np.float64


def test_float32_and_2d_bottoms_are_stored_4d(tmp_path):
    path = tmp_path / "out.h5"
    data = np.arange(6, dtype=np.float32).reshape(3, 2)
    layer, bottom, top = output_layer(path, data, np.zeros(3), dtype=np.float32)
    run_forward(layer, bottom, top)
    with h5py.File(path, "r") as handle:
        assert handle["data"].dtype == np.float32 and handle["data"].shape == (3, 2, 1, 1)
        np.testing.assert_array_equal(handle["data"][...].reshape(3, 2), data)


def test_errors(tmp_path):
    with pytest.raises(ShapeError, match=r"layer 'out' \(HDF5Output\): data and label need the same batch size"):
        output_layer(tmp_path / "out.h5", np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(ShapeError, match="at most 4 fit"):
        output_layer(tmp_path / "out.h5", np.zeros((2, 1, 1, 1, 1)), np.zeros(2))
    with pytest.raises(CaffeliteError, match="its directory does not exist"):
        output_layer(tmp_path / "no" / "out.h5", np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(NetError, match="expects 0 tops, got 1"):
        make_layer('name: "out" type: "HDF5Output" bottom: "a" bottom: "b" top: "c" '
                   f'hdf5_output_param {{ file_name: "{tmp_path / "x.h5"}" }}', [np.zeros(2), np.zeros(2)])
    with pytest.raises(NetError, match="file_name is required"):
        build('name: "out" type: "HDF5Output" bottom: "a" bottom: "b"', [np.zeros(2), np.zeros(2)])
    layer, bottom, top = output_layer(tmp_path / "out.h5", np.zeros((2, 3)), np.zeros(2))
    run_forward(layer, bottom, top)
    bottom[0].reshape(2, 4)
    with pytest.raises(ShapeError, match=r"dataset 'data' holds rows of shape \(3, 1, 1\), this forward's have "
                                         r"shape \(4, 1, 1\)"):
        run_forward(layer, bottom, top)
