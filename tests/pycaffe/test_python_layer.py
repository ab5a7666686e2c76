"""Python layers written against caffe.Layer, named in a prototxt by this module's name (as pycaffe users do)."""

import importlib

import numpy as np
import pytest

import caffelite as caffe
from caffelite.errors import NetError

MODULE = __name__  # the prototxt's python_param.module: this very file, as imported by pytest


class TimesTen(caffe.Layer):
    """y = 10 x"""

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 10 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 10 * top[0].diff


class FailsInSetup(caffe.Layer):
    def setup(self, bottom, top):
        raise RuntimeError("refusing to set up")


class OneParam(caffe.Layer):
    """Passes nothing on; owns one learnable scalar whose diff backward sets to 1."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = 0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        pass

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] = 1


class Counter(caffe.Layer):
    """A data-like layer with a method of its own that scripts call through net.layers[i]."""

    def setup(self, bottom, top):
        self.value = 0

    def set_value(self, value):
        self.value = value

    def reshape(self, bottom, top):
        top[0].reshape(2)

    def forward(self, bottom, top):
        top[0].data[...] = self.value


class ReportsPhase(caffe.Layer):
    """A scalar top holding the phase the layer was built in."""

    def reshape(self, bottom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[()] = self.phase


def net_file(tmp_path, body, with_input=True):
    inputs = "input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }" if with_input else ""
    path = tmp_path / "python_net.prototxt"
    path.write_text(f"name: 'pythonnet' force_backward: true {inputs} {body}")
    return str(path)


def python_layer(name, layer_class, bottom, top):
    bottom_text = f"bottom: '{bottom}'" if bottom else ""
    return (f"layer {{ type: 'Python' name: '{name}' {bottom_text} top: '{top}' "
            f"python_param {{ module: '{MODULE}' layer: '{layer_class}' }} }}\n")


@pytest.fixture
def chain(tmp_path, python_layers):
    """data -> one -> two -> three, each a TimesTen layer."""
    body = "".join(python_layer(name, "TimesTen", bottom, name)
                   for bottom, name in (("data", "one"), ("one", "two"), ("two", "three")))
    return caffe.Net(net_file(tmp_path, body), caffe.TRAIN)


def test_the_module_named_in_the_prototxt_is_this_one():
    assert importlib.import_module(MODULE).TimesTen is TimesTen
    assert "Python" in caffe.layer_type_list()


def test_forward_through_three_layers(chain):
    chain.blobs["data"].data[...] = 8
    chain.forward()
    assert np.all(chain.blobs["three"].data == 8 * 10**3)
    assert chain.layers[1].type == "Python" and chain._layer_names[1:] == ["one", "two", "three"]


def test_backward_through_three_layers(chain):
    chain.blobs["three"].diff[...] = 7
    chain.backward()
    assert np.all(chain.blobs["data"].diff == 7 * 10**3)


def test_a_new_input_shape_reaches_every_blob(chain):
    chain.blobs["data"].reshape(4, 4, 4, 4)
    chain.forward()
    for name, blob in chain.blobs.items():
        assert blob.data.shape == (4, 4, 4, 4), name


def test_an_exception_in_setup_reaches_the_caller_as_its_own_type(tmp_path, python_layers):
    path = net_file(tmp_path, python_layer("layer", "FailsInSetup", "data", "top"))
    with pytest.raises(RuntimeError, match="refusing to set up") as caught:
        caffe.Net(path, caffe.TEST)
    assert isinstance(caught.value, NetError)  # and it names where it happened
    assert "layer 'layer' (Python)" in str(caught.value) and "python_net.prototxt" in str(caught.value)


def test_python_layers_must_be_allowed(tmp_path):
    saved = caffe.python_layers_allowed()
    caffe.allow_python_layers(False)
    try:
        with pytest.raises(NetError, match="Python layers are not allowed"):
            caffe.Net(net_file(tmp_path, python_layer("one", "TimesTen", "data", "one")), caffe.TEST)
    finally:
        caffe.allow_python_layers(saved)


def test_a_layer_with_its_own_param_blob(tmp_path, python_layers):
    path = net_file(tmp_path, python_layer("layer", "OneParam", "data", "top"))
    net = caffe.Net(path, caffe.TRAIN)
    net.forward()
    net.backward()
    layer = net.layers[list(net._layer_names).index("layer")]
    assert layer.blobs[0].data[0] == 0 and layer.blobs[0].diff[0] == 1
    assert net.params["layer"][0] is layer.blobs[0]
    layer.blobs[0].data[0] += layer.blobs[0].diff[0]
    assert layer.blobs[0].data[0] == 1

    # saved with the net's weights, and loaded back
    weights = str(tmp_path / "python_net.caffemodel")
    net.save(weights)
    layer.blobs[0].data[0] = -1
    net.copy_from(weights)
    assert layer.blobs[0].data[0] == 1
    assert caffe.Net(path, caffe.TEST, weights=weights).layers[1].blobs[0].data[0] == 1

    # shared with another net: one array for both
    other = caffe.Net(path, caffe.TRAIN)
    assert other.layers[1].blobs[0].data[0] == 0
    other.share_with(net)
    assert other.layers[1].blobs[0].data[0] == 1
    layer.blobs[0].data[0] = 5
    assert other.layers[1].blobs[0].data[0] == 5


def test_the_layer_knows_its_phase(tmp_path, python_layers):
    path = net_file(tmp_path, python_layer("layer", "ReportsPhase", None, "phase"), with_input=False)
    for phase in (caffe.TRAIN, caffe.TEST):
        assert caffe.Net(path, phase).forward()["phase"] == phase


def test_the_users_own_methods_and_attributes_are_reachable_from_the_net(tmp_path, python_layers):
    path = net_file(tmp_path, python_layer("counter", "Counter", None, "count"), with_input=False)
    net = caffe.Net(path, caffe.TEST)
    net.layers[0].set_value(3)
    assert net.layer_dict["counter"].value == 3
    assert np.all(net.forward()["count"] == 3)
    assert net.layers[0].param_str == "" and net.layers[0].type == "Python"
    with pytest.raises(AttributeError, match="no_such_thing"):
        net.layers[0].no_such_thing
