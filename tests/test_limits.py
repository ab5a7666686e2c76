"""Hostile shapes are refused before anything is allocated, naming the layer or file; loading never runs code."""

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from google.protobuf import text_format

import caffelite.limits as limits
from caffelite.errors import FileFormatError, ShapeError
from caffelite.io.hdf5 import read_weights_hdf5
from caffelite.net import Net
from caffelite.phase import TEST
from caffelite.proto import caffe_pb2

IMAGE = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } } '

HOSTILE = [
    ("in", 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 100000 dim: 100000 dim: 1000 } } }'),
    ("d", 'layer { name: "d" type: "DummyData" top: "x" dummy_data_param { shape { dim: 4000000000 dim: 1 } } }'),
    ("ip", IMAGE + 'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y" '
                   'inner_product_param { num_output: 2000000000 } }'),
    ("c", IMAGE + 'layer { name: "c" type: "Convolution" bottom: "x" top: "y" '
                  'convolution_param { num_output: 2 kernel_size: 1000000000 } }'),
    ("c", IMAGE + 'layer { name: "c" type: "Convolution" bottom: "x" top: "y" '
                  'convolution_param { num_output: 2000000000 kernel_size: 3 } }'),
    ("c", IMAGE + 'layer { name: "c" type: "Convolution" bottom: "x" top: "y" '
                  'convolution_param { num_output: 2 kernel_size: 3 pad: 1000000 } }'),
    ("c", IMAGE + 'layer { name: "c" type: "Deconvolution" bottom: "x" top: "y" '
                  'convolution_param { num_output: 2 kernel_size: 3 stride: 1000000 } }'),
    ("p", IMAGE + 'layer { name: "p" type: "Pooling" bottom: "x" top: "y" '
                  'pooling_param { kernel_size: 300000 stride: 1 pad: 100000 } }'),
    ("t", IMAGE + 'layer { name: "t" type: "Tile" bottom: "x" top: "y" tile_param { tiles: 2000000000 } }'),
    ("e", 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 4 } } } '
          'layer { name: "e" type: "Embed" bottom: "x" top: "y" '
          'embed_param { num_output: 100000 input_dim: 1000000 } }'),
]


@pytest.mark.parametrize("layer, text", HOSTILE, ids=[f"{i}-{name}" for i, (name, _) in enumerate(HOSTILE)])
def test_absurd_shapes_are_refused_naming_the_layer(layer, text):
    with pytest.raises(ShapeError) as error:
        Net(text_format.Parse(text, caffe_pb2.NetParameter()), TEST)
    assert f"<NetParameter>: layer '{layer}'" in str(error.value)


def test_the_count_limit_is_caffes_int_max():
    limits.check_size((2**31 - 1,), 0)
    with pytest.raises(ShapeError, match=r"would hold 2147483648 values, more than a blob may \(2147483647"):
        limits.check_size((2**16, 2**15), 0, "a blob")


def test_the_memory_limit_is_the_machines(monkeypatch):
    monkeypatch.setattr(limits, "_MEMORY", 1000)
    limits.check_size((250,), 4)
    with pytest.raises(ShapeError, match=r"would need 0.0 GiB, more than this machine's"):
        limits.check_size((251,), 4)


def sparse_hdf5(path, name, shape):
    """A file of a few kB whose dataset claims `shape` (chunks never written read as zeros)."""
    with h5py.File(path, "w") as handle:
        handle.create_dataset(name, shape=shape, dtype="f4", chunks=(1, 1))


def test_an_hdf5_weights_file_claiming_a_huge_dataset_is_refused(tmp_path):
    path = tmp_path / "w.caffemodel.h5"
    sparse_hdf5(path, "data/ip/0", (10**6, 10**6))
    assert path.stat().st_size < 100_000
    with pytest.raises(FileFormatError, match=rf"{re.escape(str(path))}: dataset /data/ip/0 of shape"):
        read_weights_hdf5(str(path))


def test_an_hdf5_data_file_claiming_a_huge_dataset_is_refused(tmp_path):
    sparse_hdf5(tmp_path / "d.h5", "data", (10**6, 10**6))
    with h5py.File(tmp_path / "d.h5", "a") as handle:
        handle.create_dataset("label", data=np.zeros(10**6, "f4"))
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'd.h5'}\n")
    text = (f'layer {{ name: "h" type: "HDF5Data" top: "data" top: "label" '
            f'hdf5_data_param {{ source: "{tmp_path / "list.txt"}" batch_size: 2 }} }}')
    with pytest.raises(FileFormatError, match=r"layer 'h' \(HDF5Data\).*d\.h5': dataset 'data' of shape"):
        Net(text_format.Parse(text, caffe_pb2.NetParameter()), TEST)


def test_the_library_never_unpickles_or_evaluates():
    """Model files are protobuf, HDF5 and LMDB records only: no pickle, no np.load of objects, no eval."""
    root = Path(__file__).resolve().parents[1]
    sources = list((root / "caffelite").rglob("*.py")) + list((root / "tools").rglob("*.py"))
    offending = []
    for path in sources:
        if path.name.endswith("_pb2.py"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if re.search(r"\bimport pickle\b|\bpickle\.|\bmarshal\.|\beval\(|\bexec\(", code) or (
                    "np.load(" in code and "allow_pickle=False" not in code):
                offending.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert offending == []
