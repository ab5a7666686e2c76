"""BatchNorm: both statistics modes against direct formulas, Caffe's running-sum update, gradients, param specs."""

import numpy as np
import pytest
from google.protobuf import text_format

import caffelite
from caffelite.errors import NetError, ShapeError
from caffelite.phase import TEST, TRAIN
from caffelite.proto import caffe_pb2
from layer_harness import check_float32_backward, check_gradients, make_layer, run_forward

EPS = float(np.float32(1e-5))
MAF = float(np.float32(0.999))


def bn_text(options="", names='bottom: "x" top: "y"', params=""):
    return f'name: "bn" type: "BatchNorm" {names} {params} batch_norm_param {{ {options} }}'


def channel_stats(x):
    """Per-channel mean and biased variance over every axis but 1, by explicit sums."""
    moved = np.moveaxis(x.reshape(x.shape[0], x.shape[1] if x.ndim > 1 else 1, -1), 1, 0).reshape(
        x.shape[1] if x.ndim > 1 else 1, -1)
    mean = moved.sum(axis=1) / moved.shape[1]
    var = ((moved - mean[:, None]) ** 2).sum(axis=1) / moved.shape[1]
    return mean, var, moved.shape[1]


def normalize(x, mean, var, eps=EPS):
    shape = (1, -1) + (1,) * (x.ndim - 2) if x.ndim > 1 else (1,)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)


class StatisticsHidden:
    """The layer with its statistics hidden from the gradient check: they are not learned (no param grads)."""

    def __init__(self, layer):
        self.layer = layer
        self.params = []

    def __getattr__(self, name):
        return getattr(self.layer, name)


def test_train_uses_batch_statistics_and_updates_the_running_sums():
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(loc=2, scale=3, size=(2, 2, 3, 4, 5))
    layer, bottom, top = make_layer(bn_text(), [x1], phase=TRAIN)
    assert not layer.use_global_stats and [p.shape for p in layer.params] == [(3,), (3,), (1,)]
    (y,) = run_forward(layer, bottom, top)
    mean1, var1, m = channel_stats(x1)
    np.testing.assert_allclose(y, normalize(x1, mean1, var1), rtol=1e-12)
    assert m == 40
    np.testing.assert_allclose(layer.params[2].data, [1.0])
    np.testing.assert_allclose(layer.params[0].data, mean1, rtol=1e-12)
    np.testing.assert_allclose(layer.params[1].data, var1 * 40 / 39, rtol=1e-12)
    bottom[0].data[...] = x2
    (y,) = run_forward(layer, bottom, top)
    mean2, var2, _ = channel_stats(x2)
    np.testing.assert_allclose(y, normalize(x2, mean2, var2), rtol=1e-12)
    np.testing.assert_allclose(layer.params[2].data, [MAF + 1], rtol=1e-12)
    np.testing.assert_allclose(layer.params[0].data, mean2 + MAF * mean1, rtol=1e-12)
    np.testing.assert_allclose(layer.params[1].data, (var2 + MAF * var1) * 40 / 39, rtol=1e-12)


def test_test_phase_uses_the_stored_sums_divided_by_their_weight():
    x = np.random.default_rng(1).normal(size=(4, 3, 2, 2))
    layer, bottom, top = make_layer(bn_text("eps: 0.01"), [x], phase=TEST)
    assert layer.use_global_stats
    mean_sum, var_sum = np.array([1.0, -2.0, 0.5]), np.array([4.0, 1.0, 9.0])
    layer.params[0].data[...] = mean_sum
    layer.params[1].data[...] = var_sum
    layer.params[2].data[...] = 2.0
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, normalize(x, mean_sum / 2, var_sum / 2, float(np.float32(0.01))), rtol=1e-12)
    # Running the test net does not touch the statistics.
    np.testing.assert_array_equal(layer.params[0].data, mean_sum)
    layer.params[2].data[...] = 0  # no statistics yet: Caffe scales them by 0
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, x / np.sqrt(float(np.float32(0.01))), rtol=1e-12)


def test_use_global_stats_overrides_the_phase_and_moving_average_fraction_is_read():
    x = np.random.default_rng(2).normal(size=(3, 2))
    layer, bottom, top = make_layer(bn_text("use_global_stats: true"), [x], phase=TRAIN)
    assert layer.use_global_stats
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, x / np.sqrt(EPS), rtol=1e-12)
    assert not layer.params[2].data.any()
    layer, bottom, top = make_layer(bn_text("use_global_stats: false moving_average_fraction: 0.5"), [x], phase=TEST)
    run_forward(layer, bottom, top)
    run_forward(layer, bottom, top)
    np.testing.assert_allclose(layer.params[2].data, [1.5])
    mean, var, m = channel_stats(x)
    np.testing.assert_allclose(layer.params[0].data, 1.5 * mean, rtol=1e-12)
    np.testing.assert_allclose(layer.params[1].data, 1.5 * var * m / (m - 1), rtol=1e-12)


@pytest.mark.parametrize("shape", [(4, 3, 2, 3), (5, 2), (3, 2, 2, 2, 2)])
@pytest.mark.parametrize("in_place", [False, True])
def test_gradients_with_batch_statistics(shape, in_place):
    x = np.random.default_rng(3).normal(size=shape)
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    layer, bottom, top = make_layer(bn_text(options="eps: 0.001", names=names), [x], phase=TRAIN)
    check_gradients(layer, bottom, top, tolerance=1e-5)
    # The statistics never get a gradient.
    assert not any(p.grad.any() for p in layer.params)


@pytest.mark.parametrize("in_place", [False, True])
def test_gradients_with_global_statistics(in_place):
    x = np.random.default_rng(4).normal(size=(2, 3, 2, 2))
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    layer, bottom, top = make_layer(bn_text(names=names), [x], phase=TEST)
    layer.params[0].data[...] = [0.5, -1.0, 2.0]
    layer.params[1].data[...] = [1.0, 4.0, 0.25]
    layer.params[2].data[...] = 1.5
    check_gradients(StatisticsHidden(layer), bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].grad[0, :, 0, 0], 1 / np.sqrt(np.array([1.0, 4.0, 0.25]) / 1.5 + EPS))


def test_one_axis_input_is_one_channel():
    x = np.random.default_rng(5).normal(size=(6,))
    layer, bottom, top = make_layer(bn_text(), [x], phase=TRAIN)
    assert layer.channels == 1 and layer.params[0].shape == (1,)
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, (x - x.mean()) / np.sqrt(x.var() + EPS), rtol=1e-12)
    check_gradients(layer, bottom, top, tolerance=1e-5)


def test_statistics_get_lr_mult_zero_param_specs():
    layer, _, _ = make_layer(bn_text(), [np.ones((2, 3))])
    assert [spec.lr_mult for spec in layer.param.param] == [0, 0, 0]
    layer, _, _ = make_layer(bn_text(params="param { lr_mult: 0 decay_mult: 0 }"), [np.ones((2, 3))])
    assert [spec.lr_mult for spec in layer.param.param] == [0, 0, 0]
    assert layer.param.param[0].decay_mult == 0 and layer.param.param[1].decay_mult == 1
    with pytest.raises(NetError, match="layer 'bn' \\(BatchNorm\\): param 1 has lr_mult 1.*cannot be learned"):
        make_layer(bn_text(params="param { lr_mult: 0 } param { lr_mult: 1 }"), [np.ones((2, 3))])


def test_float32_and_propagate_down():
    x = np.random.default_rng(6).normal(size=(8, 4, 3, 3))
    layer, bottom, top = make_layer(bn_text(), [x], phase=TRAIN, dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32 and all(p.data.dtype == np.float32 for p in layer.params)
    mean, var, _ = channel_stats(x.astype(np.float32).astype(np.float64))
    np.testing.assert_allclose(y, normalize(x.astype(np.float32).astype(np.float64), mean, var), atol=1e-5)
    check_float32_backward(layer, bottom, top)
    np.testing.assert_allclose(bottom[0].grad, 0, atol=1e-5)


def test_reshape_checks_the_channels():
    layer, bottom, top = make_layer(bn_text(), [np.ones((2, 3, 4))])
    bottom[0].reshape(5, 3, 2)
    layer.reshape(bottom, top)
    assert top[0].shape == (5, 3, 2)
    bottom[0].reshape(5, 4, 2)
    with pytest.raises(ShapeError, match="layer 'bn' \\(BatchNorm\\).*3 channels"):
        layer.reshape(bottom, top)


def test_a_net_sees_the_statistics_as_frozen():
    text = """
        layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }
        layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" }
    """
    net = caffelite.Net(text_format.Parse(text, caffe_pb2.NetParameter()), caffelite.TRAIN)
    assert net.params_lr == [0, 0, 0]
    assert not net.layer_need_backward("bn")
    x = np.random.default_rng(7).normal(size=(4, 3))
    y = net.forward(x=x)["x"]
    mean, var, _ = channel_stats(x)
    np.testing.assert_allclose(y, normalize(x, mean, var), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net.params["bn"][2].data, [1.0])
