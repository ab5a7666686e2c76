"""caffelite.timing: per-layer forward/backward times (`caffelite time`), checked with a clock the layers drive."""

import numpy as np
import pytest
from google.protobuf import text_format

import caffelite
from caffelite.proto import caffe_pb2
from caffelite.timing import time_layers, time_net

NET = """
name: "mlp"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def make_net():
    caffelite.set_random_seed(3)
    net = caffelite.Net(text_format.Parse(NET, caffe_pb2.NetParameter()), caffelite.TRAIN, dtype=np.float64)
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.standard_normal((4, 3))
    net.blobs["label"].data[...] = [0, 1, 2, 1]
    return net


class LayerClock:
    """A clock that only moves when a layer runs: each layer's forward/backward costs a known number of ms."""

    def __init__(self, net, forward_ms, backward_ms):
        self.now = 0.0
        for name, function in net.layer_dict.items():
            self._charge(function, "forward", forward_ms.get(name, 0))
            self._charge(function, "backward", backward_ms.get(name, 0))

    def _charge(self, function, method, ms):
        original = getattr(function, method)

        def run(*args):
            self.now += ms / 1000.0
            return original(*args)

        setattr(function, method, run)

    def __call__(self):
        return self.now


FORWARD = {"data": 1, "ip1": 4, "relu1": 2, "ip2": 3, "loss": 5}
BACKWARD = {"data": 100, "ip1": 7, "relu1": 1, "ip2": 6, "loss": 2}


def test_per_layer_averages_and_totals_follow_the_clock():
    net = make_net()
    calls = []
    result = time_layers(
        net, 3, on_iteration=lambda index, ms: calls.append((index, ms)), clock=LayerClock(net, FORWARD, BACKWARD)
    )
    assert [layer.name for layer in result.layers] == ["data", "ip1", "relu1", "ip2", "loss"]
    assert [layer.type for layer in result.layers] == ["Input", "InnerProduct", "ReLU", "InnerProduct",
                                                      "SoftmaxWithLoss"]
    assert [layer.forward_ms for layer in result.layers] == pytest.approx([1, 4, 2, 3, 5])
    # the Input layer needs no backward, so the Net never runs it: it costs nothing
    assert [layer.backward_ms for layer in result.layers] == pytest.approx([0, 7, 1, 6, 2])
    assert result.forward_ms == pytest.approx(15) and result.backward_ms == pytest.approx(16)
    assert result.forward_backward_ms == pytest.approx(31) and result.total_ms == pytest.approx(93)
    assert result.iteration_ms == pytest.approx([31, 31, 31]) and result.iterations == 3
    assert [index for index, _ in calls] == [1, 2, 3] and [ms for _, ms in calls] == pytest.approx([31] * 3)


def test_timed_passes_compute_what_the_net_computes():
    """Loss tops are seeded and in-place layers run as in Net.backward_range: the same param grads result."""
    reference = make_net()
    reference.clear_param_diffs()
    reference.forward_backward()
    net = make_net()
    net.clear_param_diffs()
    time_layers(net, 1)
    for name in ("ip1", "ip2"):
        np.testing.assert_allclose(net.params[name][0].grad, reference.params[name][0].grad, rtol=1e-12)


def test_time_net_warms_up_first_and_reports_the_initial_loss():
    net = make_net()
    expected = make_net().forward_range()
    result = time_net(net, iterations=2)
    assert result.initial_loss == pytest.approx(expected)
    assert len(result.iteration_ms) == 2 and all(ms >= 0 for ms in result.iteration_ms)
    assert result.total_ms >= sum(layer.forward_ms + layer.backward_ms for layer in result.layers) * 2 - 1e-9


def test_iterations_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        time_layers(make_net(), 0)
