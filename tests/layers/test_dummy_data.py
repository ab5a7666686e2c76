"""DummyData: shapes (new and legacy), fillers per top, constant fillers fill once, random ones every forward."""

import numpy as np
import pytest

from caffelite.errors import NetError
from layer_harness import make_layer, run_forward


def test_default_is_constant_zero():
    layer, bottom, top = make_layer('type: "DummyData" top: "a" dummy_data_param { shape { dim: 2 dim: 3 } }', [])
    (a,) = run_forward(layer, bottom, top)
    assert a.shape == (2, 3) and not np.any(a)


def test_constant_fills_once_at_setup_only():
    layer, bottom, top = make_layer(
        'type: "DummyData" top: "a" dummy_data_param { shape { dim: 4 } data_filler { type: "constant" value: 3 } }',
        [],
    )
    np.testing.assert_array_equal(top[0].data, [3, 3, 3, 3])
    top[0].data[...] = 9  # Caffe never refills a constant blob
    (a,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(a, [9, 9, 9, 9])


def test_random_filler_refills_every_forward():
    layer, bottom, top = make_layer(
        'type: "DummyData" top: "a" '
        'dummy_data_param { shape { dim: 50 } data_filler { type: "uniform" min: 2 max: 4 } }',
        [],
    )
    first = run_forward(layer, bottom, top, seed=1)[0]
    second = run_forward(layer, bottom, top, seed=2)[0]
    assert np.all((first >= 2) & (first <= 4)) and np.all((second >= 2) & (second <= 4))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(run_forward(layer, bottom, top, seed=1)[0], first)


def test_one_filler_and_shape_per_top():
    layer, bottom, top = make_layer(
        'type: "DummyData" top: "a" top: "b" dummy_data_param { '
        "shape { dim: 2 dim: 3 } shape { dim: 5 } "
        'data_filler { type: "constant" value: 1 } data_filler { type: "gaussian" mean: 10 std: 0.1 } }',
        [],
    )
    a, b = run_forward(layer, bottom, top)
    assert a.shape == (2, 3) and b.shape == (5,)
    assert np.all(a == 1) and np.all(np.abs(b - 10) < 1)


def test_one_filler_and_shape_for_all_tops():
    layer, bottom, top = make_layer(
        'type: "DummyData" top: "a" top: "b" dummy_data_param { shape { dim: 30 } data_filler { type: "gaussian" } }',
        [],
    )
    a, b = run_forward(layer, bottom, top)
    assert a.shape == b.shape == (30,)
    assert not np.array_equal(a, b)  # each top draws its own values


def test_legacy_dimensions():
    layer, bottom, top = make_layer(
        'type: "DummyData" top: "a" top: "b" '
        "dummy_data_param { num: 5 num: 6 channels: 2 height: 3 width: 4 width: 1 }",
        [],
    )
    assert [t.shape for t in top] == [(5, 2, 3, 4), (6, 2, 3, 1)]


@pytest.mark.parametrize(
    "options",
    [
        "shape { dim: 1 } num: 1 channels: 1 height: 1 width: 1",  # both forms
        "shape { dim: 1 } shape { dim: 2 } shape { dim: 3 }",  # neither one nor one per top
        "",  # no shape at all
        "num: 1 num: 2 num: 3 channels: 1 height: 1 width: 1",
        'shape { dim: 1 } data_filler { } data_filler { } data_filler { }',
    ],
)
def test_bad_configuration(options):
    with pytest.raises(NetError, match="DummyData"):
        make_layer(f'type: "DummyData" top: "a" top: "b" dummy_data_param {{ {options} }}', [])
