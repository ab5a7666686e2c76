"""caffelite/io/upgrade.py and upgrade_v0.py: Caffe's V0, V1, data-transform, input, BatchNorm and solver upgrades."""

import logging

import numpy as np
import pytest
from shared_data import shared_path

from caffelite.errors import ParseError
from caffelite.io.binary import read_caffemodel
from caffelite.io.blob import array_to_blobproto, blob_shape, legacy_shape_matches
from caffelite.io.prototxt import parse_text, read_net_text
from caffelite.io.upgrade import upgrade_net, upgrade_snapshot_prefix, upgrade_solver
from caffelite.proto import caffe_pb2

V1_NET = """
name: "v1"
layers {
  name: "mnist"  type: DATA  top: "data"  top: "label"
  data_param { source: "train_lmdb" batch_size: 64 scale: 0.00390625 mirror: true crop_size: 24 }
  include { phase: TRAIN }
}
layers {
  name: "conv1"  type: CONVOLUTION  bottom: "data"  top: "conv1"
  blobs_lr: 1  blobs_lr: 2  weight_decay: 1  weight_decay: 0
  param: "conv1_w"  param: "conv1_b"  blob_share_mode: PERMISSIVE
  convolution_param { num_output: 20 kernel_size: 5 }
}
layers { name: "loss"  type: SOFTMAX_LOSS  bottom: "conv1"  bottom: "label"  top: "loss"  loss_weight: 2 }
"""

V2_EXPECTED = """
name: "v1"
layer {
  name: "mnist"  type: "Data"  top: "data"  top: "label"
  include { phase: TRAIN }
  transform_param { scale: 0.00390625 mirror: true crop_size: 24 }
  data_param { source: "train_lmdb" batch_size: 64 }
}
layer {
  name: "conv1"  type: "Convolution"  bottom: "data"  top: "conv1"
  param { name: "conv1_w" share_mode: PERMISSIVE lr_mult: 1 decay_mult: 1 }
  param { name: "conv1_b" lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 20 kernel_size: 5 }
}
layer { name: "loss"  type: "SoftmaxWithLoss"  bottom: "conv1"  bottom: "label"  top: "loss"  loss_weight: 2 }
"""

V0_NET = """
name: "v0"
input: "data"
input_dim: 10 input_dim: 3 input_dim: 227 input_dim: 227
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers {
  layer { name: "conv1" type: "conv" num_output: 96 kernelsize: 11 stride: 4 biasterm: false
          weight_filler { type: "gaussian" std: 0.01 } blobs_lr: 1 weight_decay: 1 }
  bottom: "pad1" top: "conv1"
}
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 3 stride: 2 } bottom: "conv1" top: "pool1" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.3 } bottom: "pool1" top: "pool1" }
"""

V0_EXPECTED = """
name: "v0"
layer {
  name: "input" type: "Input" top: "data"
  input_param { shape { dim: 10 dim: 3 dim: 227 dim: 227 } }
}
layer {
  name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 decay_mult: 1 }
  convolution_param { num_output: 96 bias_term: false pad: 2 kernel_size: 11 stride: 4
                      weight_filler { type: "gaussian" std: 0.01 } }
}
layer {
  name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 }
}
layer { name: "drop" type: "Dropout" bottom: "pool1" top: "pool1" dropout_param { dropout_ratio: 0.3 } }
"""


def net(text):
    return parse_text(text, caffe_pb2.NetParameter())


def test_v1_net_becomes_the_expected_v2_net(caplog):
    with caplog.at_level(logging.WARNING, logger="caffelite"):
        upgraded = upgrade_net(net(V1_NET), source="v1.prototxt")
    assert upgraded == net(V2_EXPECTED)
    assert "v1.prototxt: upgraded data transformation fields" in caplog.text
    assert "v1.prototxt: upgraded V1 'layers'" in caplog.text


def test_v0_net_folds_padding_and_becomes_v2(caplog):
    with caplog.at_level(logging.WARNING, logger="caffelite"):
        upgraded = upgrade_net(net(V0_NET), source="v0.prototxt")
    assert upgraded == net(V0_EXPECTED)
    assert "v0.prototxt: upgraded V0 layer definitions" in caplog.text


def test_padding_may_only_feed_conv_or_pool():
    v0 = net('input: "data" '
             'layers { layer { name: "pad" type: "padding" pad: 1 } bottom: "data" top: "padded" } '
             'layers { layer { name: "relu" type: "relu" } bottom: "padded" top: "out" }')
    with pytest.raises(ParseError, match="^v0.prototxt: V0 layer 'relu' is of type 'relu'; only conv and pool"):
        upgrade_net(v0, source="v0.prototxt")


def test_unknown_v0_type_names_the_source():
    with pytest.raises(ParseError, match="^old.prototxt: V0 layer 'x': unknown layer type 'warp'"):
        upgrade_net(net('layers { layer { name: "x" type: "warp" } }'), source="old.prototxt")


def test_v0_field_foreign_to_the_type_is_dropped_with_an_error(caplog):
    upgraded = upgrade_net(net('layers { layer { name: "r" type: "relu" num_output: 3 } }'), source="old")
    assert upgraded.layer[0].type == "ReLU"
    assert "old: V0 layer 'r': field num_output does not apply to type 'relu'" in caplog.text


def test_layer_and_layers_together_are_refused():
    mixed = net('layer { name: "a" type: "ReLU" } layers { name: "b" type: RELU }')
    with pytest.raises(ParseError, match="^mixed.prototxt: mixes 'layer'"):
        upgrade_net(mixed, source="mixed.prototxt")


def test_input_shape_becomes_a_leading_input_layer():
    upgraded = upgrade_net(net('input: "a" input_shape { dim: 1 dim: 2 } input: "b" input_shape { dim: 3 }'
                               'layer { name: "r" type: "ReLU" bottom: "a" top: "a" }'))
    assert [layer.type for layer in upgraded.layer] == ["Input", "ReLU"]
    assert list(upgraded.layer[0].top) == ["a", "b"]
    assert [list(shape.dim) for shape in upgraded.layer[0].input_param.shape] == [[1, 2], [3]]
    assert not upgraded.input and not upgraded.input_shape


def test_bare_input_names_are_dropped():
    upgraded = upgrade_net(net('input: "data" layer { name: "r" type: "ReLU" }'))
    assert [layer.name for layer in upgraded.layer] == ["r"]
    assert not upgraded.input


def test_input_dim_count_must_be_four_per_input():
    with pytest.raises(ParseError, match="^deploy: 1 input\\(s\\) need 4 input_dim values, got 3"):
        upgrade_net(net('input: "data" input_dim: 1 input_dim: 3 input_dim: 32'), source="deploy")


def test_batchnorm_with_three_param_specs_gets_zero_multipliers():
    upgraded = upgrade_net(net('layer { name: "bn" type: "BatchNorm" param { lr_mult: 1 } param { lr_mult: 1 } '
                               'param { lr_mult: 1 decay_mult: 5 name: "s" } }'
                               'layer { name: "bn2" type: "BatchNorm" param { lr_mult: 1 } }'))
    assert [(p.lr_mult, p.decay_mult) for p in upgraded.layer[0].param] == [(0, 0)] * 3
    assert upgraded.layer[0].param[2].name == "s"
    assert upgraded.layer[1].param[0].lr_mult == 1  # only the three-spec form is the old definition


def test_current_net_is_left_alone(caplog):
    current = net(V2_EXPECTED)
    assert upgrade_net(net(V2_EXPECTED)) == current
    assert caplog.text == ""


def test_v1_caffemodel_keeps_its_blobs(tmp_path):
    v1 = net(V1_NET)
    weights = np.arange(20 * 5 * 5, dtype=np.float32).reshape(20, 1, 5, 5)
    v1.layers[1].blobs.append(array_to_blobproto(weights))
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(v1.SerializeToString())
    conv = read_caffemodel(path).layer[1]
    assert conv.type == "Convolution"
    assert blob_shape(conv.blobs[0]) == (20, 1, 5, 5)
    np.testing.assert_array_equal(np.array(conv.blobs[0].data), weights.ravel())


@pytest.mark.parametrize("legacy, name", [("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAM", "Adam")])
def test_solver_type_becomes_type(legacy, name):
    solver = parse_text(f"solver_type: {legacy}", caffe_pb2.SolverParameter())
    upgrade_solver(solver, "solver.prototxt")
    assert solver.type == name
    assert not solver.HasField("solver_type")


def test_contradicting_solver_types_are_refused():
    solver = parse_text('solver_type: ADAGRAD type: "Adam"', caffe_pb2.SolverParameter())
    with pytest.raises(ParseError, match="^s.prototxt: solver_type: ADAGRAD contradicts type: \"Adam\""):
        upgrade_solver(solver, "s.prototxt")


def test_snapshot_prefix_that_is_a_directory_gets_the_solver_name(tmp_path):
    solver = caffe_pb2.SolverParameter(snapshot_prefix=str(tmp_path))
    upgrade_snapshot_prefix(solver, "models/lenet_solver.prototxt")
    assert solver.snapshot_prefix == str(tmp_path / "lenet_solver")


def test_real_v1_prototxt_upgrades():
    path = shared_path("conformance", "pretrained", "cifar10_quick_v1", "prediction_example.prototxt")
    upgraded = read_net_text(path)
    assert not upgraded.layers
    assert [layer.type for layer in upgraded.layer][:3] == ["ImageData", "Convolution", "Pooling"]
    assert upgraded.layer[-1].type == "ArgMax" and upgraded.layer[-1].argmax_param.top_k == 5
    conv1 = upgraded.layer[1]
    assert [p.lr_mult for p in conv1.param] == [1, 2]
    assert upgraded.layer[0].transform_param.mean_file.endswith("mean.binaryproto")


def test_real_v1_caffemodel_upgrades_with_blobs():
    path = shared_path("conformance", "pretrained", "cifar10_quick_v1", "cifar10_quick_iter_5000.caffemodel")
    layers = {layer.name: layer for layer in read_caffemodel(path).layer}
    assert layers["conv1"].type == "Convolution" and layers["ip2"].type == "InnerProduct"
    assert [blob_shape(blob) for blob in layers["conv1"].blobs] == [(32, 3, 5, 5), (1, 1, 1, 32)]
    ip1_weights, ip1_bias = layers["ip1"].blobs
    assert legacy_shape_matches(ip1_weights, (64, 1024)) and legacy_shape_matches(ip1_bias, (64,))
