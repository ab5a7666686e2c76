"""Parameter: a zero-filled learnable blob of the given shape copied to the top; its grad accumulates the top's."""

import numpy as np
import pytest

from caffelite.errors import NetError
from layer_harness import check_gradients, make_layer, run_forward


def parameter_text(dims):
    shape = " ".join(f"dim: {d}" for d in dims)
    return f'name: "p" type: "Parameter" top: "w" parameter_param {{ shape {{ {shape} }} }}'


@pytest.mark.parametrize("dims", [(2, 3), (4,), (1, 2, 3, 2), ()])
def test_top_holds_the_param(dims):
    layer, bottom, top = make_layer(parameter_text(dims), [])
    assert [p.shape for p in layer.params] == [dims] and top[0].shape == dims
    assert not layer.params[0].data.any()  # Caffe leaves the blob unfilled (zeros)
    values = np.random.default_rng(0).normal(size=dims)
    layer.params[0].data[...] = values
    (y,) = run_forward(layer, bottom, top)
    np.testing.assert_array_equal(y, values)


def test_gradients():
    layer, bottom, top = make_layer(parameter_text((2, 3)), [])
    layer.params[0].data[...] = np.random.default_rng(1).normal(size=(2, 3))
    check_gradients(layer, bottom, top)


def test_grad_accumulates_and_shared_arrays_are_read_at_each_use():
    layer, bottom, top = make_layer(parameter_text((3,)), [], dtype=np.float32)
    layer.params[0].data = np.array([1.0, 2.0, 3.0], dtype=np.float32)  # as the Net does when sharing
    (y,) = run_forward(layer, bottom, top)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [1, 2, 3])
    top[0].grad[...] = [1, 0, 2]
    layer.backward(top, [], bottom)
    layer.backward(top, [], bottom)
    np.testing.assert_array_equal(layer.params[0].grad, [2, 0, 4])


def test_negative_dims_and_bottoms_are_refused():
    with pytest.raises(NetError, match="layer 'p' \\(Parameter\\): bad parameter_param shape"):
        make_layer(parameter_text((2, -1)), [])
    with pytest.raises(NetError, match="expects 0 bottoms"):
        make_layer('type: "Parameter" bottom: "x" parameter_param { shape { dim: 1 } }', [np.zeros(1)])
