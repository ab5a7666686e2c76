"""caffelite.autograd: the tape over the same Functions, checked against finite differences and against the Net."""

import importlib.util
import weakref

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
from shared_data import PROJECT

LENET = PROJECT / "models" / "lenet"


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
    "transpose": lambda a, b: a.T * b,
    "ndarray-left": lambda a, b: np.full(4, 2.0) - a * b,
    "matmul-batched": lambda a, b: a @ b,
    "matmul-vector": lambda a, b: a @ b,
    "vector-matmul": lambda a, b: a @ b,
}
SHAPES = {
    "matmul": ((3, 4), (4, 2)),
    "radd": ((3, 4), (4,)),
    "rmul": ((3, 1), (1, 4)),
    "view": ((2, 3), (1,)),
    "transpose": ((3, 4), (4, 3)),
    "matmul-batched": ((2, 1, 3, 4), (3, 4, 2)),
    "matmul-vector": ((2, 3, 4), (4,)),
    "vector-matmul": ((3,), (2, 3, 4)),
}


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
    assert isinstance(out, ag.Tensor) and out.dtype == np.float64
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


def test_values_make_float32_tensors_unless_they_are_float64():
    assert ag.Tensor(2.5).dtype == np.float32 and ag.Tensor([[1, 2]]).shape == (1, 2)
    assert ag.Tensor([[1, 2]]).dtype == np.float32
    assert ag.Tensor(np.ones(3)).dtype == np.float64
    assert ag.Tensor(np.ones(3), dtype=np.float32).dtype == np.float32
    x = ag.Tensor([1.0, 2.0], requires_grad=True)
    y = x.detach()
    assert not y.requires_grad and y.numpy() is x.numpy()


def test_no_grad_records_nothing_and_constants_need_no_grad():
    x = ag.Tensor(3.0, requires_grad=True)
    with ag.no_grad():
        y = x * x
    assert not y.requires_grad and y._node is None
    z = ag.Tensor(2.0) * ag.Tensor(4.0)
    assert not z.requires_grad and z.item() == 8.0
    with pytest.raises(CaffeliteError, match="does not require grad"):
        y.backward()


def test_a_graph_is_walked_back_once():
    x = ag.Tensor(2.0, requires_grad=True)
    y = x * x
    y.backward()
    with pytest.raises(CaffeliteError, match=r"layer 'Mul' \(Mul\) again"):
        y.backward()
    assert x.grad == 4.0


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


def test_a_layer_called_twice_before_backward_keeps_each_calls_state_and_shares_params():
    set_random_seed(2)
    rng = np.random.default_rng(4)
    pool = ag.layer("Pooling", dtype=np.float64, pool=caffe_pb2.PoolingParameter.MAX, kernel_size=2, stride=2)
    ip = ag.layer("InnerProduct", dtype=np.float64, num_output=2, bias_term=False,
                  weight_filler=dict(type="gaussian"))
    first, second = (ag.Tensor(rng.normal(size=(2, 1, 4, 4)), requires_grad=True) for _ in range(2))
    scores = [ip(pool(first)), ip(pool(second))]  # max pooling's backward reads where each call's maxima were
    (scores[0].sum() + 2.0 * scores[1].sum()).backward()
    weight = ip.params[0].data

    def pooled_gradient(x, factor):
        reference = ag.Tensor(x.numpy(), requires_grad=True)
        alone = ag.layer("Pooling", dtype=np.float64, pool=caffe_pb2.PoolingParameter.MAX, kernel_size=2, stride=2)
        alone(reference).backward(np.broadcast_to(factor * weight.sum(axis=0).reshape(1, 1, 2, 2), (2, 1, 2, 2)))
        return reference.grad

    np.testing.assert_allclose(first.grad, pooled_gradient(first, 1.0))
    np.testing.assert_allclose(second.grad, pooled_gradient(second, 2.0))
    assert len(ip.params) == 1 and ip.params[0].requires_grad
    pooled = [p.reshape(2, 4) for p in (_max_pool(first.numpy()), _max_pool(second.numpy()))]
    np.testing.assert_allclose(ip.params[0].grad, np.ones((2, 2)).T @ pooled[0] + 2.0 * np.ones((2, 2)).T @ pooled[1])


def test_a_call_without_grad_between_forward_and_backward_leaves_the_pending_call_intact():
    rng = np.random.default_rng(6)
    pool = ag.layer("Pooling", dtype=np.float64, pool=caffe_pb2.PoolingParameter.MAX, kernel_size=2, stride=2)
    x = ag.Tensor(rng.normal(size=(2, 1, 4, 4)), requires_grad=True)
    pooled = pool(x)
    with ag.no_grad():
        pool(ag.Tensor(rng.normal(size=(2, 1, 4, 4))))
    pooled.sum().backward()
    winners = _max_pool(x.numpy()).repeat(2, axis=2).repeat(2, axis=3) == x.numpy()
    np.testing.assert_array_equal(x.grad, winners.astype(np.float64))


def test_a_graph_nobody_holds_is_freed_at_once():
    x = ag.Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    node = weakref.ref(y._node)
    del y
    assert node() is None


def _max_pool(x):
    return x.reshape(2, 1, 2, 2, 2, 2).max(axis=(3, 5))


def test_sgd_applies_momentum_weight_decay_and_each_params_multipliers():
    ip = ag.layer("InnerProduct", num_output=1, dtype=np.float64, weight_filler=dict(type="constant", value=1.0),
                  param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)])
    x = ag.Tensor([[1.0, 2.0]])
    ip(x)  # sets the layer up: its params exist from here on
    optimizer = ag.SGD(ip.params, lr=0.1, momentum=0.5, weight_decay=0.01)
    weight, bias = ip.params
    assert (weight.lr_mult, weight.decay_mult, bias.lr_mult, bias.decay_mult) == (1, 1, 2, 0)
    expected_w, expected_b, velocity_w, velocity_b = np.ones((1, 2)), 0.0, 0.0, 0.0
    for _ in range(2):
        optimizer.zero_grad()
        ip(x).sum().backward()
        velocity_w = 0.5 * velocity_w + 0.1 * (np.array([[1.0, 2.0]]) + 0.01 * expected_w)
        velocity_b = 0.5 * velocity_b + 0.2 * 1.0
        expected_w, expected_b = expected_w - velocity_w, expected_b - velocity_b
        optimizer.step()
    np.testing.assert_allclose(weight.data, expected_w)
    np.testing.assert_allclose(bias.data, [expected_b])


def test_a_loss_weight_is_refused_with_the_way_to_weight_a_loss():
    with pytest.raises(CaffeliteError, match=r"multiply its output instead"):
        ag.layer("EuclideanLoss", loss_weight=0.5)


def lenet_with_input(batch):
    """LeNet's TRAIN net with an Input layer where its Data layer is."""
    param = filter_net(_with_phase(read_net_text(LENET / "lenet_train_test.prototxt"), TRAIN))
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

    spec = importlib.util.spec_from_file_location("lenet_autograd", LENET / "lenet_autograd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lenet = module.LeNet()
    lenet(images, labels)  # sets the layers up
    params = lenet.params
    for mine, theirs in zip(params, net.learnable_params):
        mine.data[...] = theirs.data
        mine.zero_grad()
    loss = lenet(images, labels)
    loss.backward()
    assert loss.item() == pytest.approx(net_loss, rel=1e-6)
    assert len(params) == len(net.learnable_params) == 8
    for mine, theirs in zip(params, net.learnable_params):
        np.testing.assert_allclose(mine.grad, theirs.grad, rtol=1e-5, atol=1e-7)
