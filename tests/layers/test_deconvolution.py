"""Deconvolution: forward against a naive scatter loop, the adjoint of Convolution, bilinear upsampling, gradients."""

import itertools

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from conv_helpers import (
    FILLERS, case_options, check_against_reference, convolution_text, products,  # noqa: F401 (a fixture)
)
from layer_harness import check_gradients, make_layer, run_forward


def deconv_text(options, fillers=FILLERS, tops=None, kind="Deconvolution"):
    return convolution_text("up", kind, options, fillers, tops)


def reference(x, weight, bias, pad, stride, dilation, group):
    """Direct definition, float64: every input cell scatters weight * value to q*s + k*d - p, kept if inside."""
    batch, channels = x.shape[:2]
    spatial = x.shape[2:]
    outputs_per_group = weight.shape[1]
    kernel = weight.shape[2:]
    out_shape = [s * (n - 1) + d * (k - 1) + 1 - 2 * p for n, k, s, p, d in zip(spatial, kernel, stride, pad, dilation)]
    num_output = outputs_per_group * group
    y = np.zeros((batch, num_output, *out_shape))
    channels_per_group = channels // group
    for n, c in itertools.product(range(batch), range(channels)):
        g = c // channels_per_group
        for position in itertools.product(*(range(m) for m in spatial)):
            for o, tap in itertools.product(range(outputs_per_group), itertools.product(*(range(k) for k in kernel))):
                cell = [q * s - p + t * d for q, s, p, t, d in zip(position, stride, pad, tap, dilation)]
                if all(0 <= i < m for i, m in zip(cell, out_shape)):
                    y[(n, g * outputs_per_group + o, *cell)] += x[(n, c, *position)] * weight[(c, o, *tap)]
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * len(spatial))
    return y


# (input shape, num_output, options text, pad, stride, dilation, group, bias)
CASES = [
    ((2, 3, 4, 5), 4, "kernel_size: 3", 0, 1, 1, 1, True),
    ((2, 3, 4, 5), 2, "kernel_size: 4 stride: 2 pad: 1", 1, 2, 1, 1, True),
    ((1, 2, 3, 4), 3, "kernel_size: 3 stride: 3", 0, 3, 1, 1, False),
    ((1, 2, 4, 3), 2, "kernel_size: 3 stride: 2 dilation: 2 pad: 2", 2, 2, 2, 1, True),
    ((2, 4, 3, 4), 6, "kernel_size: 3 stride: 2 group: 2", 0, 2, 1, 2, True),
    ((2, 3, 4, 4), 3, "kernel_size: 4 stride: 2 pad: 1 group: 3", 1, 2, 1, 3, False),  # depthwise upsampling
    ((1, 3, 4, 3), 3, "kernel_size: 3 pad: 1 group: 3", 1, 1, 1, 3, True),  # depthwise, stride 1
    ((1, 3, 3, 3), 6, "kernel_size: 2 stride: 2 group: 3", 0, 2, 1, 3, True),  # 2 outputs per channel
    ((2, 2, 3, 4), 3, "kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0", (1, 0), (2, 1), 1, 1,
     True),
    ((1, 2, 3, 3), 2, "kernel_size: 1 stride: 2", 0, 2, 1, 1, True),
]


def case_id(case):
    return f"{case[0]}-out{case[1]}-{case[2]}-bias{case[7]}".replace(" ", "")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_matches_direct_scatter(case, products):
    shape, num_output, _, _, _, _, group, bias = case
    x = np.random.default_rng(0).normal(size=shape)
    layer, bottom, top = make_layer(deconv_text(case_options(case)), [x])
    assert layer.params[0].shape == (shape[1], num_output // group) + layer.kernel
    assert len(layer.params) == 1 + bias
    (y,) = run_forward(layer, bottom, top)
    check_against_reference(reference, layer, x, y, case)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_gradients(case, products):
    x = np.random.default_rng(1).normal(size=(1,) + case[0][1:])
    layer, bottom, top = make_layer(deconv_text(case_options(case)), [x])
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("options, spatial", [
    ("kernel_size: 3 stride: 2 pad: 1", (9, 7)),
    ("kernel_size: 2 stride: 1 dilation: 2 group: 2", (8, 7)),
    ("kernel_size: 4 stride: 2 pad: 1 group: 4", (8, 6)),  # depthwise on both sides
])
def test_is_the_adjoint_of_convolution_with_the_same_weights(options, spatial):
    """<conv(x), y> = <x, deconv(y)> for a Convolution mapping 4 -> 6 (or 4) channels and a Deconvolution back."""
    rng = np.random.default_rng(2)
    big, small = (4, 4) if "group: 4" in options else (4, 6)
    x = rng.normal(size=(2, big) + spatial)
    conv, c_bottom, c_top = make_layer(deconv_text(f"num_output: {small} bias_term: false {options}",
                                                   kind="Convolution"), [x])
    (cx,) = run_forward(conv, c_bottom, c_top)
    y = rng.normal(size=cx.shape)
    deconv, d_bottom, d_top = make_layer(deconv_text(f"num_output: {big} bias_term: false {options}"), [y])
    assert deconv.params[0].shape == conv.params[0].shape
    deconv.params[0].data[...] = conv.params[0].data
    (dy,) = run_forward(deconv, d_bottom, d_top)
    assert dy.shape == x.shape
    np.testing.assert_allclose(np.sum(cx * y), np.sum(x * dy), rtol=1e-12)


def test_three_spatial_axes_and_batch_axes():
    x = np.random.default_rng(3).normal(size=(1, 2, 3, 2, 3))
    options = "num_output: 3 kernel_size: [2, 3, 2] stride: [2, 1, 2] pad: [0, 1, 1]"
    layer, bottom, top = make_layer(deconv_text(options), [x])
    assert layer.params[0].shape == (2, 3, 2, 3, 2)
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(
        y, reference(x, layer.params[0].data, layer.params[1].data, (0, 1, 1), (2, 1, 2), (1, 1, 1), 1), rtol=1e-12)
    check_gradients(layer, bottom, top)
    x = np.random.default_rng(4).normal(size=(2, 3, 2, 3, 2))  # channels on axis 2
    layer, bottom, top = make_layer(deconv_text("num_output: 2 kernel_size: 2 stride: 2 axis: 2"), [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == (2, 3, 2, 6, 4)
    flat = reference(x.reshape(6, 2, 3, 2), layer.params[0].data, layer.params[1].data, (0, 0), (2, 2), (1, 1), 1)
    np.testing.assert_allclose(y, flat.reshape(y.shape), rtol=1e-12)
    check_gradients(layer, bottom, top)


def test_several_bottoms_share_the_weights():
    rng = np.random.default_rng(5)
    xs = [rng.normal(size=(1, 2, 3, 3)) for _ in range(2)]
    layer, bottom, top = make_layer(deconv_text("num_output: 2 kernel_size: 3 stride: 2", tops=["a", "b"]), xs)
    for x, y in zip(xs, run_forward(layer, bottom, top)):
        expected = reference(x, layer.params[0].data, layer.params[1].data, (0, 0), (2, 2), (1, 1), 1)
        np.testing.assert_allclose(y, expected, rtol=1e-12)
    check_gradients(layer, bottom, top)


def half_pixel_bilinear(x, factor):
    """Bilinear upsampling by an integer factor, source coordinate (i + 1/2) / factor - 1/2 (computed per cell)."""
    height, width = x.shape[-2:]
    y = np.zeros(x.shape[:-2] + (height * factor, width * factor))
    for i, j in itertools.product(range(height * factor), range(width * factor)):
        u, v = (i + 0.5) / factor - 0.5, (j + 0.5) / factor - 0.5
        i0, j0 = int(np.floor(u)), int(np.floor(v))
        a, b = u - i0, v - j0
        for di, dj, w in ((0, 0, (1 - a) * (1 - b)), (0, 1, (1 - a) * b), (1, 0, a * (1 - b)), (1, 1, a * b)):
            ii, jj = min(max(i0 + di, 0), height - 1), min(max(j0 + dj, 0), width - 1)
            y[..., i, j] += w * x[..., ii, jj]
    return y


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_bilinear_filler_makes_a_bilinear_upsampling_layer(factor):
    """FCN's upsampling: kernel 2f - f%2, stride f, pad ceil((f-1)/2), group = channels, weights from 'bilinear'."""
    kernel, pad = 2 * factor - factor % 2, int(np.ceil((factor - 1) / 2))
    x = np.random.default_rng(6).normal(size=(2, 3, 5, 6))
    text = deconv_text(f"num_output: 3 group: 3 kernel_size: {kernel} stride: {factor} pad: {pad} bias_term: false",
                       fillers='weight_filler { type: "bilinear" }')
    layer, bottom, top = make_layer(text, [x])
    assert layer.depthwise and layer.params[0].shape == (3, 1, kernel, kernel)
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == (2, 3, 5 * factor, 6 * factor)
    # Away from the border (where the deconvolution sees zeros beyond the input) it is exact bilinear interpolation.
    inner = (Ellipsis, slice(factor, -factor), slice(factor, -factor))
    np.testing.assert_allclose(y[inner], half_pixel_bilinear(x, factor)[inner], rtol=1e-12, atol=1e-12)
    # A constant image stays constant inside.
    (flat,) = run_forward(layer, [type(bottom[0]).from_array(np.ones_like(x), dtype=np.float64)], top)
    np.testing.assert_allclose(flat[inner], 1.0, rtol=1e-12)


def test_depthwise_fast_path_matches_general_path():
    """Depthwise here means one column-side (top) channel per group: group == num_output."""
    x = np.random.default_rng(7).normal(size=(2, 4, 5, 6))
    for options in ["num_output: 4 group: 4 kernel_size: 4 stride: 2 pad: 1",
                    "num_output: 4 group: 4 kernel_size: 3 pad: 1 dilation: 2",
                    "num_output: 2 group: 2 kernel_size: 3 stride: 2"]:
        results = []
        for fast in (True, False):
            layer, bottom, top = make_layer(deconv_text(options), [x])
            assert layer.depthwise
            layer.depthwise = fast
            (y,) = run_forward(layer, bottom, top)
            top[0].grad[...] = np.random.default_rng(8).normal(size=y.shape)
            layer.backward(top, [True], bottom)
            results.append([y, bottom[0].grad.copy()] + [p.grad.copy() for p in layer.params])
        for got, want in zip(*results):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert not make_layer(deconv_text("num_output: 8 group: 4 kernel_size: 3"), [x])[0].depthwise


def test_propagate_down_false_still_accumulates_param_grads():
    x = np.random.default_rng(9).normal(size=(2, 2, 3, 3))
    layer, bottom, top = make_layer(deconv_text("num_output: 3 kernel_size: 2 stride: 2"), [x])
    run_forward(layer, bottom, top)
    top[0].grad[...] = np.random.default_rng(10).normal(size=top[0].shape)
    layer.backward(top, [True], bottom)
    once = [p.grad.copy() for p in layer.params]
    bottom[0].grad[...] = 7
    layer.backward(top, [False], bottom)
    assert np.all(bottom[0].grad == 7)
    for p, g in zip(layer.params, once):
        np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-12)
    np.testing.assert_allclose(once[1], top[0].grad.sum(axis=(0, 2, 3)), rtol=1e-12)


def test_float32_stays_float32():
    x = np.random.default_rng(11).normal(size=(2, 4, 4, 4))
    layer, bottom, top = make_layer(deconv_text("num_output: 6 kernel_size: 4 stride: 2 pad: 1 group: 2"), [x],
                                    dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32
    expected = reference(x.astype(np.float32).astype(np.float64), layer.params[0].data.astype(np.float64),
                         layer.params[1].data.astype(np.float64), (1, 1), (2, 2), (1, 1), 2)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    assert bottom[0].grad.dtype == np.float32 and all(p.grad.dtype == np.float32 for p in layer.params)


@pytest.mark.parametrize(
    "in_shape, options, out_shape",
    [
        ((1, 21, 16, 16), "num_output: 21 kernel_size: 64 stride: 32 bias_term: false", (1, 21, 544, 544)),  # FCN-32s
        ((1, 21, 34, 34), "num_output: 21 kernel_size: 4 stride: 2 bias_term: false", (1, 21, 70, 70)),  # FCN-16s
        ((1, 8, 7, 9), "num_output: 4 kernel_size: 3 stride: 2 pad: 1", (1, 4, 13, 17)),
        ((1, 8, 7, 9), "num_output: 4 kernel_size: 3 dilation: 3", (1, 4, 13, 15)),
    ],
)
def test_caffe_output_shapes(in_shape, options, out_shape):
    layer, bottom, top = make_layer(deconv_text(options, fillers=""), [np.zeros(in_shape)], dtype=np.float32)
    assert top[0].shape == out_shape


def test_reshape_follows_the_input_and_rejects_empty_outputs():
    layer, bottom, top = make_layer(deconv_text("num_output: 2 kernel_size: 3 stride: 2"), [np.ones((1, 3, 4, 4))])
    assert top[0].shape == (1, 2, 9, 9)
    bottom[0].reshape(2, 3, 5, 6)
    layer.reshape(bottom, top)
    assert top[0].shape == (2, 2, 11, 13)
    bottom[0].reshape(2, 4, 5, 6)
    with pytest.raises(ShapeError, match="layer 'up' \\(Deconvolution\\).*channels"):
        layer.reshape(bottom, top)
    with pytest.raises(ShapeError, match="empty output"):
        make_layer(deconv_text("num_output: 2 kernel_size: 1 pad: 1"), [np.ones((1, 1, 2, 2))])


@pytest.mark.parametrize(
    "options, shape, message",
    [
        ("num_output: 4 kernel_size: 3 group: 2", (1, 3, 5, 5), "3 input channels do not split into 2 groups"),
        ("num_output: 3 kernel_size: 3 group: 2", (1, 4, 5, 5), "num_output 3 does not split into 2 groups"),
        ("num_output: 0 kernel_size: 3", (1, 1, 5, 5), "num_output must be positive"),
        ("num_output: 2", (1, 1, 5, 5), "kernel_size must be given once"),
        ("num_output: 2 kernel_size: 3 stride: 0", (1, 1, 5, 5), "stride must be positive"),
    ],
)
def test_bad_parameters_are_net_errors_naming_the_layer(options, shape, message):
    with pytest.raises(NetError, match="layer 'up' \\(Deconvolution\\): " + message):
        make_layer(deconv_text(options, fillers=""), [np.ones(shape)])


def test_bottom_and_top_counts_must_match():
    with pytest.raises(NetError, match="as many tops as bottoms"):
        make_layer(deconv_text("num_output: 2 kernel_size: 1", tops=["a", "b"]), [np.ones((1, 1, 2, 2))])


def test_in_place_is_refused():
    with pytest.raises(NetError, match="layer 'up' \\(Deconvolution\\): cannot run in place"):
        make_layer('name: "up" type: "Deconvolution" bottom: "x" top: "x" convolution_param { num_output: 2 '
                   'kernel_size: 1 }', [np.ones((1, 2, 3, 3))])
