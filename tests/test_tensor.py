"""Tensor: Caffe's Blob (data + grad, the diff alias, reshape rules, legacy 4-D accessors)."""

import numpy as np
import pytest

from caffelite.errors import ShapeError
from caffelite.tensor import Tensor


def test_data_and_grad_share_shape_and_dtype_and_diff_is_grad():
    t = Tensor((2, 3))
    assert t.data.shape == t.grad.shape == (2, 3) and t.dtype == np.float32
    t.diff[...] = 5
    assert np.all(t.grad == 5) and t.diff is t.grad
    t.diff = np.ones((2, 3), np.float32)
    assert t.grad is t.diff
    assert t.count == 6 and t.num_axes == 2 and t.shape == (2, 3)


def test_reshape_keeps_values_when_the_count_is_unchanged_and_zeroes_otherwise():
    t = Tensor.from_array(np.arange(6.0).reshape(2, 3))
    t.reshape(3, 2)
    assert t.shape == (3, 2) and t.data.ravel().tolist() == [0, 1, 2, 3, 4, 5]
    t.reshape((4, 2))
    assert t.shape == (4, 2) and not t.data.any() and t.grad.shape == (4, 2)


def test_legacy_accessors_read_missing_trailing_axes_as_one():
    t = Tensor((64, 10))
    assert (t.num, t.channels, t.height, t.width) == (64, 10, 1, 1)
    t.reshape(2, 3, 4, 5)
    assert (t.num, t.channels, t.height, t.width) == (2, 3, 4, 5)
    t.reshape(1, 1, 1, 1, 1)
    with pytest.raises(ShapeError):
        _ = t.num


def test_shape_string_and_negative_dimensions():
    assert Tensor((64, 1, 28, 28)).shape_string() == "64 1 28 28 (50176)"
    assert Tensor(()).shape_string() == "(1)"  # a loss blob
    with pytest.raises(ShapeError, match="negative"):
        Tensor((2, -1))


def test_from_array_keeps_float_dtypes_and_converts_integers_to_float32():
    assert Tensor.from_array(np.zeros(3, np.float64)).dtype == np.float64
    assert Tensor.from_array(np.arange(3)).dtype == np.float32


def test_grad_is_allocated_on_first_use_once_even_from_several_threads():
    import threading

    tensor = Tensor((1000, 100))
    assert tensor._grad is None  # a forward-only net never pays for diffs
    seen, start = [], threading.Barrier(8)

    def touch():
        start.wait()
        seen.append(tensor.grad)

    workers = [threading.Thread(target=touch) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert all(array is seen[0] for array in seen)
    assert not seen[0].any() and seen[0].shape == (1000, 100)
    tensor.reshape(10, 10000)
    assert tensor.grad.shape == (10, 10000) and tensor.grad.base is seen[0]
