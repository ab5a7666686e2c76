"""Net construction (filtering, splits, in-place, sharing, loss weights, backward pruning), running, weights."""

import numpy as np
import pytest
from google.protobuf import text_format

import caffelite
from caffelite.errors import NetError, ShapeError
from caffelite.net import filter_net
from caffelite.proto import caffe_pb2


def net_param(text):
    return text_format.Parse(text, caffe_pb2.NetParameter())


def make_net(text, phase=caffelite.TRAIN, dtype=np.float64, **kwargs):
    caffelite.set_random_seed(7)
    return caffelite.Net(net_param(text), phase, dtype=dtype, **kwargs)


INPUT = """
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
"""

# data -> ip (shared by two consumers) -> loss; a small MLP used by several tests.
MLP = INPUT + """
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.5 }
                              bias_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip2" bottom: "label" top: "acc" include { phase: TEST } }
"""


def feed(net, seed=0):
    rng = np.random.default_rng(seed)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape)
    net.blobs["label"].data[...] = rng.integers(0, 3, size=net.blobs["label"].shape)


# -- step 1: filtering ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rule, state, kept",
    [
        ("include { phase: TRAIN }", "phase: TRAIN", True),
        ("include { phase: TRAIN }", "phase: TEST", False),
        ("exclude { phase: TEST }", "phase: TEST", False),
        ("include { min_level: 2 }", "level: 1", False),
        ("include { min_level: 2 max_level: 3 }", "level: 3", True),
        ("include { stage: 'a' stage: 'b' }", "stage: 'a'", False),
        ("include { stage: 'a' stage: 'b' }", "stage: 'b' stage: 'a'", True),
        ("include { not_stage: 'deploy' }", "stage: 'deploy'", False),
        ("include { phase: TEST } include { stage: 'x' }", "phase: TRAIN stage: 'x'", True),
        ("", "phase: TEST", True),
    ],
)
def test_filter_follows_net_state_rules(rule, state, kept):
    param = net_param(f"state {{ {state} }} layer {{ name: 'l' type: 'ReLU' {rule} }}")
    assert [layer.name for layer in filter_net(param).layer] == (["l"] if kept else [])


def test_include_and_exclude_together_is_an_error():
    param = net_param("layer { name: 'l' type: 'ReLU' include { phase: TRAIN } exclude { phase: TEST } }")
    with pytest.raises(NetError, match="layer 'l'"):
        filter_net(param)


# -- step 3: build --------------------------------------------------------------------------------
def test_blobs_params_inputs_outputs_under_pycaffes_names():
    net = make_net(MLP, caffelite.TEST)
    assert net.inputs == ["data", "label"]
    assert net.outputs == ["acc", "loss"]  # Caffe lists outputs sorted by name
    assert list(net.params) == ["ip1", "ip2"]
    assert [p.shape for p in net.params["ip1"]] == [(5, 3), (5,)]
    assert net.blobs["ip1"].shape == (4, 5) and net.blobs["loss"].shape == ()
    assert net.top_names["relu1"] == ["ip1"] and net.bottom_names["loss"][0] == "ip2_ip2_0_split_0"
    assert net.blob_loss_weights["loss"] == 1.0 and net.blob_loss_weights["acc"] == 0.0


def test_in_place_layers_share_one_tensor():
    net = make_net(MLP)
    relu = net._slots[net._layer_index("relu1")]
    assert relu.bottom[0] is relu.top[0] is net.blobs["ip1"]


def test_forward_returns_outputs_and_accepts_inputs_by_name():
    net = make_net(MLP, caffelite.TEST)
    rng = np.random.default_rng(1)
    data = rng.standard_normal((4, 3))
    out = net.forward(data=data, label=np.array([0, 1, 2, 0]))
    w, b = net.params["ip1"][0].data, net.params["ip1"][1].data
    scores = np.maximum(data @ w.T + b, 0) @ net.params["ip2"][0].data.T + net.params["ip2"][1].data
    probs = np.exp(scores - scores.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    expected_loss = -np.mean(np.log(probs[np.arange(4), [0, 1, 2, 0]]))
    assert set(out) == {"acc", "loss"}
    np.testing.assert_allclose(out["loss"], expected_loss, rtol=1e-10)
    np.testing.assert_allclose(out["acc"], np.mean(scores.argmax(1) == [0, 1, 2, 0]))


def test_forward_refuses_unknown_inputs_and_wrong_shapes():
    net = make_net(MLP)
    with pytest.raises(NetError, match="not an input blob"):
        net.forward(ip1=np.zeros((4, 5)))
    with pytest.raises(ShapeError, match="blob 'data'"):
        net.forward(data=np.zeros((4, 7)))


def test_errors_name_the_layer_and_what_was_expected():
    with pytest.raises(NetError, match=r"layer 'loss' \(SoftmaxWithLoss\).*unknown bottom blob 'nope'"):
        make_net(INPUT + 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "nope" }')
    with pytest.raises(NetError, match=r"layer 'r' \(ReLU\): expects 1 bottom, got 2"):
        make_net(INPUT + 'layer { name: "r" type: "ReLU" bottom: "data" bottom: "label" top: "r" }')
    with pytest.raises(NetError, match=r"unknown layer type 'Nope'.*InnerProduct"):
        make_net(INPUT + 'layer { name: "x" type: "Nope" bottom: "data" top: "x" }')
    with pytest.raises(NetError, match="produced by multiple sources"):
        make_net(INPUT + 'layer { name: "r" type: "ReLU" bottom: "label" top: "data" }')


# -- gradients through the whole net ---------------------------------------------------------------
def net_loss(net):
    return net.forward_range()


def numeric_param_grads(net, step=1e-6):
    grads = []
    for tensor in net.learnable_params:
        numeric = np.zeros_like(tensor.data)
        for index in np.ndindex(tensor.shape):
            original = tensor.data[index]
            tensor.data[index] = original + step
            plus = net_loss(net)
            tensor.data[index] = original - step
            minus = net_loss(net)
            tensor.data[index] = original
            numeric[index] = (plus - minus) / (2 * step)
        grads.append(numeric)
    return grads


def analytic_param_grads(net):
    net.clear_param_diffs()
    net.forward_backward()
    return [t.grad.copy() for t in net.learnable_params]


def test_net_backward_matches_finite_differences_through_splits_and_in_place():
    net = make_net(MLP)
    feed(net)
    for analytic, numeric in zip(analytic_param_grads(net), numeric_param_grads(net)):
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_shared_params_are_one_learnable_param_accumulating_both_uses():
    text = INPUT + """
    layer { name: "a" type: "InnerProduct" bottom: "data" top: "a"
            param { name: "w" } inner_product_param { num_output: 3 bias_term: false
            weight_filler { type: "gaussian" } } }
    layer { name: "b" type: "InnerProduct" bottom: "a" top: "b"
            param { name: "w" } inner_product_param { num_output: 3 bias_term: false } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "b" bottom: "label" top: "loss" }
    """
    net = make_net(text)
    feed(net)
    assert len(net.learnable_params) == 1
    assert np.shares_memory(net.params["a"][0].data, net.params["b"][0].data)
    for analytic, numeric in zip(analytic_param_grads(net), numeric_param_grads(net)):
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_sharing_checks_shapes():
    text = INPUT + """
    layer { name: "a" type: "InnerProduct" bottom: "data" top: "a" param { name: "w" }
            inner_product_param { num_output: 3 } }
    layer { name: "b" type: "InnerProduct" bottom: "a" top: "b" param { name: "w" }
            inner_product_param { num_output: 4 } }
    """
    with pytest.raises(ShapeError, match="cannot share param 'w'"):
        make_net(text)


def test_loss_weight_scales_loss_and_gradients():
    plain = make_net(MLP)
    feed(plain)
    weighted = make_net(MLP.replace('top: "loss" }', 'top: "loss" loss_weight: 2.5 }'))
    feed(weighted)
    assert weighted.forward_range() == pytest.approx(2.5 * plain.forward_range())
    for g1, g2 in zip(analytic_param_grads(plain), analytic_param_grads(weighted)):
        np.testing.assert_allclose(g2, 2.5 * g1)


def test_backward_pruning_propagate_down_and_force_backward():
    net = make_net(MLP, caffelite.TEST)
    assert net.layer_need_backward("ip1") and not net.layer_need_backward("acc")
    assert not net.layer_need_backward("data")
    frozen = make_net(MLP.replace('bottom: "ip1" top: "ip2"', 'bottom: "ip1" top: "ip2" propagate_down: false'))
    assert not frozen.layer_need_backward("ip1")  # nothing below ip2 receives a gradient
    assert frozen.layer_need_backward("ip2")
    forced = make_net("force_backward: true " + MLP)
    forced.forward(data=np.ones((4, 3)), label=np.zeros(4))
    diffs = forced.backward()
    assert np.any(diffs["data"] != 0)


def test_lr_mult_zero_everywhere_means_no_backward():
    frozen = MLP.replace('name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"',
                         'name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" '
                         "param { lr_mult: 0 } param { lr_mult: 0 }")
    net = make_net(frozen)
    assert not net.layer_need_backward("ip1") and net.layer_need_backward("ip2")
    assert net.params_lr[:2] == [0, 0]


# -- weights --------------------------------------------------------------------------------------
def test_save_then_copy_from_round_trips_every_bit(tmp_path):
    source = make_net(MLP, dtype=np.float32)
    path = tmp_path / "mlp.caffemodel"
    source.save(str(path))
    caffelite.set_random_seed(99)
    target = caffelite.Net(net_param(MLP), caffelite.TEST, weights=str(path))
    for name in source.params:
        for a, b in zip(source.params[name], target.params[name]):
            assert a.data.tobytes() == b.data.tobytes()
    saved = caffe_pb2.NetParameter.FromString(path.read_bytes())
    ip1 = next(layer for layer in saved.layer if layer.name == "ip1")
    assert list(ip1.blobs[0].shape.dim) == [5, 3] and len(ip1.blobs[0].data) == 15
    assert ip1.type == "InnerProduct" and ip1.phase == caffelite.TRAIN


def test_copy_from_ignores_unknown_layers_and_names_the_layer_on_shape_mismatch(tmp_path):
    wide = MLP.replace("num_output: 5", "num_output: 6")
    source = make_net(wide, dtype=np.float32)
    path = tmp_path / "other.caffemodel"
    source.save(str(path))
    with pytest.raises(ShapeError, match=r"layer 'ip1'.*rename the layer"):
        make_net(MLP, dtype=np.float32).copy_from(str(path))
    renamed = make_net(wide.replace('name: "ip1"', 'name: "fresh"'), dtype=np.float32)
    before = renamed.params["fresh"][0].data.copy()
    renamed.copy_from(str(path))  # the source's ip1 matches no layer now: ignored, as Caffe does
    np.testing.assert_array_equal(renamed.params["fresh"][0].data, before)
    np.testing.assert_array_equal(renamed.params["ip2"][0].data, source.params["ip2"][0].data)


def test_constructor_forms_and_phase_check(tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(MLP)
    weights = tmp_path / "w.caffemodel"
    make_net(MLP, dtype=np.float32).save(str(weights))
    legacy = caffelite.Net(str(path), str(weights), caffelite.TEST)
    assert legacy.phase == caffelite.TEST and "acc" in legacy.outputs
    with pytest.raises(caffelite.CaffeliteError, match="phase"):
        caffelite.Net(str(path), 7)


def test_set_input_arrays_feeds_a_leading_memory_data_layer():
    text = """
    layer { name: "mem" type: "MemoryData" top: "data" top: "label"
            memory_data_param { batch_size: 2 channels: 1 height: 1 width: 3 } }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
    """
    net = make_net(text)
    data = np.arange(12, dtype=np.float64).reshape(4, 1, 1, 3)
    net.set_input_arrays(data, np.array([0, 1, 1, 0]))
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, data[:2])
    net.forward()
    np.testing.assert_array_equal(net.blobs["label"].data.ravel(), [1, 0])
    with pytest.raises(NetError, match="first layer is a MemoryData layer"):
        make_net(MLP).set_input_arrays(data, np.zeros(4))
