"""caffelite.data.features: a trained net's blobs saved item by item as float Datums, as extract_features does."""

import struct

import lmdb
import numpy as np
import plyvel
import pytest

from caffelite.data import db
from caffelite.data.datum import array_to_datum
from caffelite.data.features import extract_features, feature_datums
from caffelite.errors import CaffeliteError, ShapeError
from caffelite.net import Net
from caffelite.phase import TEST
from caffelite.proto import caffe_pb2

ITEM_SHAPE = (2, 3, 4)


def model_text(source, backend="LMDB", batch_size=2):
    return f"""
        name: "features"
        layer {{ name: "data" type: "Data" top: "data" top: "label"
                data_param {{ source: "{source}" backend: {backend} batch_size: {batch_size} }} }}
        layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
                inner_product_param {{ num_output: 3 weight_filler {{ type: "gaussian" }} }} }}
    """


@pytest.fixture
def trained(tmp_path):
    """5 uint8 items in an LMDB, a Data + InnerProduct model reading them, and weights with known values."""
    items = np.random.default_rng(0).integers(0, 256, size=(5,) + ITEM_SHAPE, dtype=np.uint8)
    with db.open_writer(tmp_path / "items_lmdb") as writer:
        for i, item in enumerate(items):
            writer.put(b"%08d" % i, array_to_datum(item, label=i).SerializeToString())
    model = tmp_path / "features.prototxt"
    model.write_text(model_text(tmp_path / "items_lmdb"))
    net = Net(str(model), TEST)
    rng = np.random.default_rng(1)
    weight, bias = net.params["ip"]
    weight.data[...] = rng.standard_normal(weight.data.shape).astype(np.float32) / 100
    bias.data[...] = rng.standard_normal(bias.data.shape).astype(np.float32)
    expected_ip = items.reshape(5, -1).astype(np.float32) @ weight.data.T + bias.data
    net.save(str(tmp_path / "trained.caffemodel"))
    net.layers[0].close()
    return tmp_path / "trained.caffemodel", model, items, expected_ip


def read_lmdb(path):
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        records = list(txn.cursor())
    env.close()
    return records


def test_each_item_of_each_blob_becomes_a_float_datum_under_its_running_index(trained, tmp_path):
    weights, model, items, expected_ip = trained
    calls = []
    result = extract_features(weights, model, ["ip", "data"], [tmp_path / "ip_lmdb", tmp_path / "data_lmdb"], 3,
                              progress=lambda *a: calls.append(a))
    assert result.counts == {"ip": 6, "data": 6}  # 3 batches of 2 from 5 records: the sixth is record 0 again
    assert result.db_paths == {"ip": tmp_path / "ip_lmdb", "data": tmp_path / "data_lmdb"}
    assert calls == [("ip", 6), ("data", 6)]
    order = [0, 1, 2, 3, 4, 0]
    ip_records = read_lmdb(tmp_path / "ip_lmdb")
    assert [key for key, _ in ip_records] == [b"%010d" % i for i in range(6)]
    for (_, value), index in zip(ip_records, order):
        datum = caffe_pb2.Datum.FromString(value)
        assert (datum.channels, datum.height, datum.width) == (3, 1, 1)
        assert not datum.HasField("label") and not datum.HasField("data") and not datum.HasField("encoded")
        np.testing.assert_allclose(datum.float_data, expected_ip[index], rtol=1e-5, atol=1e-4)
    data_records = read_lmdb(tmp_path / "data_lmdb")
    assert [key for key, _ in data_records] == [b"%010d" % i for i in range(6)]
    for (_, value), index in zip(data_records, order):
        datum = caffe_pb2.Datum.FromString(value)
        assert (datum.channels, datum.height, datum.width) == ITEM_SHAPE
        np.testing.assert_array_equal(datum.float_data, items[index].ravel())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging directory left


def test_leveldb_databases_hold_the_same_records(trained, tmp_path):
    weights, model, _, _ = trained
    extract_features(weights, model, ["ip"], [tmp_path / "ip_lmdb"], 2)
    extract_features(weights, model, ["ip"], [tmp_path / "ip_leveldb"], 2, backend="leveldb")
    handle = plyvel.DB(str(tmp_path / "ip_leveldb"))
    try:
        assert list(handle.iterator()) == read_lmdb(tmp_path / "ip_lmdb")
    finally:
        handle.close()


def test_a_feature_datum_is_byte_for_byte_what_caffe_writes():
    [value] = feature_datums(np.array([[1.0, -2.0]], np.float32))
    expected = (
        bytes([0x08, 2])  # channels 2 (the feature dim of a 2-D blob)
        + bytes([0x10, 1])  # height 1
        + bytes([0x18, 1])  # width 1
        + bytes([0x35]) + struct.pack("<f", 1.0)  # float_data (field 6, fixed32), one tag per value: not packed
        + bytes([0x35]) + struct.pack("<f", -2.0)
    )
    assert value == expected
    features = np.random.default_rng(2).standard_normal((3, 4, 2, 5)).astype(np.float32)
    for n, value in enumerate(feature_datums(features)):
        datum = caffe_pb2.Datum(channels=4, height=2, width=5)
        datum.float_data.extend(features[n].ravel().tolist())
        assert value == datum.SerializeToString()


def test_blobs_of_fewer_axes_fill_in_ones_and_more_than_four_are_refused():
    one_axis = caffe_pb2.Datum.FromString(feature_datums(np.array([7.0, 8.0]))[1])
    assert (one_axis.channels, one_axis.height, one_axis.width, list(one_axis.float_data)) == (1, 1, 1, [8.0])
    three_axes = caffe_pb2.Datum.FromString(feature_datums(np.zeros((2, 3, 4)))[0])
    assert (three_axes.channels, three_axes.height, three_axes.width) == (3, 4, 1)
    with pytest.raises(ShapeError, match="more than 4 axes"):
        feature_datums(np.zeros((1, 2, 3, 4, 5)))


def test_progress_is_reported_at_each_commit_and_at_the_end(trained, tmp_path, monkeypatch):
    weights, model, _, _ = trained
    monkeypatch.setattr(db, "COMMIT_EVERY", 4)
    calls = []
    extract_features(weights, model, ["ip"], [tmp_path / "ip_lmdb"], 5, progress=lambda *a: calls.append(a))
    assert calls == [("ip", 4), ("ip", 8), ("ip", 10)]
    assert len(read_lmdb(tmp_path / "ip_lmdb")) == 10


def test_bad_arguments_are_refused_before_anything_is_written(trained, tmp_path):
    weights, model, _, _ = trained
    with pytest.raises(CaffeliteError, match=r"number of blob names \(2\) and dataset names \(1\) must be equal"):
        extract_features(weights, model, ["ip", "data"], [tmp_path / "a_lmdb"], 1)
    with pytest.raises(CaffeliteError, match="unknown feature blob name 'fc7' in the network .*blobs: data, label, ip"):
        extract_features(weights, model, ["fc7"], [tmp_path / "a_lmdb"], 1)
    with pytest.raises(CaffeliteError, match="at least 1, got 0"):
        extract_features(weights, model, ["ip"], [tmp_path / "a_lmdb"], 0)
    with pytest.raises(CaffeliteError, match="a dataset name is repeated"):
        extract_features(weights, model, ["ip", "data"], [tmp_path / "a_lmdb", tmp_path / "a_lmdb"], 1)
    (tmp_path / "taken_lmdb").mkdir()
    with pytest.raises(CaffeliteError, match="already exists; refusing to overwrite"):
        extract_features(weights, model, ["ip", "data"], [tmp_path / "b_lmdb", tmp_path / "taken_lmdb"], 1)
    assert not (tmp_path / "a_lmdb").exists() and not (tmp_path / "b_lmdb").exists()
    assert list((tmp_path / "taken_lmdb").iterdir()) == []
