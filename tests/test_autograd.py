"""caffelite.autograd: the tape over the same Functions, checked against finite differences and against the Net."""

import numpy as np
import pytest
from google.protobuf import text_format

from caffelite import autograd as ag
from caffelite.errors import CaffeliteError, ShapeError
from caffelite.io.prototxt import read_net_text
from caffelite.net import Net, filter_net
from caffelite.phase import TRAIN
from caffelite.proto import caffe_pb2
from caffelite.rng import set_random_seed
from layer_harness import finite_differences

LENET = "models/lenet/lenet_train_test.prototxt"


def test_the_issues_division_example():
    x, y = ag.Tensor(2.5, requires_grad=True), ag.Tensor(0.5, requires_grad=True)
    z = x / y
    assert z.item() == 5.0
    z.backward()
    assert x.grad == 2.0 and y.grad == -10.0


OPERATIONS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "matmul": lambda a, b: a @ b,
    "radd": lambda a, b: 2.0 + a * b,
    "rsub": lambda a, b: 3.0 - a / b,
    "rmul": lambda a, b: 0.5 * a - b,
    "rdiv": lambda a, b: 1.0 / (a * a + 1.0) + b,
    "neg-mean": lambda a, b: -(a * b).mean(axis=0),
    "sum-axis": lambda a, b: (a * b).sum(axis=1, keepdims=True) * b,
    "view": lambda a, b: a.view(-1) * a.view(-1),
}
SHAPES = {"matmul": ((3, 4), (4, 2)), "radd": ((3, 4), (4,)), "rmul": ((3, 1), (1, 4)), "view": ((2, 3), (1,))}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_operation_gradients_match_finite_differences(name):
    rng = np.random.default_rng(1)
    shape_a, shape_b = SHAPES.get(name, ((3, 4), (3, 4)))
    a_values = rng.uniform(0.5, 1.5, shape_a)
    b_values = rng.uniform(0.5, 1.5, shape_b)
    weights = None

    def objective():
        out = OPERATIONS[name](ag.Tensor(a_values), ag.Tensor(b_values))
        return float(np.sum(out.numpy() * weights))

    a, b = ag.Tensor(a_values, requires_grad=True), ag.Tensor(b_values, requires_grad=True)
    out = OPERATIONS[name](a, b)
    weights = rng.normal(size=out.shape)
    out.backward(weights)
    expected_a, expected_b = (finite_differences(objective, values, 1e-6) for values in (a_values, b_values))
    np.testing.assert_allclose(a.grad, expected_a, rtol=1e-6, atol=1e-8)
    if name != "view":
        np.testing.assert_allclose(b.grad, expected_b, rtol=1e-6, atol=1e-8)


def test_a_tensor_used_twice_gets_the_sum_and_grads_accumulate_until_zeroed():
    x = ag.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 5.0, 7.0])
    (x * 2.0).sum().backward()
    np.testing.assert_allclose(x.grad, [5.0, 7.0, 9.0])
    x.zero_grad()
    assert not x.grad.any()


def test_no_grad_records_nothing_and_constants_need_no_grad():
    x = ag.Tensor(3.0, requires_grad=True)
    with ag.no_grad():
        y = x * x
    assert not y.requires_grad and y._node is None
    z = ag.Tensor(2.0) * ag.Tensor(4.0)
    assert not z.requires_grad and z.item() == 8.0


def test_mistakes_are_caffelite_errors():
    with pytest.raises(CaffeliteError, match=r"needs its gradient"):
        (ag.Tensor([1.0, 2.0], requires_grad=True) * 2.0).backward()
    with pytest.raises(ShapeError, match=r"MatMul: shapes \(2, 3\) and \(2, 3\) do not multiply"):
        ag.Tensor(np.ones((2, 3))) @ ag.Tensor(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="do not broadcast"):
        ag.Tensor(np.ones(3)) + ag.Tensor(np.ones(4))
    with pytest.raises(ShapeError, match="gradient of shape"):
        (ag.Tensor([1.0, 2.0], requires_grad=True) * 2.0).backward(np.ones(3))


def test_a_layer_is_the_registered_function_with_leaf_params():
    set_random_seed(3)
    ip = ag.layer("InnerProduct", dtype=np.float64, num_output=3, weight_filler=dict(type="gaussian"),
                  bias_filler=dict(type="gaussian"))
    x = ag.Tensor(np.random.default_rng(0).normal(size=(4, 5)), requires_grad=True)
    y = ip(x)
    weight, bias = (p.data for p in ip.params)
    np.testing.assert_allclose(y.numpy(), x.numpy() @ weight.T + bias, rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(ip.params[0].grad, np.ones((4, 3)).T @ x.numpy(), rtol=1e-12)
    np.testing.assert_allclose(x.grad, np.ones((4, 3)) @ weight, rtol=1e-12)
    assert all(p.requires_grad for p in ip.params)


def lenet_with_input(batch):
    """LeNet's TRAIN net with an Input layer where its Data layer is."""
    param = filter_net(_with_phase(read_net_text(LENET), TRAIN))
    del param.layer[0]
    data = text_format.Parse(f'name: "mnist" type: "Input" top: "data" top: "label" input_param {{ '
                             f'shape {{ dim: {batch} dim: 1 dim: 28 dim: 28 }} shape {{ dim: {batch} }} }}',
                             caffe_pb2.LayerParameter())
    param.layer.insert(0, data)
    return param


def _with_phase(param, phase):
    param.state.phase = phase
    return param


def test_imperative_lenet_gradients_equal_the_nets():
    batch = 8
    rng = np.random.default_rng(5)
    images = rng.random((batch, 1, 28, 28), dtype=np.float32)
    labels = rng.integers(0, 10, batch).astype(np.float32)
    net = Net(lenet_with_input(batch), TRAIN)
    net.blobs["data"].data[...] = images
    net.blobs["label"].data[...] = labels
    net.clear_param_diffs()
    net_loss = net.forward_backward()

    import importlib.util
    spec = importlib.util.spec_from_file_location("lenet_autograd", "models/lenet/lenet_autograd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lenet = module.LeNet()
    lenet(images, labels)  # sets the layers up
    params = [p for layer in lenet.layers for p in layer.params]
    for mine, theirs in zip(params, net.learnable_params):
        mine.data[...] = theirs.data
        mine.zero_grad()
    loss = lenet(images, labels)
    loss.backward()
    assert loss.item() == pytest.approx(net_loss, rel=1e-6)
    assert len(params) == len(net.learnable_params) == 8
    for mine, theirs in zip(params, net.learnable_params):
        np.testing.assert_allclose(mine.grad, theirs.grad, rtol=1e-5, atol=1e-7)
