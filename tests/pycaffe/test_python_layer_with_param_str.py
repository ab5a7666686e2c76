"""A Python layer configured by its param_str (python_param.param_str), read in setup."""

import numpy as np
import pytest

import caffelite as caffe


class Multiply(caffe.Layer):
    """y = k x, k read from param_str"""

    def setup(self, bottom, top):
        try:
            self.factor = float(self.param_str)
        except ValueError:
            raise ValueError(f"param_str must be a number, got {self.param_str!r}") from None

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.factor * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = self.factor * top[0].diff


def multiply_layer(name, bottom, param_str):
    return (f"layer {{ type: 'Python' name: '{name}' bottom: '{bottom}' top: '{name}' "
            f"python_param {{ module: '{__name__}' layer: 'Multiply' param_str: '{param_str}' }} }}\n")


def build(tmp_path, *layers):
    path = tmp_path / "param_str_net.prototxt"
    path.write_text("name: 'pythonnet' force_backward: true input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }\n"
                    + "".join(layers))
    return caffe.Net(str(path), caffe.TRAIN)


@pytest.fixture
def net(tmp_path, python_layers):
    """data -> mul10 (param_str '10') -> mul2 (param_str '2')"""
    return build(tmp_path, multiply_layer("mul10", "data", "10"), multiply_layer("mul2", "mul10", "2"))


def test_each_layer_reads_its_own_param_str(net):
    net.blobs["data"].data[...] = 8
    net.forward()
    assert np.all(net.blobs["mul10"].data == 80)
    assert np.all(net.blobs["mul2"].data == 2 * 10 * 8)


def test_backward_uses_the_same_factors(net):
    net.blobs["mul2"].diff[...] = 7
    net.backward()
    assert np.all(net.blobs["mul10"].diff == 14)
    assert np.all(net.blobs["data"].diff == 2 * 10 * 7)


def test_a_bad_param_str_fails_in_setup_with_the_layers_error(tmp_path, python_layers):
    with pytest.raises(ValueError, match="param_str must be a number, got 'ten'") as caught:
        build(tmp_path, multiply_layer("mul", "data", "ten"))
    assert "layer 'mul' (Python)" in str(caught.value)
