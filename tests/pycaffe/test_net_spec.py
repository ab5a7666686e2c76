"""NetSpec (caffelite/net_spec.py): layers written as Python calls serialize to the prototxt Caffe would read."""

import numpy as np
import pytest

import caffelite
from caffelite.data.mnist import convert_mnist
from caffelite.errors import CaffeliteError
from caffelite.io.prototxt import parse_text, read_text
from caffelite.net_spec import NetSpec, NetSpecError, layers as L, param_name_dict, params as P, to_proto
from caffelite.proto import caffe_pb2
from shared_data import PROJECT, shared_path


def dummy_lenet(batch, n=None):
    """LeNet on DummyData; with a NetSpec `n` the tops get its attribute names, without one they stay anonymous."""
    tops = {}
    data, label = L.DummyData(shape=[dict(dim=[batch, 1, 28, 28]), dict(dim=[batch, 1, 1, 1])],
                              transform_param=dict(scale=1.0 / 255), ntop=2)
    tops["data"], tops["label"] = data, label
    xavier = dict(type="xavier")
    tops["conv1"] = L.Convolution(tops["data"], kernel_size=5, num_output=20, weight_filler=xavier)
    tops["pool1"] = L.Pooling(tops["conv1"], kernel_size=2, stride=2, pool=P.Pooling.MAX)
    tops["conv2"] = L.Convolution(tops["pool1"], kernel_size=5, num_output=50, weight_filler=xavier)
    tops["pool2"] = L.Pooling(tops["conv2"], kernel_size=2, stride=2, pool=P.Pooling.MAX)
    tops["ip1"] = L.InnerProduct(tops["pool2"], num_output=500, weight_filler=xavier)
    tops["relu1"] = L.ReLU(tops["ip1"], in_place=True)
    tops["ip2"] = L.InnerProduct(tops["relu1"], num_output=10, weight_filler=xavier)
    tops["loss"] = L.SoftmaxWithLoss(tops["ip2"], tops["label"])
    if n is None:
        return tops["loss"].to_proto()
    for name, top in tops.items():
        n[name] = top
    return n.to_proto()


def built_from_text(net_proto, tmp_path, phase=caffelite.TEST):
    """A Net read back from the prototxt text of `net_proto`, as pycaffe's own test does."""
    path = tmp_path / "net.prototxt"
    path.write_text(str(net_proto))
    caffelite.set_random_seed(3)
    return caffelite.Net(str(path), phase)


def reparsed(net_proto):
    return parse_text(str(net_proto), caffe_pb2.NetParameter())


# -- LeNet, named and anonymous ------------------------------------------------------------------
def test_named_lenet_text_and_net(tmp_path):
    proto = dummy_lenet(4, NetSpec())
    assert [layer.name for layer in proto.layer] == [
        "data", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"]
    assert list(proto.layer[0].top) == ["data", "label"]
    relu = proto.layer[6]
    assert list(relu.bottom) == list(relu.top) == ["ip1"]
    assert list(proto.layer[7].bottom) == ["ip1"]
    assert list(proto.layer[8].bottom) == ["ip2", "label"]
    text = str(proto)
    assert 'type: "SoftmaxWithLoss"' in text and "pool: MAX" in text
    assert proto.layer[1].convolution_param.weight_filler.type == "xavier"
    assert list(proto.layer[1].convolution_param.kernel_size) == [5]
    assert proto.layer[0].dummy_data_param.shape[1].dim == [4, 1, 1, 1]
    assert reparsed(proto) == proto

    net = built_from_text(proto, tmp_path)
    assert len(net.layers) == 9
    assert net.blobs["ip2"].data.shape == (4, 10)
    assert np.isfinite(net.forward()["loss"]).all()


def test_anonymous_lenet_gets_type_counter_names(tmp_path):
    proto = dummy_lenet(4)
    assert [layer.name for layer in proto.layer] == [
        "DummyData1", "Convolution1", "Pooling1", "Convolution2", "Pooling2",
        "InnerProduct1", "ReLU1", "InnerProduct2", "SoftmaxWithLoss1"]
    # The second top of a multi-top layer takes the next number of the same counter.
    assert list(proto.layer[0].top) == ["DummyData1", "DummyData2"]
    assert list(proto.layer[6].bottom) == list(proto.layer[6].top) == ["InnerProduct1"]
    assert list(proto.layer[8].bottom) == ["InnerProduct2", "DummyData2"]
    assert len(built_from_text(proto, tmp_path).layers) == 9


def test_unnamed_layers_between_named_ones_are_numbered():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    hidden = L.ReLU(L.Convolution(n.data, num_output=2, kernel_size=3))
    n.out = L.Convolution(hidden, num_output=2, kernel_size=1)
    names = [(layer.name, list(layer.bottom), list(layer.top)) for layer in n.to_proto().layer]
    assert names == [("data", [], ["data"]),
                     ("Convolution1", ["data"], ["Convolution1"]),
                     ("ReLU1", ["Convolution1"], ["ReLU1"]),
                     ("out", ["ReLU1"], ["out"])]


def test_shared_layer_is_emitted_once():
    data = L.Input(shape=dict(dim=[2, 3]))
    a, b = L.ReLU(data), L.Sigmoid(data)
    proto = to_proto(a, b)
    assert [layer.type for layer in proto.layer] == ["Input", "ReLU", "Sigmoid"]
    assert proto.layer[1].bottom == proto.layer[2].bottom == ["Input1"]


# -- ntop: 0, 1, many ------------------------------------------------------------------------------
def test_silence_layers_have_no_tops_and_the_net_outputs_nothing(tmp_path):
    n = NetSpec()
    n.data, n.data2 = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence_data = L.Silence(n.data, ntop=0)
    n.silence_data2 = L.Silence(n.data2, ntop=0)
    proto = n.to_proto()
    assert [(layer.name, list(layer.top)) for layer in proto.layer] == [
        ("data", ["data", "data2"]), ("silence_data", []), ("silence_data2", [])]
    assert built_from_text(proto, tmp_path).forward() == {}


def test_anonymous_topless_layer_and_to_proto_of_a_node():
    data = L.Input(shape=dict(dim=[2]))
    silence = L.Silence(data, ntop=0)
    assert isinstance(silence, caffelite.net_spec.LayerNode) and silence.tops == ()
    proto = to_proto(silence)
    assert [(layer.name, list(layer.bottom), list(layer.top)) for layer in proto.layer] == [
        ("Input1", [], ["Input1"]), ("Silence1", ["Input1"], [])]


def test_layer_call_returns_top_tuple_or_node():
    one = L.ReLU(L.Input())
    many = L.Slice(one, ntop=3, slice_point=[1, 2])
    assert isinstance(one, caffelite.net_spec.Top) and one.n == 0
    assert isinstance(many, tuple) and [top.n for top in many] == [0, 1, 2]
    assert len({top.fn for top in many}) == 1
    node = many[0].fn
    assert node.type_name == "Slice" and node.ntop == 3 and not node.in_place
    assert node.inputs == (one,) and node.params == {"slice_point": [1, 2]}  # ntop is not a layer param
    assert list(many[2].to_proto().layer[2].slice_param.slice_point) == [1, 2]


def test_a_tuple_bottom_is_a_type_error_naming_it():
    data = L.DummyData(ntop=2)
    with pytest.raises(TypeError, match=r"^Silence input 0 is not a Top \(type is <class 'tuple'>\)$") as info:
        L.Silence(data, ntop=0)
    assert isinstance(info.value, CaffeliteError)
    L.Silence(*data, ntop=0)


# -- in place ---------------------------------------------------------------------------------------
def test_in_place_chain_keeps_the_blob_name_and_node_flags():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 4]))
    n.fc = L.InnerProduct(n.data, num_output=3)
    n.relu = L.ReLU(n.fc, in_place=True)
    n.drop = L.Dropout(n.relu, dropout_ratio=0.5, in_place=True)
    n.out = L.Softmax(n.drop)
    assert n.relu.fn.in_place and "in_place" not in n.relu.fn.params
    layer = {layer.name: layer for layer in n.to_proto().layer}
    assert layer["relu"].bottom == layer["relu"].top == ["fc"]
    assert layer["drop"].bottom == layer["drop"].top == ["fc"]
    assert layer["drop"].dropout_param.dropout_ratio == 0.5
    assert layer["out"].bottom == ["fc"]


# -- keyword rules ---------------------------------------------------------------------------------
def test_scalars_lists_and_dicts_fill_repeated_and_message_fields():
    conv = L.Convolution(L.Input(), num_output=8, kernel_size=3, pad=[1, 2], stride=(2, 1),
                         weight_filler=dict(type="gaussian", std=0.01),
                         param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)],
                         loss_weight=0.5, propagate_down=[True], include=dict(phase=caffelite.TRAIN, stage=["a", "b"]),
                         exclude=[dict(min_level=1), dict(not_stage="c")], name="my_conv")
    layer = conv.to_proto().layer[1]
    cp = layer.convolution_param
    assert cp.num_output == 8 and list(cp.kernel_size) == [3]  # a scalar into a repeated field: one element
    assert list(cp.pad) == [1, 2] and list(cp.stride) == [2, 1]
    assert cp.weight_filler.type == "gaussian" and cp.weight_filler.std == pytest.approx(0.01)
    assert [(p.lr_mult, p.decay_mult) for p in layer.param] == [(1, 1), (2, 0)]
    assert list(layer.loss_weight) == [0.5] and list(layer.propagate_down) == [True]
    assert len(layer.include) == 1 and layer.include[0].phase == caffe_pb2.TRAIN
    assert list(layer.include[0].stage) == ["a", "b"]
    assert layer.exclude[0].min_level == 1 and list(layer.exclude[1].not_stage) == ["c"]
    assert layer.name == "my_conv"  # an explicit name keyword wins over the generated one
    assert list(layer.top) == ["Convolution1"]


def test_messages_numpy_values_and_enum_access():
    filler = caffe_pb2.FillerParameter(type="constant", value=0.2)
    offsets = -np.round(np.array([1.0, 2.0])).astype(int)
    crop = L.Crop(L.Input(), L.Input(), crop_param=dict(axis=2, offset=list(-offsets)))
    conv = L.Convolution(L.Input(), num_output=1, kernel_size=1, bias_filler=filler)
    assert list(to_proto(crop).layer[2].crop_param.offset) == [1, 2]
    assert to_proto(conv).layer[1].convolution_param.bias_filler == filler
    assert P.Pooling.MAX == caffe_pb2.PoolingParameter.MAX and P.Pooling.AVE == caffe_pb2.PoolingParameter.AVE
    assert P.Data.LMDB == caffe_pb2.DataParameter.LMDB
    assert P.Eltwise.SUM == caffe_pb2.EltwiseParameter.SUM
    with pytest.raises(NetSpecError, match="PoolingParameter has no enum value 'MAXIMUM'"):
        P.Pooling.MAXIMUM
    with pytest.raises(NetSpecError, match="no message NopeParameter"):
        P.Nope


def test_python_layer_params_in_both_forms():
    data = L.Input(shape=dict(dim=[1]))
    flat = L.Python(data, module="my_layers", layer="Double", param_str="{'k': 2}", ntop=2)
    nested = L.Python(data, python_param=dict(module="my_layers", layer="Double", param_str="{'k': 2}"), ntop=2)
    expected = caffe_pb2.PythonParameter(module="my_layers", layer="Double", param_str="{'k': 2}")
    for tops in (flat, nested):
        layer = to_proto(*tops).layer[1]
        assert layer.type == "Python" and layer.python_param == expected
        assert list(layer.top) == ["Python1", "Python2"]


def test_param_name_dict_maps_types_to_their_param_fields():
    names = param_name_dict()
    expected = {"Convolution": "convolution", "InnerProduct": "inner_product", "DummyData": "dummy_data",
                "Pooling": "pooling", "Python": "python", "Data": "data", "HDF5Data": "hdf5_data", "LRN": "lrn",
                "ReLU": "relu", "Input": "input", "Transformation": "transform"}
    assert {key: names[key] for key in expected} == expected
    assert "Deconvolution" not in names  # as pycaffe: no message of its own
    fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    assert all(value + "_param" in fields for value in names.values())


def test_deconvolution_kwargs_go_to_convolution_param():
    deconv = L.Deconvolution(L.Input(), num_output=4, kernel_size=4, stride=2, bias_term=False)
    assert deconv.fn.params == {"num_output": 4, "kernel_size": 4, "stride": 2, "bias_term": False}
    cp = deconv.to_proto().layer[1].convolution_param
    assert (cp.num_output, list(cp.kernel_size), list(cp.stride), cp.bias_term) == (4, [4], [2], False)


def test_unknown_keywords_name_the_layer():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    n.conv = L.Convolution(n.data, kernel_sise=3)
    with pytest.raises(NetSpecError, match=r"layer 'conv' \(Convolution\): no field 'kernel_sise'"):
        n.to_proto()
    n.conv = L.Convolution(n.data, weight_filler=dict(kind="xavier"))
    with pytest.raises(NetSpecError, match=r"'conv'.*FillerParameter has no field 'kind'"):
        n.to_proto()
    n.conv = L.Convolution(n.data, num_output=[1, 2])
    with pytest.raises(NetSpecError, match="holds one value, got a list"):
        n.to_proto()
    n.conv = L.Convolution(n.data, num_output="many")
    with pytest.raises(TypeError, match=r"layer 'conv' \(Convolution\): num_output='many'") as info:
        n.to_proto()
    assert isinstance(info.value, CaffeliteError)


def test_netspec_attribute_errors():
    n = NetSpec()
    with pytest.raises(NetSpecError, match="unpack it"):
        n.pair = L.DummyData(ntop=2)
    with pytest.raises(NetSpecError, match="got int"):
        n["x"] = 3
    with pytest.raises(AttributeError, match="no top 'missing'"):
        n.missing
    assert not hasattr(n, "missing")
    n["data"] = top = L.Input()
    assert n.data is top and n["data"] is top and list(n.tops) == ["data"]


# -- Caffe's own model files, rebuilt ------------------------------------------------------------------
def lenet_train_test():
    """models/lenet/lenet_train_test.prototxt, layer for layer."""
    n = NetSpec()
    scale = dict(scale=0.00390625)
    n.data, n.label = L.Data(name="mnist", include=dict(phase=caffelite.TRAIN), transform_param=scale,
                             source="models/lenet/mnist_train_lmdb", batch_size=64, backend=P.Data.LMDB, ntop=2)
    # A second layer writing the same blobs: no NetSpec name can be reused, so its tops are given as a field.
    n.test_data = L.Data(name="mnist", top=["data", "label"], include=dict(phase=caffelite.TEST),
                         transform_param=scale, source="models/lenet/mnist_test_lmdb", batch_size=100,
                         backend=P.Data.LMDB, ntop=0)
    lr = [dict(lr_mult=1), dict(lr_mult=2)]
    fillers = dict(weight_filler=dict(type="xavier"), bias_filler=dict(type="constant"))
    n.conv1 = L.Convolution(n.data, param=lr, num_output=20, kernel_size=5, stride=1, **fillers)
    n.pool1 = L.Pooling(n.conv1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.conv2 = L.Convolution(n.pool1, param=lr, num_output=50, kernel_size=5, stride=1, **fillers)
    n.pool2 = L.Pooling(n.conv2, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.ip1 = L.InnerProduct(n.pool2, param=lr, num_output=500, **fillers)
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, param=lr, num_output=10, **fillers)
    n.accuracy = L.Accuracy(n.ip2, n.label, include=dict(phase=caffelite.TEST))
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    proto = n.to_proto()
    proto.name = "LeNet"
    return proto


def test_lenet_train_test_equals_the_model_file():
    expected = read_text(PROJECT / "models" / "lenet" / "lenet_train_test.prototxt", caffe_pb2.NetParameter())
    built = reparsed(lenet_train_test())
    assert len(built.layer) == len(expected.layer)
    for mine, theirs in zip(built.layer, expected.layer):
        assert mine == theirs, f"layer {theirs.name}"
    assert built == expected


def test_learning_lenet_notebook_style_builds_a_training_net(tmp_path):
    mnist = PROJECT / "models" / "lenet" / "mnist"
    source = tmp_path / "mnist_test_lmdb"
    convert_mnist(mnist / "t10k-images-idx3-ubyte.gz", mnist / "t10k-labels-idx1-ubyte.gz", source)
    n = NetSpec()
    n.data, n.label = L.Data(batch_size=8, backend=P.Data.LMDB, source=str(source),
                             transform_param=dict(scale=1.0 / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool1, num_output=10, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.loss = L.SoftmaxWithLoss(n.relu1, n.label)
    proto = n.to_proto()
    data = proto.layer[0]
    assert data.data_param.backend == caffe_pb2.DataParameter.LMDB and data.data_param.batch_size == 8
    assert data.transform_param.scale == pytest.approx(1 / 255)
    net = built_from_text(proto, tmp_path, caffelite.TRAIN)
    out = net.forward()
    assert net.blobs["data"].data.shape == (8, 1, 28, 28) and 0 <= net.blobs["data"].data.max() <= 1
    assert np.isfinite(out["loss"]) and list(net.blobs)[:2] == ["data", "label"]


def caffenet_deploy():
    """bvlc_reference_caffenet/deploy.prototxt, layer for layer."""
    n = NetSpec()
    n.data = L.Input(input_param=dict(shape=dict(dim=[10, 3, 227, 227])))

    def conv_relu(bottom, num_output, kernel_size, **kwargs):
        conv = L.Convolution(bottom, num_output=num_output, kernel_size=kernel_size, **kwargs)
        return conv, L.ReLU(conv, in_place=True)

    def pool(bottom):
        return L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=3, stride=2)

    def lrn(bottom):
        return L.LRN(bottom, local_size=5, alpha=1e-4, beta=0.75)

    n.conv1, n.relu1 = conv_relu(n.data, 96, 11, stride=4)
    n.pool1 = pool(n.relu1)
    n.norm1 = lrn(n.pool1)
    n.conv2, n.relu2 = conv_relu(n.norm1, 256, 5, pad=2, group=2)
    n.pool2 = pool(n.relu2)
    n.norm2 = lrn(n.pool2)
    n.conv3, n.relu3 = conv_relu(n.norm2, 384, 3, pad=1)
    n.conv4, n.relu4 = conv_relu(n.relu3, 384, 3, pad=1, group=2)
    n.conv5, n.relu5 = conv_relu(n.relu4, 256, 3, pad=1, group=2)
    n.pool5 = pool(n.relu5)
    n.fc6 = L.InnerProduct(n.pool5, num_output=4096)
    n.relu6 = L.ReLU(n.fc6, in_place=True)
    n.drop6 = L.Dropout(n.relu6, dropout_ratio=0.5, in_place=True)
    n.fc7 = L.InnerProduct(n.drop6, num_output=4096)
    n.relu7 = L.ReLU(n.fc7, in_place=True)
    n.drop7 = L.Dropout(n.relu7, dropout_ratio=0.5, in_place=True)
    n.fc8 = L.InnerProduct(n.drop7, num_output=1000)
    n.prob = L.Softmax(n.fc8)
    proto = n.to_proto()
    proto.name = "CaffeNet"
    return proto


def test_caffenet_deploy_equals_the_reference_file():
    path = shared_path("conformance", "bvlc_caffe", "models", "bvlc_reference_caffenet", "deploy.prototxt")
    expected = read_text(path, caffe_pb2.NetParameter())
    built = reparsed(caffenet_deploy())
    assert [layer.name for layer in built.layer] == [layer.name for layer in expected.layer]
    for mine, theirs in zip(built.layer, expected.layer):
        assert mine == theirs, f"layer {theirs.name}"
    assert built == expected


def test_pycaffe_import_form_gives_the_netspec_factories():
    """`from caffe import layers as L, params as P` is how pycaffe scripts start."""
    import caffelite as caffe
    from caffelite import layers as L
    from caffelite import params as P

    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3]))
    n.pool = L.Pooling(n.data, pool=P.Pooling.MAX, kernel_size=1)
    text = str(n.to_proto())
    assert 'type: "Pooling"' in text and "pool: MAX" in text
    assert "ReLU" in caffe.layer_type_list()  # the layer registry is untouched by the factory's name
    import caffelite.layers.relu as relu_module  # the package's modules stay importable as modules

    assert relu_module.ReLU.type == "ReLU"
