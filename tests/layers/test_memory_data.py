"""MemoryData: consecutive batches of user arrays (pycaffe's set_input_arrays), wrapping, arrays served as given."""

import numpy as np
import pytest
from layer_harness import make_layer, run_forward

from caffelite.errors import NetError, ShapeError
from caffelite.phase import TEST, TRAIN


def memory_layer(batch_size=2, shape=(3, 4, 5), transform="", phase=TEST, dtype=np.float64):
    c, h, w = shape
    text = f"""
        name: "mem" type: "MemoryData" top: "data" top: "label"
        memory_data_param {{ batch_size: {batch_size} channels: {c} height: {h} width: {w} }}
        transform_param {{ {transform} }}
    """
    return make_layer(text, [], phase=phase, dtype=dtype)


def arrays(n=6, shape=(3, 4, 5), seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n,) + shape).astype(np.float32), np.arange(n, dtype=np.float32) + 10


def test_setup_shapes_and_consecutive_batches_with_wrap_around():
    layer, bottom, top = memory_layer()
    assert top[0].shape == (2, 3, 4, 5) and top[1].shape == (2,)
    data, labels = arrays()
    layer.set_input_arrays(data, labels)
    for start in (0, 2, 4, 0, 2):
        got_data, got_labels = run_forward(layer, bottom, top)
        np.testing.assert_array_equal(got_data, data[start : start + 2])
        assert got_labels.shape == (2, 1, 1, 1)  # Caffe's label shape after a forward
        np.testing.assert_array_equal(got_labels.ravel(), labels[start : start + 2])


def test_reset_restarts_and_takes_4d_labels():
    layer, bottom, top = memory_layer(batch_size=3)
    data, labels = arrays()
    layer.set_input_arrays(data, labels)
    run_forward(layer, bottom, top)
    layer.reset(data[::-1].copy(), labels[::-1].reshape(6, 1, 1, 1).copy())
    got_data, got_labels = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(got_data, data[::-1][:3])
    np.testing.assert_array_equal(got_labels.ravel(), labels[::-1][:3])


def test_float32_arrays_are_used_by_reference():
    layer, bottom, top = memory_layer(dtype=np.float32)
    data, labels = arrays(n=2)
    layer.set_input_arrays(data, labels)
    data[...] = 7
    labels[...] = 3
    got_data, got_labels = run_forward(layer, bottom, top)
    assert np.all(got_data == 7) and np.all(got_labels == 3)


def test_arrays_are_served_untransformed_as_caffes_reset_does(caplog):
    layer, bottom, top = memory_layer(transform="scale: 0.5 mean_value: 1 mean_value: 2 mean_value: 3")
    data, labels = arrays(n=2)
    layer.set_input_arrays(data, labels)
    got, _ = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(got, data)
    assert "is not transformed" in caplog.text


def test_array_errors():
    layer, bottom, top = memory_layer(batch_size=2)
    data, labels = arrays(n=6)
    with pytest.raises(ShapeError, match=r"layer 'mem' \(MemoryData\): .*multiple of batch_size 2"):
        layer.set_input_arrays(data[:5], labels[:5])
    with pytest.raises(ShapeError, match=r"data must have shape \(n, 3, 4, 5\)"):
        layer.set_input_arrays(data[:, :2], labels)
    with pytest.raises(ShapeError, match="same first dimension"):
        layer.set_input_arrays(data, labels[:4])
    with pytest.raises(ShapeError, match=r"labels must have shape \(n,\)"):
        layer.set_input_arrays(data, labels.reshape(6, 1))
    with pytest.raises(ShapeError, match="positive multiple"):
        layer.set_input_arrays(data[:0], labels[:0])


def test_forward_before_data_and_bad_parameters():
    layer, bottom, top = memory_layer()
    with pytest.raises(NetError, match="call set_input_arrays"):
        layer.forward(bottom, top)
    with pytest.raises(NetError, match="needs positive batch_size, channels, height and width"):
        make_layer('name: "mem" type: "MemoryData" top: "d" top: "l" memory_data_param { batch_size: 2 }', [])
