"""Python layer: refused unless allowed; then the user's caffelite.Layer subclass does the work (setup to backward)."""

import sys
import textwrap

import numpy as np
import pytest
from layer_harness import check_gradients, make_layer, run_forward

from caffelite.errors import NetError
from caffelite.layers import python as python_layer
from caffelite.layers.python import allow_python_layers, python_layers_allowed
from caffelite.phase import TEST, TRAIN

USER_MODULE = """
import numpy as np
from caffelite.layers.python import Layer


class SimpleLayer(Layer):
    \"\"\"multiplies by ten\"\"\"

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 10 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = 10 * top[0].diff


class ParamStrLayer(Layer):
    \"\"\"a constant top holding len(param_str) and the phase\"\"\"

    def setup(self, bottom, top):
        self.seen = (self.param_str, self.phase)

    def reshape(self, bottom, top):
        top[0].reshape(2)

    def forward(self, bottom, top):
        top[0].data[...] = [len(self.param_str), self.phase]


class ScaleLayer(Layer):
    \"\"\"y = w * x with one learnable scalar w\"\"\"

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[...] = 1.5

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data[0] * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] += np.sum(top[0].diff * bottom[0].data)
        if propagate_down[0]:
            bottom[0].diff[...] = self.blobs[0].data[0] * top[0].diff


class ExceptionLayer(Layer):
    def setup(self, bottom, top):
        raise RuntimeError("user setup failed")


class NotALayer:
    pass
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of user layers importable by name; the allow switch is restored afterwards."""
    name = f"user_layers_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    saved = python_layers_allowed()
    yield name
    allow_python_layers(saved)
    sys.modules.pop(name, None)


def python_text(module, layer, param_str="", top="y", bottom="x"):
    bottom_text = f'bottom: "{bottom}"' if bottom else ""
    return f"""
        name: "py" type: "Python" {bottom_text} top: "{top}"
        python_param {{ module: "{module}" layer: "{layer}" param_str: "{param_str}" }}
    """


def test_refused_unless_allowed_with_a_message_saying_how(user_module):
    allow_python_layers(False)
    with pytest.raises(NetError) as caught:
        make_layer(python_text(user_module, "SimpleLayer"), [np.zeros(3)])
    message = str(caught.value)
    assert "layer 'py' (Python)" in message
    assert "caffelite.allow_python_layers()" in message and "--allow_python_layers" in message
    assert user_module not in sys.modules  # nothing was imported


def test_allowed_simple_layer_times_ten_forward_backward_and_gradients(user_module):
    allow_python_layers()
    assert python_layers_allowed()
    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    layer, bottom, top = make_layer(python_text(user_module, "SimpleLayer"), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, 10 * x)
    top[0].grad[...] = np.arange(24).reshape(2, 3, 4)
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].grad, 10 * np.arange(24).reshape(2, 3, 4))
    check_gradients(layer, bottom, top)


def test_in_place_simple_layer(user_module):
    allow_python_layers()
    x = np.random.default_rng(1).standard_normal((3, 2))
    layer, bottom, top = make_layer(python_text(user_module, "SimpleLayer", top="x"), [x])
    assert top[0] is bottom[0]
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, 10 * x)
    check_gradients(layer, bottom, top)


def test_param_str_and_phase_reach_the_layer(user_module):
    allow_python_layers()
    layer, bottom, top = make_layer(
        python_text(user_module, "ParamStrLayer", param_str="{'k': 3}", bottom=None), [], phase=TRAIN
    )
    assert layer.user.seen == ("{'k': 3}", TRAIN)
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, [len("{'k': 3}"), TRAIN])
    layer, bottom, top = make_layer(python_text(user_module, "ParamStrLayer", bottom=None), [], phase=TEST)
    assert layer.user.seen == ("", TEST)


def test_blobs_added_in_setup_are_learnable_params(user_module):
    allow_python_layers()
    x = np.random.default_rng(2).standard_normal((2, 3))
    layer, bottom, top = make_layer(python_text(user_module, "ScaleLayer"), [x])
    assert len(layer.params) == 1 and layer.params[0].shape == (1,)
    assert layer.params[0].dtype == np.float64  # the layer's dtype
    assert layer.params is layer.user.blobs
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, 1.5 * x)
    check_gradients(layer, bottom, top)


def test_an_exception_in_user_setup_names_the_layer(user_module):
    allow_python_layers()
    with pytest.raises(NetError, match=r"layer 'py' \(Python\): .*ExceptionLayer\.setup raised RuntimeError: "
                                       r"user setup failed") as caught:
        make_layer(python_text(user_module, "ExceptionLayer"), [np.zeros(2)])
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_bad_module_or_class_names(user_module):
    allow_python_layers()
    with pytest.raises(NetError, match=r"layer 'py' \(Python\): cannot import module 'no_such_module_xyz'"):
        make_layer(python_text("no_such_module_xyz", "SimpleLayer"), [np.zeros(2)])
    with pytest.raises(NetError, match="has no 'Missing'"):
        make_layer(python_text(user_module, "Missing"), [np.zeros(2)])
    with pytest.raises(NetError, match="must be a class derived from caffelite.Layer"):
        make_layer(python_text(user_module, "NotALayer"), [np.zeros(2)])


def test_base_layer_defaults():
    base = python_layer.Layer()
    assert base.param_str == "" and base.phase == TEST and list(base.blobs) == [] and base.type == "Python"
    for method in (base.setup, base.reshape, base.forward):
        assert method([], []) is None
    assert base.backward([], [], []) is None


def test_in_a_net_like_pycaffe(user_module, tmp_path):
    from caffelite.net import Net

    layers = "".join(
        f"""layer {{ type: 'Python' name: '{name}' bottom: '{bottom}' top: '{name}'
              python_param {{ module: '{user_module}' layer: 'SimpleLayer' }} }}
        """
        for bottom, name in (("data", "one"), ("one", "two"), ("two", "three"))
    )
    model = tmp_path / "python_net.prototxt"
    model.write_text(f"name: 'pythonnet' force_backward: true input: 'data' "
                     f"input_shape {{ dim: 10 dim: 9 dim: 8 }} {layers}")
    allow_python_layers(False)
    with pytest.raises(NetError, match=r"python_net.prototxt: layer 'one' \(Python\): Python layers are not allowed"):
        Net(str(model), TRAIN)
    allow_python_layers()
    net = Net(str(model), TRAIN)
    net.blobs["data"].data[...] = 8
    net.forward()
    np.testing.assert_array_equal(net.blobs["three"].data, 8000)
    net.blobs["three"].diff[...] = 7
    net.backward()
    np.testing.assert_array_equal(net.blobs["data"].diff, 7000)
