"""Pooling: MAX/AVE against a loop over output cells that follows Caffe's window rules, Caffe's own example values,
the argmax top, STOCHASTIC sampling, gradients, and the output shapes of well-known nets."""

import itertools
import math

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from caffelite.layers import pooling
from caffelite.phase import TEST, TRAIN
from layer_harness import check_gradients, make_layer, run_forward

FLT_MAX = float(np.finfo(np.float32).max)


def pool_text(options, tops=None):
    names = "".join(f'top: "{name}" ' for name in tops or [])
    return f'name: "pool" type: "Pooling" {names}pooling_param {{ {options} }}'


def pooled_size(size, kernel, stride, pad, ceil):
    out = (math.ceil if ceil else math.floor)((size + 2 * pad - kernel) / stride) + 1
    if pad > 0 and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def reference(x, method, kernel, stride, pad, ceil=True):
    """One output cell at a time, float64. MAX: strict `>` scan from -FLT_MAX (first max wins, padding never does),
    mask = h * W + w or -1. AVE: sum of in-input cells / window size clipped to H + pad."""
    batch, channels, height, width = x.shape
    out_h = pooled_size(height, kernel[0], stride[0], pad[0], ceil)
    out_w = pooled_size(width, kernel[1], stride[1], pad[1], ceil)
    y = np.zeros((batch, channels, out_h, out_w))
    mask = np.full(y.shape, -1.0)
    for n, c, ph, pw in itertools.product(range(batch), range(channels), range(out_h), range(out_w)):
        h0, w0 = ph * stride[0] - pad[0], pw * stride[1] - pad[1]
        rows = range(max(h0, 0), min(h0 + kernel[0], height))
        cols = range(max(w0, 0), min(w0 + kernel[1], width))
        if method == "MAX":
            best = -FLT_MAX
            for h, w in itertools.product(rows, cols):
                if x[n, c, h, w] > best:
                    best, mask[n, c, ph, pw] = x[n, c, h, w], h * width + w
            y[n, c, ph, pw] = best
        else:
            area = (min(h0 + kernel[0], height + pad[0]) - h0) * (min(w0 + kernel[1], width + pad[1]) - w0)
            total = sum(x[n, c, h, w] for h, w in itertools.product(rows, cols))
            y[n, c, ph, pw] = total / area if area else math.nan  # C's float 0/0 for a window past the input
    return y, mask


def distinct_values(shape, seed=0):
    """Values at least 0.01 apart, so finite differences never cross a tie."""
    rng = np.random.default_rng(seed)
    return (rng.permutation(int(np.prod(shape))) * 0.01 + rng.uniform(0, 0.002, size=int(np.prod(shape))) - 1).reshape(
        shape
    )


# (input shape, kernel (h, w), stride (h, w), pad (h, w), ceil)
CASES = [
    ((2, 3, 6, 5), (2, 2), (2, 2), (0, 0), True),  # ceil: the last column window overhangs
    ((1, 2, 6, 6), (3, 3), (2, 2), (0, 0), True),
    ((1, 2, 6, 6), (3, 3), (2, 2), (0, 0), False),
    ((2, 2, 5, 5), (2, 2), (2, 2), (1, 1), True),  # a last window starting in the padding is dropped
    ((2, 3, 6, 5), (3, 3), (1, 1), (1, 1), True),
    ((1, 2, 7, 6), (3, 2), (2, 1), (1, 0), True),  # rectangular
    ((1, 2, 7, 7), (3, 3), (3, 3), (1, 1), True),
    ((1, 2, 7, 7), (3, 3), (2, 2), (1, 1), False),
    ((1, 2, 5, 6), (2, 3), (3, 2), (0, 0), True),
    ((2, 2, 4, 4), (1, 1), (2, 2), (0, 0), True),
    ((1, 2, 5, 5), (5, 5), (1, 1), (0, 0), True),  # a single window
]


def case_options(kernel, stride, pad, ceil):
    text = f"kernel_h: {kernel[0]} kernel_w: {kernel[1]} stride_h: {stride[0]} stride_w: {stride[1]} "
    text += f"pad_h: {pad[0]} pad_w: {pad[1]} round_mode: {'CEIL' if ceil else 'FLOOR'}"
    return text


@pytest.mark.parametrize("case", CASES, ids=str)
def test_max_and_argmax_match_the_reference(case):
    shape, kernel, stride, pad, ceil = case
    x = np.random.default_rng(0).integers(-3, 4, size=shape).astype(float)  # small integers: many ties
    layer, bottom, top = make_layer(pool_text("pool: MAX " + case_options(*case[1:]), tops=["y", "mask"]), [x])
    y, mask = run_forward(layer, bottom, top)
    expected, expected_mask = reference(x, "MAX", kernel, stride, pad, ceil)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(mask, expected_mask)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_average_matches_the_reference(case):
    shape, kernel, stride, pad, ceil = case
    x = np.random.default_rng(1).normal(size=shape)
    layer, bottom, top = make_layer(pool_text("pool: AVE " + case_options(*case[1:])), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, reference(x, "AVE", kernel, stride, pad, ceil)[0], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("case", CASES[:9], ids=str)
@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_gradients(case, method):
    shape, *options = case
    shape = (1, 2) + shape[2:]
    layer, bottom, top = make_layer(pool_text(f"pool: {method} " + case_options(*options)), [distinct_values(shape)])
    check_gradients(layer, bottom, top)


def test_max_gradient_with_the_mask_top():
    x = distinct_values((2, 2, 5, 4), seed=3)
    layer, bottom, top = make_layer(pool_text("pool: MAX kernel_size: 3 stride: 2 pad: 1", tops=["y", "m"]), [x])
    check_gradients(layer, bottom, top)


# -- Caffe's own test values (src/caffe/test/test_pooling_layer.cpp), derived by hand ---------------
def test_caffe_max_square_example():
    x = np.array([[1, 2, 5, 2, 3], [9, 4, 1, 4, 8], [1, 2, 5, 2, 3]], float)
    layer, bottom, top = make_layer(pool_text("pool: MAX kernel_size: 2", tops=["y", "mask"]),
                                    [np.tile(x, (2, 2, 1, 1))])
    y, mask = run_forward(layer, bottom, top)
    assert y.shape == mask.shape == (2, 2, 2, 4)
    np.testing.assert_array_equal(y, np.tile([[9, 5, 5, 8], [9, 5, 5, 8]], (2, 2, 1, 1)))
    np.testing.assert_array_equal(mask, np.tile([[5, 2, 2, 9], [5, 12, 12, 9]], (2, 2, 1, 1)))


def test_caffe_max_padded_example():
    x = np.array([[[[1, 2, 4], [2, 3, 2], [4, 2, 1]]]], float)
    layer, bottom, top = make_layer(pool_text("pool: MAX kernel_size: 3 stride: 2 pad: 2"), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, [[[[1, 4, 4], [4, 4, 4], [4, 4, 1]]]])


def test_caffe_average_padded_example():
    # Corners see 4 cells of 2 over an area of 9 (padding counts), edges 6 cells, the centre 9.
    x = np.full((1, 1, 3, 3), 2.0)
    layer, bottom, top = make_layer(pool_text("pool: AVE kernel_size: 3 stride: 1 pad: 1"), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y[0, 0], [[8 / 9, 4 / 3, 8 / 9], [4 / 3, 2, 4 / 3], [8 / 9, 4 / 3, 8 / 9]], rtol=1e-15)


def test_average_divisor_ignores_overhang_past_the_padding():
    # H = 6, k 3, s 2, no pad, ceil: windows start at 0, 2, 4; the last covers rows 4, 5 and divides by 2 (not 3).
    x = np.arange(36.0).reshape(1, 1, 6, 6)
    layer, bottom, top = make_layer(pool_text("pool: AVE kernel_size: 3 stride: 2"), [x])
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == (1, 1, 3, 3)
    assert y[0, 0, 2, 2] == np.mean(x[0, 0, 4:6, 4:6])
    assert y[0, 0, 0, 2] == x[0, 0, 0:3, 4:6].sum() / 6


# -- MAX details ------------------------------------------------------------------------------------
def test_ties_go_to_the_first_cell_in_scan_order_forward_and_backward():
    layer, bottom, top = make_layer(pool_text("pool: MAX kernel_size: 2 stride: 1", tops=["y", "m"]),
                                    [np.ones((1, 1, 3, 3))])
    _, mask = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(mask[0, 0], [[0, 1], [3, 4]])
    top[0].grad[...] = 1
    bottom[0].grad[...] = 5
    layer.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].grad[0, 0], [[1, 1, 0], [1, 1, 0], [0, 0, 0]])


def test_nan_never_wins_and_an_all_lowest_window_has_no_argmax():
    x = np.array([[[[np.nan, 1.0], [-np.inf, -FLT_MAX]]]])
    layer, bottom, top = make_layer(pool_text("pool: MAX kernel_size: 1", tops=["y", "m"]), [x])
    y, mask = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y[0, 0], [[-FLT_MAX, 1], [-FLT_MAX, -FLT_MAX]])
    np.testing.assert_array_equal(mask[0, 0], [[-1, 1], [-1, -1]])
    top[0].grad[...] = 1
    layer.backward(top, [True, False], bottom)
    np.testing.assert_array_equal(bottom[0].grad[0, 0], [[0, 1], [0, 0]])


def test_window_wholly_past_the_input():
    # H = W = 5, k 1, s 3, ceil: windows start at 0, 3, 6; the last one holds no input cell.
    x = np.arange(1.0, 26.0).reshape(1, 1, 5, 5)
    layer, bottom, top = make_layer(pool_text("pool: MAX kernel_size: 1 stride: 3", tops=["y", "m"]), [x])
    y, mask = run_forward(layer, bottom, top)
    assert y.shape == (1, 1, 3, 3)
    assert y[0, 0, 2, 2] == -FLT_MAX and mask[0, 0, 2, 2] == -1
    assert y[0, 0, 1, 1] == x[0, 0, 3, 3] and mask[0, 0, 1, 1] == 18
    layer, bottom, top = make_layer(pool_text("pool: AVE kernel_size: 1 stride: 3"), [x])
    (y,) = run_forward(layer, bottom, top)
    assert y[0, 0, 2, 2] == 0 and y[0, 0, 1, 1] == x[0, 0, 3, 3]


def test_backward_survives_an_in_place_change_of_the_top():
    x = distinct_values((2, 3, 6, 6), seed=4)
    layer, bottom, top = make_layer(pool_text("pool: MAX kernel_size: 3 stride: 2 pad: 1"), [x])
    (y,) = run_forward(layer, bottom, top)
    top[0].data[...] = np.maximum(top[0].data, 0)  # as a ReLU working in place on this top would
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    _, mask = reference(x, "MAX", (3, 3), (2, 2), (1, 1))
    expected = np.zeros(x.size)
    np.add.at(expected, (mask.reshape(2, 3, -1) + 36 * np.arange(6).reshape(2, 3, 1)).astype(int).ravel(), 1)
    np.testing.assert_array_equal(bottom[0].grad, expected.reshape(x.shape))


def test_float32_stays_float32():
    x = np.random.default_rng(5).normal(size=(2, 3, 7, 7))
    for method in ("MAX", "AVE"):
        layer, bottom, top = make_layer(pool_text(f"pool: {method} kernel_size: 3 stride: 2 pad: 1"), [x],
                                        dtype=np.float32)
        (y,) = run_forward(layer, bottom, top)
        expected = reference(x.astype(np.float32).astype(float), method, (3, 3), (2, 2), (1, 1))[0]
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)
        top[0].grad[...] = 1
        layer.backward(top, [True], bottom)
        assert bottom[0].grad.dtype == np.float32


# -- global pooling -----------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_global_pooling(method):
    x = distinct_values((2, 3, 5, 4), seed=6)
    layer, bottom, top = make_layer(pool_text(f"pool: {method} global_pooling: true"), [x])
    (y,) = run_forward(layer, bottom, top)
    expected = x.max(axis=(2, 3)) if method == "MAX" else x.mean(axis=(2, 3))
    np.testing.assert_allclose(y.reshape(2, 3), expected, rtol=1e-13)
    check_gradients(layer, bottom, top)
    bottom[0].reshape(2, 3, 7, 6)  # the kernel follows the input
    layer.reshape(bottom, top)
    assert top[0].shape == (2, 3, 1, 1)


# -- STOCHASTIC -----------------------------------------------------------------------------------------
def test_stochastic_train_samples_in_proportion_to_the_values():
    window = np.array([[1.0, 2.0], [3.0, 4.0]])
    x = np.tile(window, (1, 4000, 1, 1))
    layer, bottom, top = make_layer(pool_text("pool: STOCHASTIC kernel_size: 2 stride: 2"), [x], phase=TRAIN)
    (y,) = run_forward(layer, bottom, top, seed=3)
    counts = np.array([(y == v).sum() for v in (1, 2, 3, 4)])
    assert counts.sum() == 4000
    np.testing.assert_allclose(counts / 4000, [0.1, 0.2, 0.3, 0.4], atol=0.03)
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    # The gradient lands on the sampled cell only.
    np.testing.assert_array_equal(bottom[0].grad.reshape(4000, 4), (y.reshape(4000, 1) == window.ravel()))


def test_stochastic_train_picks_cells_of_its_window_and_is_seeded():
    x = np.random.default_rng(7).uniform(0.1, 1, size=(2, 2, 7, 6))
    layer, bottom, top = make_layer(pool_text("pool: STOCHASTIC kernel_size: 3 stride: 2"), [x], phase=TRAIN)
    (y,) = run_forward(layer, bottom, top, seed=1)
    (again,) = run_forward(layer, bottom, top, seed=1)
    np.testing.assert_array_equal(y, again)
    for n, c, ph, pw in itertools.product(range(2), range(2), range(3), range(3)):
        assert y[n, c, ph, pw] in x[n, c, 2 * ph:2 * ph + 3, 2 * pw:2 * pw + 3]
    check_gradients(layer, bottom, top)


def test_stochastic_test_is_the_value_weighted_average():
    x = np.random.default_rng(8).uniform(0.1, 1, size=(2, 2, 5, 5))
    x[0, 0, :3, :3] = 0  # a window summing to 0 gives 0
    layer, bottom, top = make_layer(pool_text("pool: STOCHASTIC kernel_size: 3 stride: 2"), [x], phase=TEST)
    (y,) = run_forward(layer, bottom, top)
    for n, c, ph, pw in itertools.product(range(2), range(2), range(2), range(2)):
        window = x[n, c, 2 * ph:2 * ph + 3, 2 * pw:2 * pw + 3]
        expected = (window ** 2).sum() / window.sum() if window.sum() > 0 else 0
        assert y[n, c, ph, pw] == pytest.approx(expected, rel=1e-13)
    bottom[0].data[0, 0, :3, :3] = 0.5  # keep away from the kink at a zero sum
    check_gradients(layer, bottom, top)


# -- shapes of well-known nets (from out = ceil((H + 2p - k) / s) + 1) ----------------------------------
@pytest.mark.parametrize(
    "size, options, out",
    [
        (24, "kernel_size: 2 stride: 2", 12),  # LeNet pool1
        (8, "kernel_size: 2 stride: 2", 4),  # LeNet pool2
        (55, "kernel_size: 3 stride: 2", 27),  # AlexNet pool1
        (27, "kernel_size: 3 stride: 2", 13),  # AlexNet pool2
        (13, "kernel_size: 3 stride: 2", 6),  # AlexNet pool5
        (112, "kernel_size: 3 stride: 2", 56),  # GoogLeNet pool1/3x3_s2 (ceil; floor would give 55)
        (112, "kernel_size: 3 stride: 2 round_mode: FLOOR", 55),
        (56, "kernel_size: 3 stride: 2", 28),  # GoogLeNet pool2/3x3_s2
        (28, "kernel_size: 3 stride: 1 pad: 1", 28),  # GoogLeNet inception pool
        (14, "kernel_size: 3 stride: 2", 7),  # GoogLeNet pool4/3x3_s2
        (7, "kernel_size: 7 stride: 1", 1),  # GoogLeNet pool5/7x7_s1
        (32, "kernel_size: 3 stride: 2", 16),  # CIFAR-10 quick pool1
        (5, "kernel_size: 2 stride: 2 pad: 1", 3),  # ceil gives 4, whose start (6) is past H + pad: dropped
    ],
)
def test_caffe_output_shapes(size, options, out):
    layer, bottom, top = make_layer(pool_text(f"pool: MAX {options}"), [np.zeros((1, 2, size, size))])
    assert top[0].shape == (1, 2, out, out)


@pytest.mark.parametrize(
    "options, message",
    [
        ("global_pooling: true kernel_size: 2", "global_pooling takes its kernel from the input"),
        ("kernel_h: 2", "give kernel_size, or both kernel_h and kernel_w"),
        ("kernel_size: 2 kernel_h: 2 kernel_w: 2", "give kernel_size, or both kernel_h and kernel_w"),
        ("", "give kernel_size, or both kernel_h and kernel_w"),
        ("kernel_size: 2 pad_h: 1", "give pad, or both pad_h and pad_w"),
        ("kernel_size: 2 pad: 1 pad_h: 1 pad_w: 1", "give pad, or both pad_h and pad_w"),
        ("kernel_size: 2 stride_w: 1", "give stride, or both stride_h and stride_w"),
        ("kernel_size: 0", "kernel size must be positive"),
        ("kernel_size: 2 stride: 0", "stride must be positive"),
        ("kernel_size: 2 pad: 2", "pad \\[2, 2\\] must be smaller than kernel"),
        ("pool: STOCHASTIC kernel_size: 3 pad: 1", "padding is implemented only for MAX and AVE"),
        ("global_pooling: true stride: 2", "global_pooling allows only pad 0 and stride 1"),
    ],
)
def test_bad_parameters_are_net_errors_naming_the_layer(options, message):
    with pytest.raises(NetError, match="layer 'pool' \\(Pooling\\): " + message):
        make_layer(pool_text(options), [np.ones((1, 1, 4, 4))])


def test_only_max_may_have_a_mask_top():
    make_layer(pool_text("pool: MAX kernel_size: 2", tops=["y", "m"]), [np.ones((1, 1, 4, 4))])
    with pytest.raises(NetError, match="expects at most 1 top"):
        make_layer(pool_text("pool: AVE kernel_size: 2", tops=["y", "m"]), [np.ones((1, 1, 4, 4))])


def test_input_must_be_4d_and_large_enough():
    with pytest.raises(ShapeError, match="layer 'pool' \\(Pooling\\): input must have 4 axes"):
        make_layer(pool_text("kernel_size: 2"), [np.ones((1, 4, 4))])
    with pytest.raises(ShapeError, match="does not fit"):
        make_layer(pool_text("kernel_size: 5 round_mode: FLOOR"), [np.ones((1, 1, 4, 4))])


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_forward_only_layers_give_the_same_result_twice(case, method):
    """A layer a Net never runs backward shares its scratch and rebuilds its bordered input on every forward."""
    shape, kernel, stride, pad, ceil = case
    first, second = (np.random.default_rng(seed).normal(size=shape) for seed in (2, 3))
    layer, bottom, top = make_layer(pool_text(f"pool: {method} " + case_options(*case[1:])), [first])
    layer.need_backward = False
    for x in (first, second):
        bottom[0].data[...] = x
        (y,) = run_forward(layer, bottom, top)
        expected = reference(x, method, kernel, stride, pad, ceil)[0]
        np.testing.assert_allclose(y, expected, rtol=1e-13, atol=1e-15)


# -- one window per map, read straight from the input ---------------------------------------------------------
SINGLE_WINDOWS = [("global_pooling: true", (2, 3, 5, 4)), ("kernel_size: 3 stride: 3 round_mode: FLOOR", (1, 2, 4, 4)),
                  ("kernel_h: 7 kernel_w: 2 stride: 1", (2, 2, 7, 2))]


@pytest.mark.parametrize("options, shape", SINGLE_WINDOWS)
@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("need_backward", [False, True])
def test_single_window_in_float32_is_caffes_sum_in_scan_order(options, shape, method, need_backward):
    x = np.random.default_rng(7).normal(size=shape).astype(np.float32)
    x[0, 0, 0, 0] = np.nan  # never wins a MAX
    layer, bottom, top = make_layer(pool_text(f"pool: {method} {options}"), [x], dtype=np.float32)
    layer.need_backward = need_backward
    (y,) = run_forward(layer, bottom, top)
    assert layer._single_window and y.shape == shape[:2] + (1, 1)
    kernel = layer.kernel
    expected = np.full(shape[:2], -FLT_MAX if method == "MAX" else 0, dtype=np.float32)
    for h, w in itertools.product(range(kernel[0]), range(kernel[1])):
        cell = x[:, :, h, w]
        expected = np.fmax(expected, cell) if method == "MAX" else expected + cell
    if method == "AVE":
        expected = expected / np.float32(kernel[0] * kernel[1])
    np.testing.assert_array_equal(y.reshape(shape[:2]), expected)


def test_separable_is_not_taken_with_stride_1_padding_or_an_overhang():
    for options, shape in [("kernel_size: 3", (1, 1, 5, 5)), ("kernel_size: 3 stride: 2 pad: 1", (1, 1, 5, 5)),
                           ("kernel_size: 3 stride: 2", (1, 1, 6, 6))]:
        layer, _, _ = make_layer(pool_text(f"pool: MAX {options}"), [np.ones(shape)])
        assert not layer._separable


def test_single_window_is_not_taken_with_padding_or_several_outputs():
    for options, shape in [("kernel_size: 3 pad: 1", (1, 1, 1, 1)), ("kernel_size: 2", (1, 1, 3, 3))]:
        layer, _, _ = make_layer(pool_text(f"pool: AVE {options}"), [np.ones(shape)])
        assert not layer._single_window


# -- forward-only MAX: row maxima, then column maxima --------------------------------------------------------
SEPARABLE = [((2, 3, 6, 6), (3, 3), (2, 2), (0, 0), False), ((1, 2, 7, 7), (3, 3), (2, 2), (0, 0), True),
             ((2, 2, 8, 6), (2, 2), (2, 2), (0, 0), True), ((1, 2, 9, 7), (3, 2), (3, 1), (0, 0), False)]


@pytest.mark.parametrize("case", SEPARABLE, ids=str)
def test_forward_only_strided_max_is_separable_and_takes_no_winners(case, monkeypatch):
    shape, kernel, stride, pad, ceil = case
    x = np.random.default_rng(8).integers(-3, 4, size=shape).astype(np.float32)
    x.reshape(-1)[::7] = np.nan
    x.reshape(-1)[3::11] = -np.inf
    layer, bottom, top = make_layer(pool_text("pool: MAX " + case_options(*case[1:])), [x], dtype=np.float32)
    layer.need_backward = False
    assert layer._separable
    monkeypatch.setattr(type(layer), "_forward_max", None)  # the general path would fail
    (y,) = run_forward(layer, bottom, top)
    expected = reference(x.astype(float), "MAX", kernel, stride, pad, ceil)[0]
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, expected)


def test_forward_only_max_of_nan_and_minus_infinity_is_caffes_starting_value():
    x = np.array([[[[np.nan, -np.inf, 1.0], [np.nan, np.nan, 2.0]]]], dtype=np.float32)
    options = "pool: MAX kernel_h: 2 kernel_w: 1 stride_h: 2 stride_w: 1"
    layer, bottom, top = make_layer(pool_text(options), [x], dtype=np.float32)
    layer.need_backward = False
    assert layer._separable
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y[0, 0], [[-FLT_MAX, -FLT_MAX, 2.0]])


# -- kernel == stride: each kernel offset owns a stride phase, so backward stores instead of adding --------------
# (case, which offsets store their share: the first of each stride phase in scan order)
STORING = [(((2, 3, 6, 8), (2, 2), (2, 2), (0, 0), True), [True] * 4),  # every wide position an output
           (((1, 2, 7, 7), (2, 2), (2, 2), (0, 0), False), [True] * 4),  # the last row and column are in no window
           (((2, 2, 5, 5), (2, 2), (2, 2), (1, 1), True), [True] * 4),
           (((1, 2, 7, 8), (3, 2), (3, 2), (1, 0), True), [True] * 6),
           (((2, 2, 9, 8), (3, 3), (2, 2), (0, 0), True), [True, True, False, True, True, False, False, False, False]),
           (((1, 2, 8, 9), (3, 3), (2, 2), (1, 1), True), [True, True, False, True, True, False, False, False, False]),
           (((1, 2, 9, 9), (2, 3), (1, 2), (0, 1), False), [True, True, False, False, False, False]),
           (((2, 1, 8, 8), (2, 2), (3, 3), (0, 0), True), [True] * 4)]  # phases no offset reads get zeros


def reference_gradient(x, method, dy, kernel, stride, pad, ceil):
    """Each top diff added to its window's winner (MAX) or, divided by Caffe's area, to every cell (AVE)."""
    grad = np.zeros_like(x)
    _, mask = reference(x, "MAX", kernel, stride, pad, ceil)
    height, width = x.shape[2:]
    for n, c, ph, pw in itertools.product(*(range(s) for s in dy.shape)):
        h0, w0 = ph * stride[0] - pad[0], pw * stride[1] - pad[1]
        if method == "MAX":
            grad[n, c].reshape(-1)[int(mask[n, c, ph, pw])] += dy[n, c, ph, pw]
        else:
            area = (min(h0 + kernel[0], height + pad[0]) - h0) * (min(w0 + kernel[1], width + pad[1]) - w0)
            grad[n, c, max(h0, 0):h0 + kernel[0], max(w0, 0):w0 + kernel[1]] += dy[n, c, ph, pw] / area
    return grad


@pytest.mark.parametrize("case, stores", STORING, ids=str)
@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_backward_stores_the_first_share_of_each_phase_and_adds_the_others(case, stores, method):
    shape, kernel, stride, pad, ceil = case
    x = distinct_values(shape, seed=9)
    layer, bottom, top = make_layer(pool_text(f"pool: {method} " + case_options(*case[1:])), [x])
    assert layer._stores == stores
    run_forward(layer, bottom, top)
    rng = np.random.default_rng(10)
    for _ in range(2):  # the second pass finds the first one's values in every scratch buffer
        dy = rng.normal(size=top[0].shape)
        top[0].grad[...] = dy
        bottom[0].grad[...] = np.nan
        layer.backward(top, [True], bottom)
        np.testing.assert_allclose(bottom[0].grad, reference_gradient(x, method, dy, kernel, stride, pad, ceil),
                                   rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(top[0].grad, dy)  # MAX reads the diff in place: it must stay as it was


def test_phases_no_offset_reads_are_the_ones_zeroed_and_a_diff_filling_the_wide_shape_is_read_as_it_is():
    layer, _, _ = make_layer(pool_text("pool: MAX kernel_size: 2 stride: 3"), [np.ones((1, 1, 8, 8))])
    assert layer._unread_phases == [2, 5, 6, 7, 8]
    layer, _, _ = make_layer(pool_text("pool: MAX kernel_size: 3 stride: 2"), [np.ones((1, 1, 7, 7))])
    assert layer._unread_phases == [] and not layer._outputs_fill_wide
    layer, _, _ = make_layer(pool_text("pool: MAX kernel_size: 2 stride: 2"), [np.ones((1, 1, 6, 8))])
    assert layer._unread_phases == [] and layer._outputs_fill_wide


def test_argmax_indices_of_a_wide_input_do_not_overflow_the_narrow_winner_type():
    x = distinct_values((1, 1, 7, 300), seed=11)
    options = "pool: MAX kernel_size: 3 stride: 2"
    layer, bottom, top = make_layer(pool_text(options, tops=["y", "m"]), [x])
    assert np.iinfo(layer._winner_dtype).max < 3 * 300  # offsets fit a narrow type, the flat indices do not
    _, mask = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(mask, reference(x, "MAX", (3, 3), (2, 2), (0, 0))[1])


def test_kernels_of_more_offsets_than_int8_holds_find_the_first_winner():
    x = np.random.default_rng(12).integers(-3, 4, size=(2, 2, 16, 15)).astype(float)  # many ties
    x[0, 0, :12, :12] = -np.inf
    x[0, 0, 11, 11] = np.nan
    x[1, 1, 10:, 9:] = 7.0  # a late tie: its first cell (offset > 127 in some windows) wins
    options = "pool: MAX kernel_size: 12 stride: 3"
    layer, bottom, top = make_layer(pool_text(options, tops=["y", "m"]), [x])
    assert layer._winner_dtype == np.int16
    y, mask = run_forward(layer, bottom, top)
    expected, expected_mask = reference(x, "MAX", (12, 12), (3, 3), (0, 0))
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(mask, expected_mask)
    assert mask[0, 0, 0, 0] == -1 and y[0, 0, 0, 0] == -FLT_MAX
    layer, bottom, top = make_layer(pool_text(options), [distinct_values((1, 1, 16, 15), seed=13)])
    check_gradients(layer, bottom, top)


# -- windows that tile the input (kernel == stride, no padding, no overhang): strided views of the blobs ----------
TILES = [((3, 2, 9, 11), (2, 2), (2, 2)),  # the last row and column are in no window
         ((2, 3, 8, 6), (2, 2), (2, 2)),
         ((1, 2, 9, 8), (3, 2), (3, 2)),
         ((2, 1, 3, 4), (1, 1), (1, 1))]


@pytest.mark.parametrize("case", TILES, ids=str)
@pytest.mark.parametrize("threads", [1, 2])
def test_windows_that_tile_the_input_pool_and_route_in_place(case, threads, monkeypatch):
    shape, kernel, stride = case
    monkeypatch.setenv("CAFFELITE_NUM_THREADS", str(threads))
    monkeypatch.setattr(pooling, "_TILES_THREADED", 0)  # even this small input goes to the threads
    rng = np.random.default_rng(14)
    x = rng.integers(-3, 4, size=shape).astype(np.float32)  # many ties
    x.reshape(-1)[::5] = np.nan
    x.reshape(-1)[2::7] = -np.inf
    x[0, 0, :kernel[0], :kernel[1]] = [[np.nan] * kernel[1]] * kernel[0]  # a window nothing wins
    options = "pool: MAX " + case_options(kernel, stride, (0, 0), False)
    layer, bottom, top = make_layer(pool_text(options, tops=["y", "m"]), [x], dtype=np.float32)
    assert layer._tiles
    layer._phases = None  # the phase layout is not used
    y, mask = run_forward(layer, bottom, top)
    expected, expected_mask = reference(x.astype(float), "MAX", kernel, stride, (0, 0), ceil=False)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_array_equal(mask, expected_mask)
    assert mask[0, 0, 0, 0] == -1
    for _ in range(2):  # the second pass finds the first one's values in every buffer
        dy = rng.normal(size=y.shape).astype(np.float32)
        top[0].grad[...] = dy
        bottom[0].grad[...] = np.nan
        layer.backward(top, [True, False], bottom)
        grad = np.zeros(shape, np.float32)
        for index in np.ndindex(dy.shape):
            if expected_mask[index] >= 0:
                grad[index[:2]].reshape(-1)[int(expected_mask[index])] += dy[index]
        np.testing.assert_array_equal(bottom[0].grad, grad)


def test_only_max_windows_that_tile_the_input_take_the_in_place_path():
    def tiles(options, shape):
        return make_layer(pool_text(options), [np.ones(shape)])[0]._tiles

    assert tiles("pool: MAX kernel_size: 2 stride: 2", (1, 1, 6, 8))
    assert tiles("pool: MAX kernel_size: 2 stride: 2 round_mode: FLOOR", (1, 1, 7, 7))
    assert not tiles("pool: MAX kernel_size: 2 stride: 2", (1, 1, 7, 7))  # ceil: the last windows overhang
    assert not tiles("pool: MAX kernel_size: 2 stride: 2 pad: 1", (1, 1, 6, 6))
    assert not tiles("pool: MAX kernel_size: 3 stride: 2", (1, 1, 7, 7))
    assert not tiles("pool: AVE kernel_size: 2 stride: 2", (1, 1, 6, 8))


@pytest.mark.parametrize("options, shape", SINGLE_WINDOWS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_single_window_ave_backward_spreads_the_diff_over_the_window_as_the_general_path(options, shape, dtype,
                                                                                         monkeypatch):
    x = np.random.default_rng(8).normal(size=shape)
    layer, bottom, top = make_layer(pool_text(f"pool: AVE {options}"), [x], dtype=dtype)
    run_forward(layer, bottom, top)
    top[0].grad[...] = np.random.default_rng(9).normal(size=top[0].shape)
    bottom[0].grad[...] = np.nan  # every cell is written, those past the window with zeros
    layer.backward(top, [True], bottom)
    fast = bottom[0].grad.copy()
    kernel = layer.kernel
    expected = np.zeros(shape, dtype)
    expected[:, :, :kernel[0], :kernel[1]] = top[0].grad / dtype(kernel[0] * kernel[1])
    np.testing.assert_array_equal(fast, expected)
    monkeypatch.setattr(layer, "_single_window", False)
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(fast, bottom[0].grad)
    if dtype == np.float64:
        monkeypatch.setattr(layer, "_single_window", True)
        check_gradients(layer, bottom, top)
