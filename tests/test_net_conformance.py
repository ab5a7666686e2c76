"""Real Caffe files through the Net: a V1 (old format) CIFAR-10 model and its weights load via the upgrade path."""

import numpy as np
from google.protobuf import text_format

import caffelite
from caffelite.io.binary import read_binary
from caffelite.io.prototxt import read_net_text
from caffelite.proto import caffe_pb2
from shared_data import shared_path


def test_v1_cifar10_quick_loads_through_the_upgrade_path():
    folder = shared_path("conformance", "pretrained", "cifar10_quick_v1")
    upgraded = read_net_text(folder / "prediction_example.prototxt")
    assert not upgraded.layers
    assert [layer.type for layer in upgraded.layer][:3] == ["ImageData", "Convolution", "Pooling"]
    # Its image list and mean file are not shipped, so an Input layer feeds the body of the net; the loss and
    # accuracy (no labels) and ArgMax (a later layer) are left out.
    deploy = caffe_pb2.NetParameter(name=upgraded.name)
    deploy.layer.add().CopyFrom(text_format.Parse(
        'name: "data" type: "Input" top: "data" input_param { shape { dim: 3 dim: 3 dim: 32 dim: 32 } }',
        caffe_pb2.LayerParameter()))
    left_out = ("ImageData", "SoftmaxWithLoss", "Accuracy", "ArgMax")
    deploy.layer.extend(layer for layer in upgraded.layer if layer.type not in left_out)
    weights = folder / "cifar10_quick_iter_5000.caffemodel"
    net = caffelite.Net(deploy, caffelite.TEST, weights=str(weights))

    v1 = read_binary(weights, caffe_pb2.NetParameter)  # raw, not upgraded: V1 `layers` with 4-D legacy blobs
    assert v1.layers and not v1.layer
    for old in v1.layers:
        if old.blobs:
            for tensor, blob in zip(net.params[old.name], old.blobs):
                assert blob.num and tensor.count == len(blob.data)
                np.testing.assert_array_equal(tensor.data.ravel(), np.asarray(blob.data, np.float32))
    assert [p.shape for p in net.params["conv1"]] == [(32, 3, 5, 5), (32,)]
    prob = net.forward(data=np.random.default_rng(0).normal(0, 50, (3, 3, 32, 32)))["prob"]
    assert prob.shape == (3, 10)
    np.testing.assert_allclose(prob.sum(axis=1), 1, rtol=1e-5)
