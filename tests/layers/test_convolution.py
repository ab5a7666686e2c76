"""Convolution: forward against a naive loop over output positions, gradients on bottoms, W and b, Caffe's shapes."""

import itertools

import numpy as np
import pytest

import caffelite.layers._conv_base as conv_base_module
from caffelite.errors import NetError, ShapeError
from conv_helpers import (
    FILLERS, case_options, check_against_reference, convolution_text, per_axis, products,  # noqa: F401 (a fixture)
)
from layer_harness import check_gradients, make_layer, run_forward


def conv_text(options, fillers=FILLERS, tops=None):
    return convolution_text("conv", "Convolution", options, fillers, tops)


def reference(x, weight, bias, pad, stride, dilation, group):
    """Direct definition, float64: every output cell sums kernel taps that land inside the unpadded input."""
    batch, channels = x.shape[:2]
    spatial = x.shape[2:]
    num_output, group_channels = weight.shape[:2]
    kernel = weight.shape[2:]
    out_shape = [
        (n + 2 * p - (d * (k - 1) + 1)) // s + 1 for n, p, d, k, s in zip(spatial, pad, dilation, kernel, stride)
    ]
    y = np.zeros((batch, num_output, *out_shape))
    outputs_per_group = num_output // group
    for n, o in itertools.product(range(batch), range(num_output)):
        first_channel = (o // outputs_per_group) * group_channels
        for position in itertools.product(*(range(m) for m in out_shape)):
            total = 0.0 if bias is None else float(bias[o])
            for c in range(group_channels):
                for tap in itertools.product(*(range(k) for k in kernel)):
                    cell = [q * s - p + t * d for q, s, p, t, d in zip(position, stride, pad, tap, dilation)]
                    if all(0 <= i < m for i, m in zip(cell, spatial)):
                        total += x[(n, first_channel + c, *cell)] * weight[(o, c, *tap)]
            y[(n, o, *position)] = total
    return y


# (input shape, num_output, options text, pad, stride, dilation, group, bias)
CASES = [
    ((2, 3, 5, 5), 4, "kernel_size: 3", 0, 1, 1, 1, True),
    ((2, 3, 6, 7), 4, "kernel_size: 3 pad: 1", 1, 1, 1, 1, True),
    ((1, 2, 7, 6), 3, "kernel_size: 3 stride: 2", 0, 2, 1, 1, False),
    ((2, 2, 7, 8), 2, "kernel_size: 2 stride: 3 pad: 2", 2, 3, 1, 1, True),
    ((1, 2, 9, 8), 3, "kernel_size: 3 dilation: 2 pad: 1", 1, 1, 2, 1, True),
    ((1, 4, 7, 7), 6, "kernel_size: 3 group: 2 pad: 1", 1, 1, 1, 2, True),
    ((2, 4, 5, 6), 4, "kernel_size: 3 group: 4", 0, 1, 1, 4, False),  # depthwise
    ((1, 4, 6, 6), 8, "kernel_size: 3 group: 4 stride: 2 pad: 1", 1, 2, 1, 4, True),  # 2 filters per channel
    ((2, 2, 7, 5), 3, "kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 0 stride_h: 2 stride_w: 1", (1, 0), (2, 1), 1, 1, True),
    ((1, 2, 8, 9), 2, "kernel_size: [2, 4] stride: [1, 2] pad: [0, 1] dilation: [2, 1]", (0, 1), (1, 2), (2, 1), 1,
     True),
    ((3, 5, 4, 4), 2, "kernel_size: 1", 0, 1, 1, 1, True),
    ((1, 3, 5, 5), 2, "kernel_size: 1 stride: 2 pad: 1", 1, 2, 1, 1, True),
]


def case_id(case):
    return f"{case[0]}-{case[2]}-bias{case[7]}".replace(" ", "")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_matches_direct_sums(case, products):
    shape, num_output, _, _, _, _, group, bias = case
    x = np.random.default_rng(0).normal(size=shape)
    layer, bottom, top = make_layer(conv_text(case_options(case)), [x])
    kernel = layer.params[0].shape[2:]
    assert layer.params[0].shape == (num_output, shape[1] // group) + kernel
    assert len(layer.params) == 1 + bias
    (y,) = run_forward(layer, bottom, top)
    check_against_reference(reference, layer, x, y, case)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_gradients(case, products):
    shape = case[0]
    shape = (min(shape[0], 2),) + shape[1:]
    x = np.random.default_rng(1).normal(size=shape)
    layer, bottom, top = make_layer(conv_text(case_options(case)), [x])
    check_gradients(layer, bottom, top)


def test_three_spatial_axes():
    x = np.random.default_rng(2).normal(size=(2, 2, 4, 5, 4))
    options = "num_output: 3 kernel_size: [2, 3, 2] stride: [1, 2, 1] pad: [1, 1, 0] dilation: [1, 1, 2]"
    layer, bottom, top = make_layer(conv_text(options), [x])
    assert layer.params[0].shape == (3, 2, 2, 3, 2)
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(
        y, reference(x, layer.params[0].data, layer.params[1].data, (1, 1, 0), (1, 2, 1), (1, 1, 2), 1), rtol=1e-12
    )
    check_gradients(layer, bottom, top)


def test_one_spatial_axis():
    x = np.random.default_rng(3).normal(size=(2, 3, 9))
    layer, bottom, top = make_layer(conv_text("num_output: 2 kernel_size: 3 stride: 2 pad: 1 group: 1"), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, reference(x, layer.params[0].data, layer.params[1].data, (1,), (2,), (1,), 1),
                               rtol=1e-12)
    check_gradients(layer, bottom, top)


def test_channel_axis_option_treats_leading_axes_as_batch():
    x = np.random.default_rng(4).normal(size=(2, 3, 2, 5, 4))  # channels on axis 2, batch (2, 3)
    layer, bottom, top = make_layer(conv_text("num_output: 3 kernel_size: 2 axis: 2"), [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == (2, 3, 3, 4, 3)
    flat = reference(x.reshape(6, 2, 5, 4), layer.params[0].data, layer.params[1].data, (0, 0), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(y, flat.reshape(y.shape), rtol=1e-12)
    check_gradients(layer, bottom, top)


def test_several_bottoms_share_the_weights():
    rng = np.random.default_rng(5)
    xs = [rng.normal(size=(2, 2, 4, 5)) for _ in range(2)]
    text = conv_text("num_output: 3 kernel_size: 2 pad: 1", tops=["y0", "y1"])
    layer, bottom, top = make_layer(text, xs)
    outputs = run_forward(layer, bottom, top)
    for x, y in zip(xs, outputs):
        expected = reference(x, layer.params[0].data, layer.params[1].data, (1, 1), (1, 1), (1, 1), 1)
        np.testing.assert_allclose(y, expected, rtol=1e-12)
    check_gradients(layer, bottom, top)


def test_bottom_and_top_counts_must_match():
    with pytest.raises(NetError, match="as many tops as bottoms"):
        make_layer(conv_text("num_output: 2 kernel_size: 1", tops=["a", "b"]), [np.ones((1, 1, 2, 2))])


def test_param_grads_accumulate_bottom_grad_is_assigned_and_propagate_down_is_honoured():
    x = np.random.default_rng(6).normal(size=(2, 2, 5, 5))
    layer, bottom, top = make_layer(conv_text("num_output: 3 kernel_size: 3 pad: 1"), [x])
    run_forward(layer, bottom, top)
    top[0].grad[...] = np.random.default_rng(7).normal(size=top[0].shape)
    bottom[0].grad[...] = 100
    layer.backward(top, [True], bottom)
    once = [p.grad.copy() for p in layer.params]
    first_bottom_grad = bottom[0].grad.copy()
    layer.backward(top, [True], bottom)
    for p, g in zip(layer.params, once):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-12)
    np.testing.assert_allclose(bottom[0].grad, first_bottom_grad, rtol=1e-12)
    np.testing.assert_allclose(once[1], top[0].grad.sum(axis=(0, 2, 3)), rtol=1e-12)
    bottom[0].grad[...] = 7
    layer.backward(top, [False], bottom)
    assert np.all(bottom[0].grad == 7)
    for p, g in zip(layer.params, once):
        np.testing.assert_allclose(p.grad, 3 * g, rtol=1e-12)


def test_batch_blocks_give_the_same_result(monkeypatch):
    rng = np.random.default_rng(8)
    x = rng.normal(size=(5, 4, 6, 6))
    text = conv_text("num_output: 4 kernel_size: 3 stride: 2 pad: 1 group: 2")
    whole, bottom, top = make_layer(text, [x])
    (expected,) = run_forward(whole, bottom, top)
    top[0].grad[...] = rng.normal(size=top[0].shape)
    whole.backward(top, [True], bottom)
    expected_grads = [bottom[0].grad.copy()] + [p.grad.copy() for p in whole.params]
    assert whole.block == 5
    monkeypatch.setattr(conv_base_module, "COLUMN_BUDGET", 2 * 36 * 9 * 8)  # two images per block
    blocked, bottom2, top2 = make_layer(text, [x])
    assert blocked.block == 2
    (y,) = run_forward(blocked, bottom2, top2)
    np.testing.assert_allclose(y, expected, rtol=1e-12)
    top2[0].grad[...] = top[0].grad
    blocked.backward(top2, [True], bottom2)
    for got, want in zip([bottom2[0].grad] + [p.grad for p in blocked.params], expected_grads):
        np.testing.assert_allclose(got, want, rtol=1e-12)


# Stride-1 layers with num_output <= channels take the input gradient as a correlation of the top diff.
CORRELATION_CASES = [
    ((2, 3, 5, 5), 1, "kernel_size: 3"),  # no padding: the diff's 1 x 25 columns per tap vs the input's 3 x 9
    ((2, 4, 6, 5), 2, "kernel_size: 3 pad: 1"),
    ((2, 3, 7, 7), 3, "kernel_size: 5 pad: 2"),
    ((1, 3, 6, 6), 3, "kernel_size: 3 pad: 2"),  # pad = kernel - 1: the diff needs no border
    ((2, 3, 7, 5), 2, "kernel_h: 3 kernel_w: 2 pad_h: 1 pad_w: 0"),
    ((2, 3, 9), 2, "kernel_size: 4 pad: 1"),
    ((1, 3, 4, 5, 4), 2, "kernel_size: [2, 3, 2] pad: [1, 1, 0]"),
]


@pytest.mark.parametrize("shape, num_output, options", CORRELATION_CASES)
def test_input_gradient_by_correlation_matches_col2im_and_finite_differences(shape, num_output, options):
    rng = np.random.default_rng(12)
    x = rng.normal(size=shape)
    layer, bottom, top = make_layer(conv_text(f"num_output: {num_output} {options}"), [x])
    assert layer._correlate
    check_gradients(layer, bottom, top)
    run_forward(layer, bottom, top)
    top[0].grad[...] = rng.normal(size=top[0].shape)
    layer.backward(top, [True], bottom)
    by_correlation = bottom[0].grad.copy()
    layer._correlate = False  # the general way: W^T times the diff, then col2im
    layer.backward(top, [True], bottom)
    np.testing.assert_allclose(by_correlation, bottom[0].grad, rtol=1e-12, atol=1e-12)


def test_input_gradient_by_correlation_in_blocks_and_float32(monkeypatch):
    rng = np.random.default_rng(13)
    x = rng.normal(size=(5, 4, 6, 6)).astype(np.float32)
    text = conv_text("num_output: 3 kernel_size: 3 pad: 1")
    whole, bottom, top = make_layer(text, [x], dtype=np.float32)
    run_forward(whole, bottom, top)
    dy = rng.normal(size=top[0].shape).astype(np.float32)
    top[0].grad[...] = dy
    whole.backward(top, [True], bottom)
    monkeypatch.setattr(conv_base_module, "COLUMN_BUDGET", 2 * 36 * 9 * 4 * 4)  # two images per block
    blocked, bottom2, top2 = make_layer(text, [x], dtype=np.float32)
    assert blocked.block == 2 and blocked._correlate
    run_forward(blocked, bottom2, top2)
    top2[0].grad[...] = dy
    blocked.backward(top2, [True], bottom2)
    assert bottom2[0].grad.dtype == np.float32
    np.testing.assert_allclose(bottom2[0].grad, bottom[0].grad, rtol=1e-6, atol=1e-6)


# Stride-1 layers with short output rows and large enough columns run im2col and col2im with images last; the
# others keep images first.
IMAGES_LAST = [
    ("num_output: 6 kernel_size: 3 pad: 1", (3, 3, 5, 6)),
    ("num_output: 8 kernel_size: 3 group: 2", (2, 6, 4, 5)),
    ("num_output: 5 kernel_h: 2 kernel_w: 3 pad_w: 1", (4, 4, 3, 5)),
    ("num_output: 8 kernel_size: 2 pad: 1", (2, 3, 3, 4, 3)),  # three spatial axes
]


@pytest.mark.parametrize("options, shape", IMAGES_LAST)
def test_columns_with_images_last_match_images_first(options, shape, monkeypatch):
    rng = np.random.default_rng(14)
    x = rng.normal(size=shape)
    layers, outputs = [], []
    for widest in (conv_base_module.BATCH_LAST_MAX_WIDTH, 0):
        monkeypatch.setattr(conv_base_module, "BATCH_LAST_MAX_WIDTH", widest)
        layer, bottom, top = make_layer(conv_text(options), [x])
        assert layer._batch_last == bool(widest) and not layer._correlate
        outputs.append(run_forward(layer, bottom, top)[0])
        layers.append((layer, bottom, top))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-12, atol=1e-12)
    dy = rng.normal(size=layers[0][2][0].shape)
    grads = []
    for layer, bottom, top in layers:
        for _ in range(2):  # the second backward finds the first one's sums in the scratch
            top[0].grad[...] = dy
            bottom[0].grad[...] = np.nan
            for p in layer.params:
                p.grad[...] = 0
            layer.backward(top, [True], bottom)
        grads.append([bottom[0].grad.copy()] + [p.grad.copy() for p in layer.params])
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    monkeypatch.setattr(conv_base_module, "BATCH_LAST_MAX_WIDTH", 27)
    layer, bottom, top = make_layer(conv_text(options), [x])
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("options, shape", IMAGES_LAST)
def test_forward_only_images_last_borders_its_scratch_anew_each_pass(options, shape):
    """The bordered images-last copy lives in the shared scratch, which other layers overwrite between passes."""
    rng = np.random.default_rng(15)
    layer, bottom, top = make_layer(conv_text(options), [np.zeros(shape)])
    layer.need_backward = False
    layer.reshape(bottom, top)
    assert layer._batch_last
    weight, bias = layer.params[0].data, layer.params[1].data
    for _ in range(2):
        x = rng.normal(size=shape)
        bottom[0].data[...] = x
        (y,) = run_forward(layer, bottom, top)
        expected = reference(x, weight, bias, layer.pad, layer.stride, layer.dilation, layer.group)
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
        work = layer._work  # still lent to the layer, holding what its forward took
        taken = work._total
        work.lend_to(object()).get("other", (taken,), np.uint8).fill(255)  # another layer's turn: all NaN


@pytest.mark.parametrize("options, shape", [
    ("num_output: 6 kernel_size: 3 stride: 2 pad: 1", (2, 2, 7, 7)),  # strided
    ("num_output: 6 kernel_size: 3 dilation: 2 pad: 2", (2, 2, 7, 7)),
    ("num_output: 6 kernel_size: 3 pad: 1", (2, 2, 3, 28)),  # rows longer than BATCH_LAST_MAX_WIDTH
    ("num_output: 20 kernel_size: 5", (2, 1, 9, 9)),  # LeNet's conv1: columns smaller than the transposes
])
def test_columns_keep_images_first_for_strides_dilation_long_rows_and_few_columns(options, shape):
    layer, _, _ = make_layer(conv_text(options), [np.zeros(shape)])
    assert not layer._batch_last


# Layers with a small weight matrix and small products per image run a product per image (in blocks too).
IMAGE_PRODUCTS = [
    ("num_output: 4 kernel_size: 3 pad: 1", (3, 2, 4, 30), None),
    ("num_output: 3 kernel_size: 3 stride: 2", (3, 2, 7, 7), 2),  # blocks of two images
    ("num_output: 20 kernel_size: 5", (3, 1, 9, 9), None),  # LeNet's conv1
    ("num_output: 3 kernel_size: 2 stride: 2", (2, 2, 4, 4, 4), None),  # three spatial axes
]


@pytest.mark.parametrize("options, shape, block", IMAGE_PRODUCTS)
def test_products_per_image_match_one_product(options, shape, block, monkeypatch):
    rng = np.random.default_rng(15)
    x = rng.normal(size=shape)
    if block:
        column_bytes = shape[1] * 9 * 9 * 8  # C x K x positions, float64
        monkeypatch.setattr(conv_base_module, "COLUMN_BUDGET", block * column_bytes)
    layers, outputs = [], []
    for weights in (conv_base_module.IMAGE_PRODUCTS_MAX_WEIGHTS, 0):
        monkeypatch.setattr(conv_base_module, "IMAGE_PRODUCTS_MAX_WEIGHTS", weights)
        layer, bottom, top = make_layer(conv_text(options), [x])
        assert layer._image_products == bool(weights) and layer.block == (block or shape[0])
        outputs.append(run_forward(layer, bottom, top)[0])
        layers.append((layer, bottom, top))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-12, atol=1e-12)
    dy = rng.normal(size=layers[0][2][0].shape)
    grads = []
    for layer, bottom, top in layers:
        for _ in range(2):  # the weight gradient accumulates; the second pass finds the first one's scratch
            top[0].grad[...] = dy
            bottom[0].grad[...] = np.nan
            layer.backward(top, [True], bottom)
        grads.append([bottom[0].grad.copy()] + [p.grad.copy() for p in layer.params])
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    layer, bottom, top = layers[0]
    for p in layer.params:
        p.grad[...] = 0
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("options, shape, taken", [
    ("num_output: 20 kernel_size: 5", (2, 1, 28, 28), True),  # LeNet's conv1
    ("num_output: 32 kernel_size: 5 pad: 2", (2, 3, 32, 32), False),  # CIFAR-10's conv1: 2.5 M per image
    ("num_output: 64 kernel_size: 3", (2, 8, 4, 4), False),  # 4608 weights
    ("num_output: 4 kernel_size: 3 group: 2", (2, 4, 6, 6), False),
    ("num_output: 50 kernel_size: 5", (2, 20, 12, 12), False),  # LeNet's conv2 runs with images last
])
def test_which_layers_take_products_per_image(options, shape, taken):
    layer, _, _ = make_layer(conv_text(options), [np.zeros(shape)])
    assert layer._image_products == taken


@pytest.mark.parametrize("options, taken", [
    ("num_output: 4 kernel_size: 3 pad: 1", True),
    ("num_output: 5 kernel_size: 3 pad: 1", False),  # more outputs than inputs: the diff's columns are larger
    ("num_output: 2 kernel_size: 3 stride: 2 pad: 1", False),
    ("num_output: 2 kernel_size: 3 dilation: 2 pad: 2", False),
    ("num_output: 2 kernel_size: 3 group: 2 pad: 1", False),
    ("num_output: 2 kernel_size: 3 pad: 3", False),  # pad beyond kernel - 1
])
def test_which_layers_take_the_correlation(options, taken):
    layer, _, _ = make_layer(conv_text(options), [np.zeros((1, 4, 8, 8))])
    assert layer._correlate is taken


def test_float32_stays_float32():
    x = np.random.default_rng(9).normal(size=(2, 4, 8, 8))
    layer, bottom, top = make_layer(conv_text("num_output: 6 kernel_size: 3 pad: 1 group: 2"), [x],
                                    dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32 and all(p.data.dtype == np.float32 for p in layer.params)
    expected = reference(x.astype(np.float32).astype(np.float64), layer.params[0].data.astype(np.float64),
                         layer.params[1].data.astype(np.float64), (1, 1), (1, 1), (1, 1), 2)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    assert bottom[0].grad.dtype == np.float32 and all(p.grad.dtype == np.float32 for p in layer.params)


def test_default_fillers_are_zero_and_xavier_uses_fan_in():
    layer, bottom, top = make_layer(conv_text("num_output: 4 kernel_size: 3", fillers=""), [np.ones((1, 2, 5, 5))])
    assert not any(np.any(p.data) for p in layer.params)
    text = conv_text("num_output: 50 kernel_size: 5", fillers='weight_filler { type: "xavier" }')
    layer, bottom, top = make_layer(text, [np.ones((1, 20, 12, 12))])
    limit = np.sqrt(3.0 / (20 * 5 * 5))
    assert np.abs(layer.params[0].data).max() <= limit and np.abs(layer.params[0].data).max() > 0.9 * limit


# -- Caffe-exact shapes (derived from out = floor((in + 2p - (d(k-1)+1)) / s) + 1) ------------------
@pytest.mark.parametrize(
    "in_shape, options, out_shape",
    [
        ((64, 1, 28, 28), "num_output: 20 kernel_size: 5", (64, 20, 24, 24)),  # LeNet conv1
        ((64, 20, 12, 12), "num_output: 50 kernel_size: 5", (64, 50, 8, 8)),  # LeNet conv2
        ((1, 3, 227, 227), "num_output: 96 kernel_size: 11 stride: 4", (1, 96, 55, 55)),  # AlexNet conv1
        ((1, 96, 27, 27), "num_output: 256 kernel_size: 5 pad: 2 group: 2", (1, 256, 27, 27)),  # AlexNet conv2
        ((1, 256, 13, 13), "num_output: 384 kernel_size: 3 pad: 1", (1, 384, 13, 13)),  # AlexNet conv3
        ((1, 3, 224, 224), "num_output: 64 kernel_size: 7 stride: 2 pad: 3", (1, 64, 112, 112)),  # GoogLeNet conv1
        ((1, 3, 32, 32), "num_output: 32 kernel_size: 5 pad: 2", (1, 32, 32, 32)),  # CIFAR-10 quick conv1
        ((1, 32, 112, 112), "num_output: 32 kernel_size: 3 pad: 1 stride: 2 group: 32", (1, 32, 56, 56)),  # MobileNet
        ((1, 8, 10, 10), "num_output: 8 kernel_size: 3 dilation: 4", (1, 8, 2, 2)),
    ],
)
def test_caffe_output_shapes(in_shape, options, out_shape):
    layer, bottom, top = make_layer(conv_text(options, fillers=""), [np.zeros(in_shape)], dtype=np.float32)
    assert top[0].shape == out_shape
    assert layer.params[0].shape[:2] == (out_shape[1], in_shape[1] // layer.group)


def test_reshape_follows_the_input_but_keeps_channels():
    layer, bottom, top = make_layer(conv_text("num_output: 2 kernel_size: 3 stride: 2"), [np.ones((1, 3, 7, 7))])
    assert top[0].shape == (1, 2, 3, 3)
    bottom[0].reshape(4, 3, 9, 11)
    layer.reshape(bottom, top)
    assert top[0].shape == (4, 2, 4, 5)
    bottom[0].reshape(4, 2, 9, 11)
    with pytest.raises(ShapeError, match="layer 'conv' \\(Convolution\\).*channels"):
        layer.reshape(bottom, top)
    bottom[0].reshape(1, 3, 2, 9)
    with pytest.raises(ShapeError, match="smaller than the kernel"):
        layer.reshape(bottom, top)


def test_the_plan_is_worked_out_again_only_when_the_input_shape_or_need_backward_changes(monkeypatch):
    layer, bottom, top = make_layer(conv_text("num_output: 2 kernel_size: 3"), [np.ones((2, 3, 7, 7))])
    plans = []
    plan = layer._plan
    monkeypatch.setattr(layer, "_plan", lambda b: (plans.append(b[0].shape), plan(b)))
    layer.reshape(bottom, top)
    assert plans == []
    top[0].reshape(1)  # a top reshaped by someone else gets its shape back
    layer.reshape(bottom, top)
    assert top[0].shape == (2, 2, 5, 5) and plans == []
    bottom[0].reshape(4, 3, 9, 9)
    bottom[0].data[...] = np.random.default_rng(16).normal(size=(4, 3, 9, 9))
    layer.reshape(bottom, top)
    assert top[0].shape == (4, 2, 7, 7) and plans == [(4, 3, 9, 9)]
    layer.need_backward = False
    layer.reshape(bottom, top)
    assert plans == [(4, 3, 9, 9)] * 2
    (y,) = run_forward(layer, bottom, top)
    expected = reference(bottom[0].data, layer.params[0].data, layer.params[1].data, (0, 0), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(y, expected, rtol=1e-12)


@pytest.mark.parametrize(
    "options, shape, message",
    [
        ("num_output: 4 kernel_size: 3 group: 2", (1, 3, 5, 5), "3 input channels do not split into 2 groups"),
        ("num_output: 3 kernel_size: 3 group: 2", (1, 4, 5, 5), "num_output 3 does not split into 2 groups"),
        ("num_output: 0 kernel_size: 3", (1, 1, 5, 5), "num_output must be positive"),
        ("num_output: 2 kernel_size: 0", (1, 1, 5, 5), "kernel size must be positive"),
        ("num_output: 2 kernel_size: 3 stride: 0", (1, 1, 5, 5), "stride must be positive"),
        ("num_output: 2", (1, 1, 5, 5), "kernel_size must be given once or once per spatial axis \\(2\\), got 0"),
        ("num_output: 2 kernel_size: [3, 3, 3]", (1, 1, 5, 5), "kernel_size must be given once"),
        ("num_output: 2 pad: [1, 1, 1] kernel_size: 3", (1, 1, 5, 5), "pad must be given once"),
        ("num_output: 2 kernel_size: 3 kernel_h: 3 kernel_w: 3", (1, 1, 5, 5), "give either kernel_size or kernel_h"),
        ("num_output: 2 kernel_h: 3", (1, 1, 5, 5), "kernel size must be positive"),
        ("num_output: 2 kernel_h: 3 kernel_w: 3", (1, 1, 5, 5, 5), "kernel_h/kernel_w need 2 spatial axes"),
        ("num_output: 2 kernel_size: 3 stride_h: 2 stride_w: 2 stride: 1", (1, 1, 5, 5), "give either stride or"),
        ("num_output: 2 kernel_size: 3 group: 0", (1, 1, 5, 5), "group must be positive"),
    ],
)
def test_bad_parameters_are_net_errors_naming_the_layer(options, shape, message):
    with pytest.raises(NetError, match="layer 'conv' \\(Convolution\\): " + message):
        make_layer(conv_text(options, fillers=""), [np.ones(shape)])


def test_no_spatial_axes_is_a_fully_connected_layer_over_channels():
    x = np.random.default_rng(10).normal(size=(3, 4))
    layer, bottom, top = make_layer(conv_text("num_output: 2 kernel_size: 1"), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, x @ layer.params[0].data.T + layer.params[1].data, rtol=1e-12)
    check_gradients(layer, bottom, top)


# -- the depthwise fast path (group == channels): against the general im2col path and the direct sums ----------
# (input shape, num_output, options text, pad, stride, dilation)
DEPTHWISE_CASES = [
    ((2, 3, 6, 7), 3, "kernel_size: 3 pad: 1", 1, 1, 1),  # stride 1: the wide layout
    ((2, 3, 6, 7), 6, "kernel_size: 3 pad: 1", 1, 1, 1),  # two filters per channel
    ((1, 4, 9, 8), 4, "kernel_size: 3 stride: 2 pad: 1", 1, 2, 1),  # strided: exact windows
    ((1, 2, 7, 9), 6, "kernel_size: 3 stride: 2", 0, 2, 1),
    ((2, 2, 9, 9), 4, "kernel_size: 3 dilation: 2 pad: 2", 2, 1, 2),
    ((1, 3, 8, 7), 3, "kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0", (1, 0), (2, 1), 1),
    ((2, 3, 5, 5), 3, "kernel_size: 1", 0, 1, 1),
    ((2, 3, 5, 5), 3, "kernel_size: 1 pad: 1", 1, 1, 1),
    ((2, 2, 4, 6), 2, "kernel_size: 2 stride: 2", 0, 2, 1),  # disjoint windows
    ((2, 3, 5, 6), 3, "kernel_size: [5, 2] pad: [1, 0]", (1, 0), 1, 1),
]


def depthwise_pair(text, x, dtype=np.float64):
    """The same layer (same weights) twice: with the fast path, and forced onto the general path."""
    fast = make_layer(text, [x], dtype=dtype)
    general = make_layer(text, [x], dtype=dtype)
    assert fast[0].depthwise
    general[0].depthwise = False
    return fast, general


def assert_paths_agree(fast, general, rtol=1e-12, atol=1e-12):
    outputs = [run_forward(*layers)[0] for layers in (fast, general)]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=rtol, atol=atol)
    top_grad = np.random.default_rng(11).normal(size=outputs[0].shape)
    grads = []
    for layer, bottom, top in (fast, general):
        top[0].grad[...] = top_grad
        layer.backward(top, [True], bottom)
        grads.append([bottom[0].grad.copy()] + [p.grad.copy() for p in layer.params])
    for got, want in zip(*grads):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    return outputs[0]


def depthwise_id(case):
    return f"{case[0]}-out{case[1]}-{case[2]}".replace(" ", "")


@pytest.mark.parametrize("case", DEPTHWISE_CASES, ids=depthwise_id)
def test_depthwise_fast_path_matches_general_path_and_direct_sums(case):
    shape, num_output, options, pad, stride, dilation = case
    x = np.random.default_rng(12).normal(size=shape)
    text = conv_text(f"num_output: {num_output} group: {shape[1]} {options}")
    fast, general = depthwise_pair(text, x)
    y = assert_paths_agree(fast, general)
    layer = fast[0]
    assert layer.params[0].shape[:2] == (num_output, 1)
    expected = reference(x, layer.params[0].data, layer.params[1].data, per_axis(pad), per_axis(stride),
                         per_axis(dilation), shape[1])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", DEPTHWISE_CASES[:6], ids=depthwise_id)
def test_depthwise_gradients(case):
    shape, num_output, options, *_ = case
    x = np.random.default_rng(13).normal(size=(1,) + shape[1:])
    layer, bottom, top = make_layer(conv_text(f"num_output: {num_output} group: {shape[1]} {options}"), [x])
    assert layer.depthwise
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("options", ["kernel_size: 3 pad: 1", "kernel_size: 3 stride: 2 pad: 1"])
def test_depthwise_row_blocks_give_the_same_result(monkeypatch, options):
    x = np.random.default_rng(14).normal(size=(3, 4, 7, 6))
    text = conv_text(f"num_output: 8 group: 4 {options}")
    whole, general = depthwise_pair(text, x)
    assert len(whole[0]._row_blocks) == 1
    monkeypatch.setattr(conv_base_module, "DEPTHWISE_BLOCK", 50)  # a few (image, channel) rows per block
    blocked, _ = depthwise_pair(text, x)
    assert len(blocked[0]._row_blocks) > 2
    assert_paths_agree(blocked, general)


def test_depthwise_in_one_and_three_spatial_axes():
    for shape, options, pad, dilation in [
        ((2, 3, 9), "kernel_size: 3 pad: 1", (1,), (1,)),
        ((1, 2, 4, 5, 4), "kernel_size: [2, 3, 2] pad: [1, 1, 0] dilation: [1, 1, 2]", (1, 1, 0), (1, 1, 2)),
    ]:
        x = np.random.default_rng(15).normal(size=shape)
        fast, general = depthwise_pair(conv_text(f"num_output: {2 * shape[1]} group: {shape[1]} {options}"), x)
        y = assert_paths_agree(fast, general)
        layer = fast[0]
        expected = reference(x, layer.params[0].data, layer.params[1].data, pad, (1,) * len(pad), dilation, shape[1])
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)
        check_gradients(*make_layer(conv_text(f"num_output: {shape[1]} group: {shape[1]} {options}"), [x]))


def test_depthwise_with_batch_axes_several_bottoms_and_float32():
    rng = np.random.default_rng(16)
    x = rng.normal(size=(2, 3, 4, 5, 6))  # channels on axis 2
    fast, general = depthwise_pair(conv_text("num_output: 4 group: 4 kernel_size: 3 pad: 1 axis: 2"), x)
    assert fast[2][0].shape == (2, 3, 4, 5, 6)
    assert_paths_agree(fast, general)
    xs = [rng.normal(size=(2, 3, 5, 5)) for _ in range(2)]
    text = conv_text("num_output: 3 group: 3 kernel_size: 3 pad: 1", tops=["y0", "y1"])
    layer, bottom, top = make_layer(text, xs)
    assert layer.depthwise
    for x, y in zip(xs, run_forward(layer, bottom, top)):
        expected = reference(x, layer.params[0].data, layer.params[1].data, (1, 1), (1, 1), (1, 1), 3)
        np.testing.assert_allclose(y, expected, rtol=1e-12)
    check_gradients(layer, bottom, top)
    x = rng.normal(size=(2, 8, 9, 9))
    fast, general = depthwise_pair(conv_text("num_output: 8 group: 8 kernel_size: 3 pad: 1"), x, dtype=np.float32)
    y = assert_paths_agree(fast, general, rtol=1e-5, atol=1e-5)
    assert y.dtype == np.float32 and fast[0].params[0].grad.dtype == np.float32 and fast[1][0].grad.dtype == np.float32


def test_only_group_equal_to_channels_takes_the_fast_path():
    for channels, group, expected in [(4, 4, True), (4, 2, False), (1, 1, False), (3, 1, False)]:
        layer, _, _ = make_layer(conv_text(f"num_output: {2 * group} group: {group} kernel_size: 3"),
                                 [np.ones((1, channels, 5, 5))])
        assert layer.depthwise == expected


def test_in_place_is_refused():
    with pytest.raises(NetError, match="layer 'conv' \\(Convolution\\): cannot run in place"):
        make_layer('name: "conv" type: "Convolution" bottom: "x" top: "x" convolution_param { num_output: 2 '
                   'kernel_size: 1 }', [np.ones((1, 2, 3, 3))])


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_only_layers_give_the_same_result_twice(case):
    """A layer a Net never runs backward uses the shared scratch and keeps no padded copy between forwards."""
    layer, bottom, top = make_layer(conv_text(case_options(case)), [np.zeros(case[0])])
    layer.need_backward = False
    for seed in (4, 5):
        x = np.random.default_rng(seed).normal(size=case[0])
        bottom[0].data[...] = x
        (y,) = run_forward(layer, bottom, top)
        check_against_reference(reference, layer, x, y, case)


@pytest.mark.parametrize("case", CASES[:6], ids=case_id)
def test_a_second_backward_recomputes_the_columns_forward_left(case):
    """Backward reuses the columns of the forward before it once; another backward builds them again (same grads)."""
    layer, bottom, top = make_layer(conv_text(case_options(case)), [np.random.default_rng(6).normal(size=case[0])])
    run_forward(layer, bottom, top)
    top[0].grad[...] = np.random.default_rng(7).normal(size=top[0].shape)
    grads = []
    for _ in range(2):
        layer.params[0].grad[...] = 0
        layer.backward(top, [True], bottom)
        grads.append((layer.params[0].grad.copy(), bottom[0].grad.copy()))
    for first, second in zip(*grads):
        np.testing.assert_allclose(second, first, rtol=1e-12)
