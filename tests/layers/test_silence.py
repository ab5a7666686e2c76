"""Silence: no tops, nothing computed, zero gradients for the bottoms that ask."""

import numpy as np
import pytest
from google.protobuf import text_format

from caffelite.errors import NetError
from caffelite.function import LAYERS
from caffelite.proto import caffe_pb2
from caffelite.tensor import Tensor


def build(arrays, num_top=0):
    # The test harness always gives a layer at least one top; Silence has none, so it is built by hand.
    param = text_format.Parse('name: "quiet" type: "Silence"', caffe_pb2.LayerParameter())
    bottom = [Tensor.from_array(np.asarray(a, dtype=np.float64)) for a in arrays]
    top = [Tensor() for _ in range(num_top)]
    layer = LAYERS.get("Silence")(param, dtype=np.float64)
    layer.check_blob_counts(len(bottom), len(top))
    layer.setup(bottom, top)
    layer.reshape(bottom, top)
    return layer, bottom, top


def test_forward_leaves_the_bottoms_alone_and_backward_zeroes_asked_grads():
    arrays = [np.arange(6.0).reshape(2, 3), np.ones(4)]
    layer, bottom, top = build(arrays)
    layer.forward(bottom, top)
    for b, a in zip(bottom, arrays):
        np.testing.assert_array_equal(b.data, a)
        b.grad[...] = 5
    layer.backward(top, [True, False], bottom)
    assert not bottom[0].grad.any() and np.all(bottom[1].grad == 5)


def test_blob_counts():
    with pytest.raises(NetError, match="layer 'quiet' \\(Silence\\): expects 0 tops"):
        build([np.ones(2)], num_top=1)
    with pytest.raises(NetError, match="at least 1 bottom"):
        build([])
