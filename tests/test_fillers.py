"""Fillers: each one against its definition (statistics with a fixed seed and loose bounds for random ones)."""

import numpy as np
import pytest
from google.protobuf import text_format

from caffelite.errors import ShapeError, UnknownNameError
from caffelite.fillers import FILLERS, fill
from caffelite.proto import caffe_pb2
from caffelite.rng import set_random_seed


def filled(shape, text, seed=1701, dtype=np.float32):
    set_random_seed(seed)
    array = np.full(shape, np.nan, dtype=dtype)
    fill(array, text_format.Parse(text, caffe_pb2.FillerParameter()))
    return array


def test_every_caffe_filler_is_registered():
    for name in ("constant", "gaussian", "uniform", "positive_unitball", "xavier", "msra", "bilinear"):
        assert name in FILLERS


def test_unknown_filler_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="xavier"):
        filled((2, 2), 'type: "nonesuch"')


def test_default_filler_is_constant_zero():
    assert np.array_equal(filled((3, 4), ""), np.zeros((3, 4), np.float32))


def test_constant():
    values = filled((2, 3, 4), 'type: "constant" value: 2.5', dtype=np.float64)
    assert np.all(values == 2.5)


def test_uniform_bounds_and_spread():
    values = filled((100, 100), 'type: "uniform" min: -3 max: 5')
    assert values.min() >= -3 and values.max() <= 5
    assert values.min() < -2.9 and values.max() > 4.9
    assert abs(values.mean() - 1.0) < 0.1


def test_uniform_default_is_zero_to_one():
    values = filled((50, 50), 'type: "uniform"')
    assert values.min() >= 0 and values.max() <= 1


def test_gaussian_mean_and_std():
    values = filled((200, 100), 'type: "gaussian" mean: 3 std: 0.5').astype(np.float64)
    assert abs(values.mean() - 3) < 0.02
    assert abs(values.std() - 0.5) < 0.02


def test_gaussian_is_repeatable_with_a_seed():
    text = 'type: "gaussian" std: 2'
    assert np.array_equal(filled((5, 7), text, seed=3), filled((5, 7), text, seed=3))
    assert not np.array_equal(filled((5, 7), text, seed=3), filled((5, 7), text, seed=4))


def test_gaussian_sparse_keeps_sparse_over_num_outputs():
    # 40 outputs, sparse 10: each weight survives with probability 10/40.
    values = filled((40, 500), 'type: "gaussian" std: 1 sparse: 10')
    kept = np.count_nonzero(values) / values.size
    assert abs(kept - 0.25) < 0.01
    assert abs(values[values != 0].std() - 1) < 0.03


def test_gaussian_sparse_zero_empties_the_blob():
    assert not np.any(filled((4, 6), 'type: "gaussian" sparse: 0'))


def test_positive_unitball_rows_are_positive_and_sum_to_one():
    values = filled((6, 3, 2, 2), 'type: "positive_unitball"', dtype=np.float64)
    assert np.all(values >= 0) and np.all(values <= 1)
    np.testing.assert_allclose(values.reshape(6, -1).sum(axis=1), np.ones(6), rtol=1e-12)


@pytest.mark.parametrize(
    "norm, fan",
    [("", 2 * 3 * 4), ("variance_norm: FAN_IN", 2 * 3 * 4), ("variance_norm: FAN_OUT", 50 * 3 * 4),
     ("variance_norm: AVERAGE", (2 * 3 * 4 + 50 * 3 * 4) / 2)],
)
def test_xavier_bounds(norm, fan):
    # shape (50, 2, 3, 4): fan_in = count / 50, fan_out = count / 2.
    values = filled((50, 2, 3, 4), f'type: "xavier" {norm}', dtype=np.float64)
    bound = np.sqrt(3.0 / fan)
    assert values.min() >= -bound and values.max() <= bound
    assert values.min() < -0.95 * bound and values.max() > 0.95 * bound
    assert abs(values.std() - bound / np.sqrt(3)) < 0.05 * bound


def test_xavier_on_a_vector_uses_count_for_fan_out():
    values = filled((400,), 'type: "xavier" variance_norm: FAN_OUT', dtype=np.float64)
    assert np.abs(values).max() <= np.sqrt(3.0 / 400)


@pytest.mark.parametrize(
    "norm, fan",
    [("", 20 * 5 * 5), ("variance_norm: FAN_OUT", 30 * 5 * 5), ("variance_norm: AVERAGE", 25 * 5 * 5)],
)
def test_msra_std(norm, fan):
    values = filled((30, 20, 5, 5), f'type: "msra" {norm}', dtype=np.float64)
    std = np.sqrt(2.0 / fan)
    assert abs(values.mean()) < 0.05 * std
    assert abs(values.std() - std) < 0.05 * std


def bilinear_reference(size):
    """Caffe's formula, element by element: f = ceil(K/2), c = (K-1)/(2f), w = (1-|x/f-c|)(1-|y/f-c|)."""
    f = int(np.ceil(size / 2))
    c = (size - 1) / (2.0 * f)
    kernel = np.zeros((size, size))
    for y in range(size):
        for x in range(size):
            kernel[y, x] = (1 - abs(x / f - c)) * (1 - abs(y / f - c))
    return kernel


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 7, 8])
def test_bilinear_matches_the_formula_for_every_channel(size):
    values = filled((3, 2, size, size), 'type: "bilinear"', dtype=np.float64)
    for n in range(3):
        for ch in range(2):
            np.testing.assert_allclose(values[n, ch], bilinear_reference(size), rtol=0, atol=1e-12)


def test_bilinear_factor_two_kernel_by_hand():
    taps = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(filled((1, 1, 4, 4), 'type: "bilinear"', dtype=np.float64)[0, 0],
                               np.outer(taps, taps))


def test_bilinear_rejects_non_square_or_non_4d():
    with pytest.raises(ShapeError):
        filled((1, 1, 3, 4), 'type: "bilinear"')
    with pytest.raises(ShapeError):
        filled((4, 4), 'type: "bilinear"')
