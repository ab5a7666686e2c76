"""caffelite.io.hdf5 and the Net's HDF5 weights: Caffe's /data/<layer>/<i> layout, sharing, errors, atomicity."""

import logging

import h5py
import numpy as np
import pytest
from google.protobuf import text_format

import caffelite
import caffelite.io.files as files_module
from caffelite.errors import CaffeliteError, FileFormatError, ShapeError
from caffelite.io.hdf5 import (
    is_hdf5,
    read_solverstate_hdf5,
    read_weights_hdf5,
    write_solverstate_hdf5,
    write_weights_hdf5,
)
from caffelite.proto import caffe_pb2

# ip2 shares ip1's weights (by the ParamSpec name "w") but has a bias of its own.
NET = """
name: "shared"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 4 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        param { name: "w" } inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 }
                                                  bias_filler { type: "gaussian" std: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        param { name: "w" } inner_product_param { num_output: 4 bias_filler { type: "gaussian" std: 1 } } }
"""


def make_net(seed):
    caffelite.set_random_seed(seed)
    return caffelite.Net(text_format.Parse(NET, caffe_pb2.NetParameter()), caffelite.TEST)


def params_of(net):
    return {name: [t.data.copy() for t in tensors] for name, tensors in net.params.items()}


def test_save_hdf5_writes_caffes_layout(tmp_path):
    net = make_net(1)
    path = tmp_path / "w.caffemodel.h5"
    net.save_hdf5(str(path))
    with h5py.File(path, "r") as handle:
        assert list(handle) == ["data"]
        assert sorted(handle["data"]) == ["data", "ip1", "ip2", "relu"]  # a group for every layer
        assert sorted(handle["data/ip1"]) == ["0", "1"]
        assert sorted(handle["data/ip2"]) == ["1"]  # the shared weights live with their owner only
        np.testing.assert_array_equal(handle["data/ip1/0"][()], net.params["ip1"][0].data)
        np.testing.assert_array_equal(handle["data/ip2/1"][()], net.params["ip2"][1].data)
        assert handle["data/ip1/0"].dtype == np.float32 and handle["data/ip1/0"].shape == (4, 4)


def test_save_hdf5_with_diff_writes_every_diff(tmp_path):
    net = make_net(1)
    for tensor in net.learnable_params:
        tensor.grad[...] = np.arange(tensor.count).reshape(tensor.shape)
    net.save_hdf5(str(tmp_path / "w.h5"), write_diff=True)
    with h5py.File(tmp_path / "w.h5", "r") as handle:
        assert sorted(handle["diff/ip2"]) == ["0", "1"]  # diffs regardless of sharing, as Caffe
        np.testing.assert_array_equal(handle["diff/ip2/0"][()], net.params["ip1"][0].grad)
        np.testing.assert_array_equal(handle["diff/ip1/1"][()], net.params["ip1"][1].grad)


def test_load_hdf5_and_copy_from_restore_every_param(tmp_path):
    source = make_net(1)
    source.save_hdf5(str(tmp_path / "w.caffemodel.h5"))
    for load in (lambda net: net.load_hdf5(str(tmp_path / "w.caffemodel.h5")),
                 lambda net: net.copy_from(str(tmp_path / "w.caffemodel.h5"))):
        target = make_net(2)
        load(target)
        for name, arrays in params_of(source).items():
            for tensor, array in zip(target.params[name], arrays):
                np.testing.assert_array_equal(tensor.data, array)
        assert np.shares_memory(target.params["ip2"][0].data, target.params["ip1"][0].data)  # still shared


def test_copy_from_recognizes_hdf5_by_content_not_by_name(tmp_path):
    source = make_net(1)
    source.save_hdf5(str(tmp_path / "weights.caffemodel"))  # Caffe checks H5Fis_hdf5, not the suffix
    assert is_hdf5(tmp_path / "weights.caffemodel")
    target = make_net(2)
    target.copy_from(str(tmp_path / "weights.caffemodel"))
    np.testing.assert_array_equal(target.params["ip1"][1].data, source.params["ip1"][1].data)


def test_binary_and_hdf5_weights_load_alike(tmp_path):
    source = make_net(1)
    source.save(str(tmp_path / "w.caffemodel"))
    source.save_hdf5(str(tmp_path / "w.caffemodel.h5"))
    a, b = make_net(2), make_net(3)
    a.copy_from(str(tmp_path / "w.caffemodel"))
    b.copy_from(str(tmp_path / "w.caffemodel.h5"))
    for x, y in zip(a.learnable_params, b.learnable_params):
        np.testing.assert_array_equal(x.data, y.data)


def test_unknown_source_layers_are_ignored(tmp_path, caplog):
    write_weights_hdf5(tmp_path / "w.h5", [("elsewhere", [(np.ones(3, np.float32), None)])])
    net = make_net(1)
    before = params_of(net)
    with caplog.at_level(logging.INFO, logger="caffelite"):
        net.load_hdf5(str(tmp_path / "w.h5"))
    assert "Ignoring source layer elsewhere" in caplog.text
    assert all(np.array_equal(a, b) for name in before for a, b in zip(before[name], params_of(net)[name]))


def test_a_missing_owned_blob_is_refused(tmp_path):
    write_weights_hdf5(tmp_path / "w.h5", [("ip1", [(np.ones((4, 4), np.float32), None)])])  # no bias
    with pytest.raises(ShapeError, match="has no blob 1"):
        make_net(1).load_hdf5(str(tmp_path / "w.h5"))


def test_a_shape_mismatch_is_refused(tmp_path):
    write_weights_hdf5(tmp_path / "w.h5", [("ip1", [(np.ones((4, 2, 2), np.float32), None),
                                                     (np.ones(4, np.float32), None)])])
    with pytest.raises(ShapeError, match=r"shape mismatch. Source shape is \(4, 2, 2\); target shape is \(4, 4\)"):
        make_net(1).load_hdf5(str(tmp_path / "w.h5"))


def test_too_many_source_blobs_are_refused(tmp_path):
    blobs = [(np.ones(3, np.float32), None)] * 3
    write_weights_hdf5(tmp_path / "w.h5", [("ip2", blobs)])
    with pytest.raises(ShapeError, match="layer 'ip2' has 3 blobs"):
        make_net(1).load_hdf5(str(tmp_path / "w.h5"))


def test_layer_names_with_a_slash_round_trip(tmp_path):
    # h5py makes "inception/1x1" a group inside "inception"; reading walks back down to it. The layer
    # "inception" itself has no blobs, so its group holds only the nested one and yields nothing to load.
    write_weights_hdf5(tmp_path / "w.h5", [("inception/1x1", [(np.arange(3.0), None)]), ("inception", [])])
    weights = read_weights_hdf5(tmp_path / "w.h5")
    assert list(weights) == ["inception/1x1"] and weights["inception/1x1"][0].tolist() == [0, 1, 2]


def test_a_truncated_file_is_refused_naming_it(tmp_path):
    make_net(1).save_hdf5(str(tmp_path / "w.caffemodel.h5"))
    data = (tmp_path / "w.caffemodel.h5").read_bytes()
    (tmp_path / "cut.caffemodel.h5").write_bytes(data[: len(data) - 100])
    with pytest.raises(FileFormatError, match=r"cut\.caffemodel\.h5: not a readable HDF5 file \(truncated or corrupt"):
        make_net(1).copy_from(str(tmp_path / "cut.caffemodel.h5"))


def test_a_file_without_data_group_is_refused(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["label"] = np.zeros(3)
    with pytest.raises(FileFormatError, match=r"other\.h5: an HDF5 weights file needs a /data group"):
        make_net(1).load_hdf5(str(tmp_path / "other.h5"))


def test_a_missing_file_is_named():
    with pytest.raises(CaffeliteError, match="nowhere.h5: no such file"):
        read_weights_hdf5("nowhere.h5")


def test_solverstate_round_trip_in_caffes_types(tmp_path):
    history = [np.arange(6, dtype=np.float32).reshape(2, 3), np.full(4, 0.5, np.float32)]
    path = tmp_path / "s_iter_7.solverstate.h5"
    write_solverstate_hdf5(path, 7, "snap/s_iter_7.caffemodel.h5", 2, history)
    with h5py.File(path, "r") as handle:
        for name, value in (("iter", 7), ("current_step", 2)):
            assert handle[name].dtype == np.int32 and handle[name].shape == (1,) and handle[name][0] == value
        string = handle["learned_net"]
        assert string.shape == () and string.id.get_type().get_strpad() == h5py.h5t.STR_NULLTERM
        assert string.id.get_type().get_size() == len("snap/s_iter_7.caffemodel.h5") + 1  # with its NUL
        assert sorted(handle["history"]) == ["0", "1"]
    state = read_solverstate_hdf5(path)
    assert (state.iter, state.learned_net, state.current_step) == (7, "snap/s_iter_7.caffemodel.h5", 2)
    for read, written in zip(state.history, history):
        assert read.dtype == np.float32 and read.tobytes() == written.tobytes()


def test_solverstate_written_by_other_tools_reads(tmp_path):
    # h5py's defaults: a variable-length string and scalar ints; history out of alphabetical order (10 > 2).
    with h5py.File(tmp_path / "s.h5", "w") as handle:
        handle["iter"] = 3
        handle["current_step"] = 0
        handle["learned_net"] = "w.caffemodel.h5"
        for index in range(11):
            handle[f"history/{index}"] = np.full(2, index, np.float64)
    state = read_solverstate_hdf5(tmp_path / "s.h5")
    assert (state.iter, state.learned_net) == (3, "w.caffemodel.h5")
    assert [int(h[0]) for h in state.history] == list(range(11))


def test_a_solverstate_with_a_gap_in_its_history_is_refused(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w") as handle:
        handle["iter"] = [3]
        handle["current_step"] = [0]
        handle["history/0"] = np.zeros(2)
        handle["history/2"] = np.zeros(2)
    with pytest.raises(FileFormatError, match="s.h5: /history holds 2 entries but no dataset named '1'"):
        read_solverstate_hdf5(tmp_path / "s.h5")


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "w.caffemodel.h5"
    make_net(1).save_hdf5(str(path))
    before = path.read_bytes()

    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files_module.os, "fsync", failing_fsync)
    with pytest.raises(CaffeliteError, match="w.caffemodel.h5: cannot write"):
        make_net(2).save_hdf5(str(path))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.caffemodel.h5"]


def test_is_hdf5():
    assert not is_hdf5("no/such/file")
    assert not is_hdf5(__file__)
