"""Im2col: columns against Caffe's im2col written as plain loops (2-D, 1-D, 3-D, axis), gradients, errors."""

import itertools

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from layer_harness import check_gradients, make_layer, run_forward


def im2col_text(options):
    return f'name: "i2c" type: "Im2col" convolution_param {{ {options} }}'


def reference(x, axis, kernel, stride, pad, dilation):
    """Row c*K + k (k over kernel positions, last axis fastest), column p: x at p*stride - pad + k*dilation, or 0."""
    lead, channels, spatial = x.shape[:axis], x.shape[axis], x.shape[axis + 1:]
    out = [(n + 2 * p - (d * (k - 1) + 1)) // s + 1 for n, k, s, p, d in zip(spatial, kernel, stride, pad, dilation)]
    positions = list(itertools.product(*(range(k) for k in kernel)))
    y = np.zeros(lead + (channels * len(positions),) + tuple(out))
    for batch in np.ndindex(*lead):
        for c in range(channels):
            for r, k in enumerate(positions):
                for p in np.ndindex(*out):
                    cell = [pi * s - pd + ki * d for pi, s, pd, ki, d in zip(p, stride, pad, k, dilation)]
                    if all(0 <= v < n for v, n in zip(cell, spatial)):
                        y[batch + (c * len(positions) + r,) + p] = x[batch + (c,) + tuple(cell)]
    return y


CASES = [
    # (input shape, options, axis, kernel, stride, pad, dilation)
    ((2, 3, 5, 4), "kernel_size: 3", 1, (3, 3), (1, 1), (0, 0), (1, 1)),
    ((2, 2, 5, 6), "kernel_size: 3 stride: 2 pad: 1", 1, (3, 3), (2, 2), (1, 1), (1, 1)),
    ((1, 2, 6, 5), "kernel_h: 2 kernel_w: 3 stride_h: 1 stride_w: 2 pad_h: 0 pad_w: 2", 1, (2, 3), (1, 2), (0, 2),
     (1, 1)),
    ((2, 2, 7, 7), "kernel_size: 3 dilation: 2 pad: 1", 1, (3, 3), (1, 1), (1, 1), (2, 2)),
    ((2, 1, 4, 4), "kernel_size: 2 stride: 2", 1, (2, 2), (2, 2), (0, 0), (1, 1)),
    ((2, 3, 7), "kernel_size: 3 stride: 2 pad: 1", 1, (3,), (2,), (1,), (1,)),
    ((1, 2, 4, 3, 5), "kernel_size: 2 kernel_size: 1 kernel_size: 3 pad: 1 stride: 1 stride: 2 stride: 1", 1,
     (2, 1, 3), (1, 2, 1), (1, 1, 1), (1, 1, 1)),
    ((2, 2, 3, 4, 4), "axis: 2 kernel_size: 2 force_nd_im2col: true", 2, (2, 2), (1, 1), (0, 0), (1, 1)),
]


@pytest.mark.parametrize("shape, options, axis, kernel, stride, pad, dilation", CASES)
def test_forward_matches_loops(shape, options, axis, kernel, stride, pad, dilation):
    x = np.random.default_rng(0).normal(size=shape)
    layer, bottom, top = make_layer(im2col_text(options), [x])
    (y,) = run_forward(layer, bottom, top)
    expected = reference(x, axis, kernel, stride, pad, dilation)
    assert y.shape == expected.shape
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("options, shape", [
    ("kernel_size: 3 stride: 2 pad: 1", (2, 2, 5, 4)),
    ("kernel_size: 2 stride: 2", (1, 2, 4, 4)),
    ("kernel_size: 2 dilation: 2 pad: 1", (1, 2, 4, 3)),
    ("kernel_size: 3 pad: 2", (2, 2, 4)),
])
def test_gradients(options, shape):
    layer, bottom, top = make_layer(im2col_text(options), [np.random.default_rng(1).normal(size=shape)])
    check_gradients(layer, bottom, top)


def test_float32_and_a_new_input_size():
    layer, bottom, top = make_layer(im2col_text("kernel_size: 2"), [np.ones((1, 1, 3, 3))], dtype=np.float32)
    bottom[0].reshape(2, 1, 4, 5)
    bottom[0].data[...] = np.arange(40, dtype=np.float32).reshape(2, 1, 4, 5)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32 and y.shape == (2, 4, 3, 4)
    np.testing.assert_array_equal(y, reference(bottom[0].data, 1, (2, 2), (1, 1), (0, 0), (1, 1)))


@pytest.mark.parametrize("options, shape, error, message", [
    ("stride: 1", (1, 1, 4, 4), NetError, "kernel_size must be given"),
    ("kernel_size: 2 kernel_size: 2 kernel_size: 2", (1, 1, 4, 4), NetError, "kernel_size"),
    ("kernel_h: 2 kernel_w: 2", (1, 1, 4), NetError, "kernel_h/kernel_w need 2 spatial axes"),
    ("kernel_size: 0", (1, 1, 4, 4), NetError, "kernel size must be positive"),
    ("kernel_size: 5", (1, 1, 4, 4), ShapeError, "smaller than the kernel extent"),
    ("axis: 1 kernel_size: 1", (2, 3), ShapeError, "no spatial axis"),
])
def test_bad_configurations(options, shape, error, message):
    with pytest.raises(error, match=message) as raised:
        make_layer(im2col_text(options), [np.zeros(shape)])
    assert "layer 'i2c' (Im2col)" in str(raised.value)
