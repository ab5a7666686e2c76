"""LRN: forward against per-cell loops (Caffe's pooling divisor spelled out for WITHIN_CHANNEL), gradients, in place."""

import itertools

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from caffelite.layers import lrn
from caffelite.layers.lrn import _negative_power
from layer_harness import check_float32_backward, check_gradients, make_layer, run_forward


def f32(value):
    """The value a float field of the schema holds."""
    return float(np.float32(value))


def across_reference(x, size, alpha, beta, k):
    y = np.empty_like(x)
    half = (size - 1) // 2
    num, channels = x.shape[:2]
    for n, c in itertools.product(range(num), range(channels)):
        neighbours = range(max(0, c - half), min(channels, c + half + 1))
        energy = sum(x[n, j] ** 2 for j in neighbours)
        y[n, c] = x[n, c] * (k + alpha / size * energy) ** -beta
    return y


def within_reference(x, size, alpha, beta):
    """Caffe's construction: square, AVE pooling (kernel n, stride 1, pad (n-1)/2), (1 + alpha p)^-beta, times x."""
    pad = (size - 1) // 2
    height, width = x.shape[2:]
    y = np.empty_like(x)
    for h, w in itertools.product(range(height), range(width)):
        h0, w0 = h - pad, w - pad
        # Caffe's AVE divisor: the window clipped to the padded extent (before clipping to the input).
        area = (min(h0 + size, height + pad) - h0) * (min(w0 + size, width + pad) - w0)
        rows = slice(max(h0, 0), min(h0 + size, height))
        cols = slice(max(w0, 0), min(w0 + size, width))
        pooled = (x[:, :, rows, cols] ** 2).sum(axis=(2, 3)) / area
        y[:, :, h, w] = x[:, :, h, w] * (1 + alpha * pooled) ** -beta
    return y


def lrn_text(options, names='bottom: "x" top: "y"'):
    return f'name: "norm" type: "LRN" {names} lrn_param {{ {options} }}'


@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-4, 0.75, 1.0), (3, 0.5, 0.75, 2.0), (1, 2.0, 1.5, 1.0),
                                                  (7, 0.3, 0.5, 0.5)])
def test_across_channels_matches_loops(size, alpha, beta, k):
    x = np.random.default_rng(0).normal(size=(2, 5, 3, 4)) * 2
    layer, bottom, top = make_layer(lrn_text(f"local_size: {size} alpha: {alpha} beta: {beta} k: {k}"), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, across_reference(x, size, f32(alpha), f32(beta), f32(k)), rtol=1e-12)


@pytest.mark.parametrize("size, alpha, beta", [(3, 0.5, 0.75), (5, 2.0, 0.5), (1, 1.0, 1.0), (7, 1.0, 0.75)])
def test_within_channel_matches_caffes_pooling_construction(size, alpha, beta):
    x = np.random.default_rng(1).normal(size=(2, 2, 5, 6)) * 2
    # k is ignored within a channel: Caffe's Power layer shifts by 1.
    layer, bottom, top = make_layer(
        lrn_text(f"local_size: {size} alpha: {alpha} beta: {beta} k: 7 norm_region: WITHIN_CHANNEL"), [x])
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, within_reference(x, size, f32(alpha), f32(beta)), rtol=1e-12)


def test_within_channel_divides_by_the_full_window_at_the_border():
    """One bright pixel in a corner: its 3x3 average counts the padding, so it is divided by 9, not by 4."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 0] = 3.0
    layer, bottom, top = make_layer(lrn_text("local_size: 3 alpha: 1 beta: 1 norm_region: WITHIN_CHANNEL"), [x])
    (y,) = run_forward(layer, bottom, top)
    assert y[0, 0, 0, 0] == pytest.approx(3.0 / (1 + 9.0 / 9))


def test_defaults_are_alexnets():
    layer, _, _ = make_layer(lrn_text(""), [np.ones((1, 3, 2, 2))])
    assert (layer.size, layer.alpha, layer.beta, layer.shift, layer.across) == (5, 1.0, 0.75, 1.0, True)


@pytest.mark.parametrize("options", ["local_size: 3 alpha: 0.8 beta: 0.75 k: 1.5",
                                     "local_size: 5 alpha: 1.2 beta: 0.6 k: 0.5",
                                     "local_size: 3 alpha: 0.9 beta: 0.75 norm_region: WITHIN_CHANNEL",
                                     "local_size: 5 alpha: 2 beta: 1.3 norm_region: WITHIN_CHANNEL"])
@pytest.mark.parametrize("in_place", [False, True])
def test_gradients(options, in_place):
    x = np.random.default_rng(2).normal(size=(2, 4, 3, 3))
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    layer, bottom, top = make_layer(lrn_text(options, names), [x])
    assert (top[0] is bottom[0]) == in_place
    check_gradients(layer, bottom, top, tolerance=1e-6)


def test_in_place_forward_equals_out_of_place():
    x = np.random.default_rng(3).normal(size=(1, 6, 3, 3))
    outputs = []
    for names in ('bottom: "x" top: "y"', 'bottom: "x" top: "x"'):
        layer, bottom, top = make_layer(lrn_text("local_size: 3 alpha: 1", names), [x])
        outputs.append(run_forward(layer, bottom, top)[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_float32_stays_float32_and_propagate_down_is_honoured():
    x = np.random.default_rng(4).normal(size=(2, 8, 5, 5))
    layer, bottom, top = make_layer(lrn_text("local_size: 5 alpha: 0.0001 beta: 0.75"), [x], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, across_reference(x.astype(np.float32).astype(np.float64), 5, f32(1e-4), 0.75, 1.0),
                               rtol=1e-6)
    check_float32_backward(layer, bottom, top)


@pytest.mark.parametrize("options", ["local_size: 5 alpha: 0.3 beta: 0.75 k: 2",
                                     "local_size: 3 alpha: 0.9 beta: 0.6 norm_region: WITHIN_CHANNEL"])
@pytest.mark.parametrize("names", ['bottom: "x" top: "y"', 'bottom: "x" top: "x"'])
@pytest.mark.parametrize("threads, step_images", [("1", 2), ("3", 1), ("1", 9)])
def test_forward_only_goes_a_few_images_at_a_time_and_keeps_no_scale(options, names, threads, step_images,
                                                                       monkeypatch):
    """A layer the net never runs backward holds a few images' buffers per thread, not a scale of its input: its
    output is the same bits as with backward, for a batch split over threads (36,000 cells: they are used) and
    into steps of 1, 2 (the last one short) or all images."""
    monkeypatch.setenv("CAFFELITE_NUM_THREADS", threads)
    monkeypatch.setattr(lrn, "_STEP_CELLS", step_images * 8 * 30 * 30)
    x = np.random.default_rng(6).normal(size=(5, 8, 30, 30)) * 3
    outputs = []
    for need_backward in (True, False):
        layer, bottom, top = make_layer(lrn_text(options, names), [x], dtype=np.float32)
        layer.need_backward = need_backward
        for _ in range(2):  # again, over the layer's own output when in place
            bottom[0].data[...] = x
            layer.forward(bottom, top)
        outputs.append(top[0].data.copy())
        assert (layer._scale is None) == (not need_backward)
    np.testing.assert_array_equal(outputs[0], outputs[1])
    reference = (across_reference(x.astype(np.float32).astype(np.float64), 5, f32(0.3), 0.75, 2.0) if "k: 2" in options
                 else within_reference(x.astype(np.float32).astype(np.float64), 3, f32(0.9), f32(0.6)))
    np.testing.assert_allclose(outputs[1], reference, rtol=2e-6)


def test_float32_power_of_three_quarters_is_rounded_once_from_float64(monkeypatch):
    """beta 0.75 in float32 takes roots in float64: s^-0.75 correctly rounded, over 60 decades, across several work
    chunks with a short last one, with zeros (inf), infinity (0), negatives and NaN (NaN) as a power gives them."""
    monkeypatch.setattr(lrn, "_POWER_CHUNK", 1 << 14)  # 40,008 cells: three chunks, the last one short
    rng = np.random.default_rng(5)
    magnitudes = rng.random(40_000) * 10.0 ** rng.integers(-30, 30, 40_000)
    special = [0.0, -0.0, np.inf, -1.0, np.nan, 1e-45, 3.4e38, 1.0]
    scale = np.concatenate([magnitudes, special]).astype(np.float32).reshape(8, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.power(scale.astype(np.float64), -0.75).astype(np.float32)
        got = np.full_like(scale, 7)
        assert _negative_power(scale, 0.75, out=got) is got
    np.testing.assert_array_equal(got, expected)
    # Other exponents and float64 keep numpy's power.
    part = scale[:, :100]
    np.testing.assert_array_equal(_negative_power(part, 0.5, np.empty_like(part)), np.power(part, -0.5))
    wide = part.astype(np.float64)
    np.testing.assert_array_equal(_negative_power(wide, 0.75, np.empty_like(wide)), np.power(wide, -0.75))


def test_errors():
    with pytest.raises(NetError, match="layer 'norm' \\(LRN\\): local_size must be odd, got 4"):
        make_layer(lrn_text("local_size: 4"), [np.ones((1, 3, 2, 2))])
    with pytest.raises(ShapeError, match="layer 'norm' \\(LRN\\): input must have 4 axes"):
        make_layer(lrn_text(""), [np.ones((3, 2))])
