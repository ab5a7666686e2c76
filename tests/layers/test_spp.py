"""SPP: forward against per-window loops with Caffe's kernel/stride/pad per level, gradients, shapes and errors."""

import itertools
import math

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from caffelite.phase import TEST
from layer_harness import check_gradients, make_layer, run_forward


def level_geometry(size, level):
    """Caffe's SPP rule for one axis: kernel ceil(size / bins), stride = kernel, pad (kernel bins - size + 1) / 2."""
    bins = 2 ** level
    kernel = math.ceil(size / bins)
    return kernel, (kernel * bins - size + 1) // 2


def pooled_size(size, kernel, pad):
    """Caffe's Pooling output size (stride = kernel): ceil rounding, last window dropped if it starts in the pad."""
    out = math.ceil((size + 2 * pad - kernel) / kernel) + 1
    return out - 1 if pad and (out - 1) * kernel >= size + pad else out


def pool_reference(x, level, method):
    (kh, ph), (kw, pw) = level_geometry(x.shape[2], level), level_geometry(x.shape[3], level)
    out = np.zeros(x.shape[:2] + (pooled_size(x.shape[2], kh, ph), pooled_size(x.shape[3], kw, pw)))
    for i, j in itertools.product(*map(range, out.shape[2:])):
        h0, w0 = i * kh - ph, j * kw - pw
        window = x[:, :, max(h0, 0):min(h0 + kh, x.shape[2]), max(w0, 0):min(w0 + kw, x.shape[3])]
        if method == "MAX":
            out[:, :, i, j] = window.max(axis=(2, 3))
        else:
            area = (min(h0 + kh, x.shape[2] + ph) - h0) * (min(w0 + kw, x.shape[3] + pw) - w0)
            out[:, :, i, j] = window.sum(axis=(2, 3)) / area
    return out


def reference(x, height, method):
    levels = [pool_reference(x, level, method) for level in range(height)]
    if height == 1:
        return levels[0]
    return np.concatenate([p.reshape(x.shape[0], -1) for p in levels], axis=1)


def spp_text(height, pool="MAX"):
    return f'name: "spp" type: "SPP" spp_param {{ pyramid_height: {height} pool: {pool} }}'


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("height, spatial", [(1, (5, 7)), (2, (5, 7)), (3, (13, 6)), (3, (8, 8)), (2, (2, 3)),
                                             (3, (7, 9)), (4, (16, 20))])
def test_forward_matches_per_window_loops(method, height, spatial):
    x = np.random.default_rng(0).normal(size=(2, 3) + spatial)
    layer, bottom, top = make_layer(spp_text(height, method), [x])
    (y,) = run_forward(layer, bottom, top)
    expected = reference(x, height, method)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_output_has_a_bin_per_grid_cell_per_channel():
    layer, bottom, top = make_layer(spp_text(3), [np.zeros((4, 5, 13, 13))])
    assert top[0].shape == (4, 5 * (1 + 4 + 16))
    layer, bottom, top = make_layer(spp_text(1), [np.zeros((4, 5, 13, 13))])
    assert top[0].shape == (4, 5, 1, 1)  # one level: Caffe's top is the pooled blob itself


@pytest.mark.parametrize("method, height", [("MAX", 3), ("AVE", 3), ("AVE", 1), ("MAX", 2)])
def test_gradients(method, height):
    x = np.random.default_rng(1).normal(size=(2, 2, 7, 6))
    layer, bottom, top = make_layer(spp_text(height, method), [x])
    check_gradients(layer, bottom, top)


def test_reshape_recomputes_every_level_for_a_new_input_size():
    layer, bottom, top = make_layer(spp_text(3, "AVE"), [np.ones((1, 2, 8, 8))])
    x = np.random.default_rng(2).normal(size=(3, 2, 13, 10))
    bottom[0].reshape(x.shape)
    bottom[0].data[...] = x
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(y, reference(x, 3, "AVE"), rtol=1e-12)
    check_gradients(layer, bottom, top)


def test_stochastic_samples_window_values_even_in_test_like_caffe():
    x = np.random.default_rng(3).uniform(0.1, 1, size=(1, 2, 8, 8))
    layer, bottom, top = make_layer(spp_text(3, "STOCHASTIC"), [x], phase=TEST)
    (y,) = run_forward(layer, bottom, top)
    (again,) = run_forward(layer, bottom, top, seed=7)
    assert not np.array_equal(y, again)
    # Level 0 picks one value of each channel; level 2 (2x2 windows) one value of each window.
    assert all(np.isin(y[0, c], x[0, c]) for c in range(2))
    windows = x.reshape(1, 2, 4, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(1, 2, 16, 4)
    assert np.all((windows == y[:, 10:].reshape(1, 2, 16, 1)).any(axis=-1))


def test_errors_name_the_layer():
    with pytest.raises(NetError, match="layer 'spp' \\(SPP\\): pyramid_height must be at least 1"):
        make_layer(spp_text(0), [np.ones((1, 1, 4, 4))])
    # 3 rows on a 4-bin grid: kernel 1, pad 1, which Caffe's Pooling refuses.
    with pytest.raises(NetError, match="layer 'spp' \\(SPP\\): pyramid level 2 of a 3x8 input: .*pad"):
        make_layer(spp_text(3), [np.ones((1, 1, 3, 8))])
    with pytest.raises(NetError, match="layer 'spp' \\(SPP\\).*padding is implemented only for MAX and AVE"):
        make_layer(spp_text(2, "STOCHASTIC"), [np.ones((1, 1, 5, 5))])
    with pytest.raises(ShapeError, match="layer 'spp' \\(SPP\\): input must have 4 axes"):
        make_layer(spp_text(2), [np.ones((1, 4, 4))])
    with pytest.raises(NetError, match="cannot run in place"):
        make_layer('name: "spp" type: "SPP" bottom: "x" top: "x" spp_param { pyramid_height: 1 }',
                   [np.ones((1, 1, 4, 4))])


def test_float32_stays_float32():
    x = np.random.default_rng(4).normal(size=(2, 3, 9, 9))
    layer, bottom, top = make_layer(spp_text(3), [x], dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, reference(x.astype(np.float32), 3, "MAX").astype(np.float32))
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    assert bottom[0].grad.dtype == np.float32
    # Every max of every level sends its 1 back: the grads add up to the number of bins.
    assert bottom[0].grad.sum() == pytest.approx(2 * 3 * 21)
