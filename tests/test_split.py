"""Step 2 of Net construction: Split layers wherever one top feeds several consumers, under Caffe's names."""

import pytest
from google.protobuf import text_format

from caffelite.errors import NetError
from caffelite.net import Net
from caffelite.phase import TEST
from caffelite.proto import caffe_pb2
from caffelite.split import insert_splits


def net_param(text):
    return text_format.Parse(text, caffe_pb2.NetParameter())


INPUT = """
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
"""
TWO_READERS = INPUT + """
layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "ip2" inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip2" bottom: "label" top: "acc" }
"""


def test_splits_use_caffes_names():
    param = insert_splits(net_param(TWO_READERS))
    names = [layer.name for layer in param.layer]
    # ip2 is read by loss and acc; label by loss and acc (the Input layer's second top).
    assert "ip2_ip2_0_split" in names and "label_data_1_split" in names
    split = param.layer[names.index("ip2_ip2_0_split")]
    assert split.type == "Split" and list(split.bottom) == ["ip2"]
    assert list(split.top) == ["ip2_ip2_0_split_0", "ip2_ip2_0_split_1"]
    loss = param.layer[names.index("loss")]
    acc = param.layer[names.index("acc")]
    assert list(loss.bottom) == ["ip2_ip2_0_split_0", "label_data_1_split_0"]
    assert list(acc.bottom) == ["ip2_ip2_0_split_1", "label_data_1_split_1"]


def test_a_weighted_top_that_is_also_read_gets_a_split_carrying_its_loss_weight():
    param = insert_splits(
        net_param(
            INPUT
            + """
        layer { name: "e" type: "EuclideanLoss" bottom: "data" bottom: "data" top: "e" loss_weight: 3 }
        layer { name: "r" type: "ReLU" bottom: "e" top: "r" }"""
        )
    )
    split = next(layer for layer in param.layer if layer.name == "e_e_0_split")
    assert list(split.loss_weight) == [3, 0]
    assert not next(layer for layer in param.layer if layer.name == "e").loss_weight
    assert list(next(layer for layer in param.layer if layer.name == "r").bottom) == ["e_e_0_split_1"]


def test_without_shared_consumers_no_split_is_inserted():
    param = insert_splits(net_param(INPUT + 'layer { name: "r" type: "ReLU" bottom: "data" top: "data" }'))
    assert [layer.type for layer in param.layer] == ["Input", "ReLU"]


def test_an_unknown_bottom_is_named_with_its_layer():
    with pytest.raises(NetError, match=r"layer 'r' \(ReLU\): unknown bottom blob 'x' \(bottom index 0\)"):
        insert_splits(net_param('layer { name: "r" type: "ReLU" bottom: "x" top: "y" }'), "net.prototxt")


def test_no_consumer_of_a_split_blob_runs_in_place():
    # Split tops share their bottom's array (Caffe's ShareData); that is safe only because a layer declared in
    # place on a blob with several readers keeps its top name while its bottom is renamed: refused, as in Caffe.
    text = INPUT + """
    layer { name: "ip2" type: "InnerProduct" bottom: "data" top: "ip2" inner_product_param { num_output: 3 } }
    layer { name: "r" type: "ReLU" bottom: "data" top: "data" }
    """
    param = insert_splits(net_param(text))
    relu = next(layer for layer in param.layer if layer.name == "r")
    assert list(relu.bottom) == ["data_data_0_split_1"] and list(relu.top) == ["data"]
    with pytest.raises(NetError, match=r"layer 'r' \(ReLU\): top blob 'data' produced by multiple sources"):
        Net(net_param(text), TEST)
