"""caffelite/io/binary.py: binary protobuf files, corrupt input, atomic writes, text-or-binary nets."""

import os
import re
import stat

import numpy as np
import pytest

from caffelite.errors import CaffeliteError, FileFormatError
from caffelite.io import files
from caffelite.io.binary import read_binary, read_caffemodel, read_net, read_solverstate, write_binary
from caffelite.io.blob import array_to_blobproto, blobproto_to_array
from caffelite.io.prototxt import write_text
from caffelite.proto import caffe_pb2


def small_net():
    net = caffe_pb2.NetParameter(name="tiny")
    layer = net.layer.add(name="ip", type="InnerProduct", bottom=["data"], top=["ip"])
    layer.blobs.append(array_to_blobproto(np.arange(6, dtype=np.float32).reshape(2, 3)))
    layer.blobs.append(array_to_blobproto(np.array([0.5, -0.5], dtype=np.float32)))
    return net


def test_round_trip(tmp_path):
    path = tmp_path / "tiny.caffemodel"
    write_binary(small_net(), path)
    net = read_binary(path, caffe_pb2.NetParameter)
    assert net == small_net()
    np.testing.assert_array_equal(blobproto_to_array(net.layer[0].blobs[0]), np.arange(6).reshape(2, 3))


def test_truncated_file_names_the_file_and_the_message_type(tmp_path):
    path = tmp_path / "cut.caffemodel"
    data = small_net().SerializeToString()
    path.write_bytes(data[: len(data) - 5])
    with pytest.raises(FileFormatError) as info:
        read_caffemodel(path)
    assert str(info.value) == f"{path}: not a binary NetParameter (truncated or corrupt)"


def test_a_file_of_another_kind_is_refused(tmp_path):
    path = tmp_path / "notes.solverstate"
    path.write_text("iter: 5\n")
    with pytest.raises(FileFormatError, match=f"^{re.escape(str(path))}: not a binary SolverState"):
        read_solverstate(path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(CaffeliteError, match=f"^{re.escape(str(tmp_path / 'gone.caffemodel'))}: no such file$"):
        read_caffemodel(tmp_path / "gone.caffemodel")


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "model.caffemodel"
    write_binary(small_net(), path)
    before = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(CaffeliteError, match="No space left on device"):
        write_binary(caffe_pb2.NetParameter(name="replacement"), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.caffemodel"]


def test_new_file_gets_the_usual_permissions(tmp_path):
    path = tmp_path / "model.caffemodel"
    write_binary(small_net(), path)
    assert stat.S_IMODE(path.stat().st_mode) == files._NEW_FILE_MODE


def test_writing_into_a_missing_directory_names_the_path(tmp_path):
    path = tmp_path / "no" / "such" / "dir.caffemodel"
    with pytest.raises(CaffeliteError, match=f"^{re.escape(str(path))}: cannot write"):
        write_binary(small_net(), path)


def test_solverstate_round_trip(tmp_path):
    state = caffe_pb2.SolverState(iter=7, learned_net="x_iter_7.caffemodel", current_step=1)
    state.history.append(array_to_blobproto(np.ones((2, 2))))
    path = tmp_path / "x_iter_7.solverstate"
    write_binary(state, path)
    assert read_solverstate(path) == state


@pytest.mark.parametrize("name", ["weights.caffemodel", "weights.bin", "weights"])
def test_read_net_reads_binary_weights_whatever_the_name(tmp_path, name):
    path = tmp_path / name
    write_binary(small_net(), path)
    assert read_net(path) == small_net()


def test_read_net_reads_text(tmp_path):
    path = tmp_path / "deploy.prototxt"
    net = caffe_pb2.NetParameter(name="text")
    net.layer.add(name="relu", type="ReLU", bottom=["x"], top=["x"])
    write_text(net, path)
    assert read_net(path) == net
