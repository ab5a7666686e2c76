"""Dropout: identity in TEST; in TRAIN a seeded Bernoulli(1 - ratio) mask scaled by 1/(1 - ratio)."""

import numpy as np
import pytest

from caffelite.errors import NetError
from caffelite.phase import TEST, TRAIN
from caffelite.rng import rng, set_random_seed
from layer_harness import check_gradients, make_layer, run_forward


def inputs(shape=(4, 5, 6)):
    return np.random.default_rng(0).uniform(1, 2, shape)  # nonzero, so a zero output means dropped


def test_test_phase_is_identity_both_ways():
    x = inputs()
    layer, bottom, top = make_layer('type: "Dropout"', [x], phase=TEST)
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, x)
    check_gradients(layer, bottom, top)


@pytest.mark.parametrize("ratio", [0.5, 0.2, 0.8])
def test_train_mask_statistics_and_scale(ratio):
    x = inputs((100, 100))
    layer, bottom, top = make_layer(f'type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}', [x],
                                    phase=TRAIN)
    (y,) = run_forward(layer, bottom, top, seed=11)
    kept = y != 0
    assert abs(kept.mean() - (1 - ratio)) < 0.02
    # The ratio is a float field: Caffe scales by 1 / (1 - float32(ratio)).
    np.testing.assert_allclose(y[kept], x[kept] / (1 - float(np.float32(ratio))), rtol=1e-15)


def test_train_mask_comes_from_caffelite_rng():
    x = inputs()
    layer, bottom, top = make_layer('type: "Dropout" dropout_param { dropout_ratio: 0.3 }', [x], phase=TRAIN)
    (y,) = run_forward(layer, bottom, top, seed=5)
    set_random_seed(5)
    expected_keep = rng().random(x.shape) < 0.7
    np.testing.assert_array_equal(y != 0, expected_keep)
    (again,) = run_forward(layer, bottom, top, seed=5)
    np.testing.assert_array_equal(again, y)
    (other,) = run_forward(layer, bottom, top, seed=6)
    assert not np.array_equal(other, y)


def test_backward_reuses_the_forward_mask():
    x = inputs()
    layer, bottom, top = make_layer('type: "Dropout" bottom: "x" top: "x"', [x], phase=TRAIN)
    (y,) = run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True], bottom)
    np.testing.assert_array_equal(bottom[0].grad, np.where(y != 0, 2.0, 0.0))


@pytest.mark.parametrize("in_place", [False, True])
def test_train_gradients(in_place):
    names = 'bottom: "x" top: "x"' if in_place else 'bottom: "x" top: "y"'
    layer, bottom, top = make_layer(f'type: "Dropout" {names} dropout_param {{ dropout_ratio: 0.4 }}',
                                    [inputs((3, 4, 2))], phase=TRAIN)
    check_gradients(layer, bottom, top)


def test_ratio_zero_keeps_everything():
    x = inputs()
    layer, bottom, top = make_layer('type: "Dropout" dropout_param { dropout_ratio: 0 }', [x], phase=TRAIN)
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("ratio", [1.0, -0.1])
def test_ratio_out_of_range(ratio):
    with pytest.raises(NetError, match="dropout_ratio"):
        make_layer(f'type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}', [inputs()], phase=TRAIN)


def test_float32_mask():
    layer, bottom, top = make_layer('type: "Dropout"', [inputs()], phase=TRAIN, dtype=np.float32)
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32 and layer.mask.dtype == np.float32
