"""Input: tops shaped by input_param, left alone by reshape and forward."""

import numpy as np
import pytest

from caffelite.errors import NetError
from layer_harness import make_layer, run_forward


def test_one_shape_per_top():
    layer, bottom, top = make_layer(
        'type: "Input" top: "data" top: "label" '
        "input_param { shape { dim: 10 dim: 3 dim: 28 dim: 28 } shape { dim: 10 } }", []
    )
    assert [t.shape for t in top] == [(10, 3, 28, 28), (10,)]
    assert layer.params == []


def test_one_shape_for_all_tops():
    layer, bottom, top = make_layer('type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 5 } }', [])
    assert [t.shape for t in top] == [(2, 5), (2, 5)]


def test_no_shape_leaves_tops_to_the_user_and_forward_keeps_their_data():
    layer, bottom, top = make_layer('type: "Input" top: "data"', [])
    assert top[0].shape == ()
    top[0].reshape(3, 4)
    top[0].data[...] = np.arange(12.0).reshape(3, 4)
    (y,) = run_forward(layer, bottom, top)
    assert y.shape == (3, 4)
    np.testing.assert_array_equal(y, np.arange(12.0).reshape(3, 4))


def test_shape_count_mismatch():
    with pytest.raises(NetError, match="layer 'in' \\(Input\\)"):
        make_layer('name: "in" type: "Input" top: "a" top: "b" top: "c" '
                   "input_param { shape { dim: 1 } shape { dim: 2 } }", [])


def test_takes_no_bottoms():
    with pytest.raises(NetError, match="0 bottoms"):
        make_layer('type: "Input" bottom: "x" top: "y"', [np.zeros(1)])
