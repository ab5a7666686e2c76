"""pycaffe's Net surface, driven the way pycaffe scripts drive it (`import caffelite as caffe`)."""

from collections import OrderedDict

import numpy as np
import pytest

import caffelite as caffe
from caffelite.errors import NetError, ShapeError

# Two inputs summed, then a linear layer: y = (a + b) W^T + c. No loss, so force_backward lets diffs reach a, b.
TWO_INPUTS = """name: 'sum_ip' force_backward: true
layer { name: 'input' type: 'Input' top: 'a' top: 'b' input_param { shape { dim: 4 dim: 3 } } }
layer { name: 'sum' type: 'Eltwise' bottom: 'a' bottom: 'b' top: 'sum' }
layer { name: 'ip' type: 'InnerProduct' bottom: 'sum' top: 'ip'
        inner_product_param { num_output: 2 weight_filler { type: 'gaussian' std: 1 }
                              bias_filler { type: 'gaussian' std: 1 } } }
"""


@pytest.fixture
def two_inputs(tmp_path):
    path = tmp_path / "two_inputs.prototxt"
    path.write_text(TWO_INPUTS)
    caffe.set_random_seed(5)
    return caffe.Net(str(path), caffe.TEST)


def linear(net, x):
    weight, bias = net.params["ip"][0].data, net.params["ip"][1].data
    return x.reshape(len(x), -1) @ weight.T + bias


# -- views ----------------------------------------------------------------------------------------
def test_params_and_blobs_outlive_the_net(small_net):
    params = [blob for blobs in small_net.params.values() for blob in blobs]
    blobs = list(small_net.blobs.values())
    expected = sum(float(b.data.sum()) for b in params + blobs)
    del small_net
    assert sum(float(b.data.sum()) for b in params + blobs) == expected
    assert all(np.isfinite(b.diff).all() for b in params + blobs)


def test_layer_dict_layers_and_their_param_blobs(small_net):
    assert list(small_net.layer_dict) == list(small_net._layer_names) == ["data", "conv", "ip", "loss"]
    for index, name in enumerate(small_net._layer_names):
        assert small_net.layer_dict[name] is small_net.layers[index]
        assert small_net.layer_dict[name].type == small_net.layers[index].type
    assert [layer.type for layer in small_net.layers] == ["DummyData", "Convolution", "InnerProduct",
                                                          "SoftmaxWithLoss"]
    conv = small_net.layers[1]
    assert conv.blobs is small_net.params["conv"]
    assert [blob.shape for blob in conv.blobs] == [(11, 2, 2, 2), (11,)]
    assert list(small_net.params) == ["conv", "ip"]  # layers without params are left out


def test_inputs_outputs_top_and_bottom_names(small_net):
    assert small_net.inputs == []
    assert small_net.outputs == ["loss"]
    assert small_net.top_names == OrderedDict(
        [("data", ["data", "label"]), ("conv", ["conv"]), ("ip", ["ip_blob"]), ("loss", ["loss"])]
    )
    assert small_net.bottom_names == OrderedDict(
        [("data", []), ("conv", ["data"]), ("ip", ["conv"]), ("loss", ["ip_blob", "label"])]
    )


def test_blob_names_and_loss_weights(small_net):
    assert small_net._blob_names == ["data", "label", "conv", "ip_blob", "loss"]
    assert list(small_net.blob_loss_weights.items()) == [
        ("data", 0.0), ("label", 0.0), ("conv", 0.0), ("ip_blob", 0.0), ("loss", 1.0)
    ]
    assert small_net._blob_loss_weights == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert small_net._outputs == [4] and small_net._inputs == []
    assert small_net._top_ids(0) == [0, 1] and small_net._bottom_ids(3) == [3, 1]


def test_blob_surface(small_net):
    blob = small_net.blobs["data"]
    assert blob.shape == (5, 2, 3, 4) and list(blob.shape) == [5, 2, 3, 4]
    assert (blob.num, blob.channels, blob.height, blob.width, blob.count) == (5, 2, 3, 4, 120)
    assert blob.data.shape == blob.diff.shape == (5, 2, 3, 4)
    assert blob.data.dtype == np.float32
    label = small_net.blobs["label"]
    blob.reshape(2, 3, 4, 5)
    assert blob.shape == (2, 3, 4, 5) and blob.diff.shape == (2, 3, 4, 5) and blob.count == 120
    loss = small_net.blobs["loss"]
    assert loss.shape == () and loss.count == 1
    assert label.shape == (5, 1, 1, 1)


# -- forward / backward ---------------------------------------------------------------------------
def test_forward_then_backward_gives_loss_and_param_diffs(small_net):
    out = small_net.forward()
    assert set(out) == {"loss"}
    assert out["loss"] is small_net.blobs["loss"].data and np.isfinite(out["loss"]) and out["loss"] > 0
    assert small_net.backward() == {}  # no inputs: nothing to report by default
    assert np.abs(small_net.params["conv"][0].diff).max() > 0
    assert np.abs(small_net.blobs["data"].diff).max() > 0  # force_backward reaches the data


def test_forward_from_start_to_end_runs_only_those_layers(small_net):
    small_net.forward()
    data_before = small_net.blobs["data"].data.copy()
    conv = small_net.blobs["conv"]
    conv.data[...] = np.random.default_rng(1).uniform(size=conv.shape)
    out = small_net.forward(start="ip", end="ip")
    assert set(out) == {"ip_blob"}
    np.testing.assert_allclose(out["ip_blob"], linear(small_net, conv.data), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(small_net.blobs["data"].data, data_before)  # DummyData did not refill
    out = small_net.forward(start="ip", end="ip", blobs=["conv", "ip_blob"])
    assert set(out) == {"ip_blob", "conv"}


def test_backward_from_start_to_end_gives_that_layers_bottom_diffs(small_net):
    small_net.forward()
    top_diff = np.random.default_rng(2).uniform(size=small_net.blobs["ip_blob"].shape).astype(np.float32)
    small_net.blobs["ip_blob"].diff[...] = top_diff
    small_net.blobs["data"].diff[...] = 0
    out = small_net.backward(start="ip", end="ip")
    assert set(out) == {"conv"}
    expected = (top_diff @ small_net.params["ip"][0].data).reshape(small_net.blobs["conv"].shape)
    np.testing.assert_allclose(out["conv"], expected, rtol=1e-4, atol=1e-4)
    assert not small_net.blobs["data"].diff.any()  # conv's backward did not run
    assert set(small_net.backward(start="ip", end="ip", diffs=["data"])) == {"conv", "data"}


def test_unknown_layer_or_blob_names_are_refused(small_net):
    with pytest.raises(NetError, match="no layer named 'nope'"):
        small_net.forward(end="nope")
    with pytest.raises(NetError, match="no blob named 'nope'"):
        small_net.forward(blobs=["nope"])


def test_forward_with_inputs_by_name(two_inputs):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    out = two_inputs.forward(a=a, b=b)
    assert set(out) == {"ip"}
    np.testing.assert_allclose(out["ip"], linear(two_inputs, a + b), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(two_inputs.blobs["a"].data, a, rtol=1e-6)
    out = two_inputs.forward(blobs=["sum"], a=a, b=2 * b)
    np.testing.assert_allclose(out["sum"], a + 2 * b, rtol=1e-5, atol=1e-6)


def test_forward_input_checks(two_inputs):
    a = np.ones((4, 3))
    with pytest.raises(NetError, match="'sum' is not an input blob"):
        two_inputs.forward(a=a, b=a, sum=a)
    with pytest.raises(NetError, match="missing 'b'"):
        two_inputs.forward(a=a)
    with pytest.raises(ShapeError, match="blob 'b' has batch size 4"):
        two_inputs.forward(a=a, b=np.ones((3, 3)))
    with pytest.raises(ShapeError, match="blob 'b' has shape"):
        two_inputs.forward(a=a, b=np.ones((4, 5)))
    assert not two_inputs.blobs["a"].data.any()  # a refused call copies nothing


def test_backward_with_output_diffs_by_name(two_inputs):
    two_inputs.forward(a=np.ones((4, 3)), b=np.ones((4, 3)))
    grad = np.random.default_rng(4).standard_normal((4, 2))
    out = two_inputs.backward(ip=grad)
    assert set(out) == {"a", "b"}
    expected = grad @ two_inputs.params["ip"][0].data
    np.testing.assert_allclose(out["a"], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["b"], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(NetError, match="'a' is not an output blob"):
        two_inputs.backward(a=grad)
    with pytest.raises(ShapeError, match="blob 'ip' has batch size 4"):
        two_inputs.backward(ip=np.ones((2, 2)))


# -- batching -------------------------------------------------------------------------------------
def test_batch_slices_and_pads_the_last_batch(two_inputs):
    items = np.arange(10 * 3, dtype=np.float32).reshape(10, 3)
    batches = list(two_inputs._batch({"a": items, "b": -items}))
    assert len(batches) == 3 and all(set(batch) == {"a", "b"} for batch in batches)
    np.testing.assert_array_equal(batches[1]["a"], items[4:8])
    np.testing.assert_array_equal(batches[2]["a"], np.concatenate([items[8:], np.zeros((2, 3))]))
    np.testing.assert_array_equal(batches[2]["b"][:2], -items[8:])
    assert list(two_inputs._batch({"a": items[:8]}))[-1]["a"].shape == (4, 3)  # exact multiple: no padding
    assert list(two_inputs._batch({})) == []


def test_forward_all_covers_every_item_and_drops_the_padding(two_inputs):
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((10, 3)), rng.standard_normal((10, 3))
    out = two_inputs.forward_all(blobs=["sum"], a=a, b=b)
    assert set(out) == {"ip", "sum"}
    assert out["ip"].shape == (10, 2) and out["sum"].shape == (10, 3)
    np.testing.assert_allclose(out["ip"], linear(two_inputs, a + b), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["sum"], a + b, rtol=1e-5, atol=1e-6)
    assert out["ip"].base is not two_inputs.blobs["ip"].data  # copies, not the blob's own array


def test_forward_all_without_inputs_is_one_pass(small_net):
    out = small_net.forward_all(blobs=["ip_blob"])
    assert set(out) == {"loss", "ip_blob"} and out["ip_blob"].shape == (5, 13)
    np.testing.assert_array_equal(out["ip_blob"], small_net.blobs["ip_blob"].data)


def test_forward_backward_all_batches_inputs_and_output_diffs(two_inputs):
    rng = np.random.default_rng(6)
    a, b, grad = rng.standard_normal((6, 3)), rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    outs, diffs = two_inputs.forward_backward_all(diffs=["sum"], a=a, b=b, ip=grad)
    assert set(outs) == {"ip"} and set(diffs) == {"a", "b", "sum"}
    np.testing.assert_allclose(outs["ip"], linear(two_inputs, a + b), rtol=1e-5, atol=1e-5)
    expected = grad @ two_inputs.params["ip"][0].data
    for name in ("a", "b", "sum"):
        assert diffs[name].shape == (6, 3)
        np.testing.assert_allclose(diffs[name], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(NetError, match="'nope' are neither inputs nor outputs"):
        two_inputs.forward_backward_all(a=a, b=b, nope=a)


def test_forward_backward_all_with_loss_seeded_diffs(small_net):
    outs, diffs = small_net.forward_backward_all(blobs=["ip_blob"], diffs=["ip_blob"])
    assert outs["loss"].shape == (1,)  # a scalar: one value per batch
    probs = np.exp(outs["ip_blob"] - outs["ip_blob"].max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    labels = small_net.blobs["label"].data.ravel().astype(int)
    expected = probs.copy()
    expected[np.arange(5), labels] -= 1
    np.testing.assert_allclose(diffs["ip_blob"], expected / 5, rtol=1e-4, atol=1e-6)


# -- reshape, callbacks, clearing -----------------------------------------------------------------
def test_reshape_carries_a_new_input_shape_through(two_inputs):
    two_inputs.blobs["a"].reshape(7, 3)
    two_inputs.blobs["b"].reshape(7, 3)
    two_inputs.reshape()
    assert two_inputs.blobs["sum"].shape == (7, 3) and two_inputs.blobs["ip"].shape == (7, 2)
    out = two_inputs.forward_all(a=np.ones((9, 3)), b=np.zeros((9, 3)))
    assert out["ip"].shape == (9, 2)  # batches of the new size: 7 + 2 padded


def test_callbacks_around_each_layer(two_inputs):
    events = []
    two_inputs.before_forward(lambda index: events.append(("before", index)))
    two_inputs.after_forward(lambda index: events.append(("after", index)))
    two_inputs.after_backward(lambda index: events.append(("back", index)))
    two_inputs.forward()
    assert events == [("before", 0), ("after", 0), ("before", 1), ("after", 1), ("before", 2), ("after", 2)]
    events.clear()
    two_inputs.backward(start="ip", end="sum")
    assert events == [("back", 2), ("back", 1)]


def test_clear_param_diffs_zeroes_the_arrays_in_place(small_net):
    small_net.forward()
    small_net.backward()
    diff = small_net.params["conv"][0].diff
    assert np.abs(diff).max() > 0
    small_net.clear_param_diffs()
    assert not diff.any()


# -- weights --------------------------------------------------------------------------------------
def assert_same_params(net, other):
    assert list(net.params) == list(other.params)
    for name, blobs in net.params.items():
        for mine, theirs in zip(blobs, other.params[name]):
            np.testing.assert_array_equal(mine.data, theirs.data)


def test_save_then_load_with_the_weights_keyword_and_the_legacy_form(small_net, small_net_file, tmp_path):
    weights = str(tmp_path / "small.caffemodel")
    small_net.save(weights)
    caffe.set_random_seed(99)
    fresh = caffe.Net(small_net_file, caffe.TRAIN)
    assert not np.array_equal(fresh.params["ip"][0].data, small_net.params["ip"][0].data)
    assert_same_params(small_net, caffe.Net(small_net_file, caffe.TRAIN, weights=weights))
    assert_same_params(small_net, caffe.Net(small_net_file, weights, caffe.TRAIN))
    fresh.copy_from(weights)
    assert_same_params(small_net, fresh)


def test_save_hdf5_then_load_hdf5(small_net, small_net_file, tmp_path):
    weights = str(tmp_path / "small.h5")
    small_net.save_hdf5(weights)
    caffe.set_random_seed(98)
    other = caffe.Net(small_net_file, caffe.TRAIN)
    other.load_hdf5(weights)
    assert_same_params(small_net, other)


def test_share_with_uses_the_same_arrays(small_net, small_net_file):
    caffe.set_random_seed(97)
    other = caffe.Net(small_net_file, caffe.TRAIN)
    other.share_with(small_net)
    assert_same_params(small_net, other)
    small_net.params["ip"][0].data[...] = 0.25
    assert np.all(other.params["ip"][0].data == 0.25)


# -- net state: level, stages, one file for train / val / deploy ----------------------------------
LEVELS = """
layer { name: 'data' type: 'DummyData' top: 'data' dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
""" + "".join(
    f"""layer {{ name: '{name}' type: 'InnerProduct' bottom: 'data' top: '{name}' {rule}
          inner_product_param {{ num_output: 1 }} }}
    """
    for name, rule in [
        ("any_level", ""),
        ("level0", "include { min_level: 0 max_level: 0 }"),
        ("level1", "include { min_level: 1 max_level: 1 }"),
        ("from0", "include { min_level: 0 }"),
        ("from1", "include { min_level: 1 }"),
    ]
)

STAGES = """
layer { name: 'data' type: 'DummyData' top: 'data' dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
""" + "".join(
    f"""layer {{ name: '{name}' type: 'InnerProduct' bottom: 'data' top: '{name}' {rule}
          inner_product_param {{ num_output: 1 }} }}
    """
    for name, rule in [
        ("A", "include { stage: 'A' }"),
        ("B", "include { stage: 'B' }"),
        ("A_or_B", "include { stage: 'A' } include { stage: 'B' }"),
        ("A_and_B", "include { stage: 'A' stage: 'B' }"),
    ]
)

ALL_IN_ONE = """
layer { name: 'train_data' type: 'DummyData' top: 'data' top: 'label'
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } shape { dim: 1 dim: 1 dim: 1 dim: 1 } }
  include { phase: TRAIN stage: 'train' } }
layer { name: 'val_data' type: 'DummyData' top: 'data' top: 'label'
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } shape { dim: 1 dim: 1 dim: 1 dim: 1 } }
  include { phase: TEST stage: 'val' } }
layer { name: 'deploy_data' type: 'Input' top: 'data' input_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } }
  include { phase: TEST stage: 'deploy' } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip' inner_product_param { num_output: 2 } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'ip' bottom: 'label' top: 'loss'
  include: { phase: TRAIN stage: 'train' } include: { phase: TEST stage: 'val' } }
layer { name: 'pred' type: 'Softmax' bottom: 'ip' top: 'pred' include: { phase: TEST stage: 'deploy' } }
"""


def non_data_blobs(net):
    return [name for name in net.blobs if "data" not in name]  # also drops the split blobs of 'data'


@pytest.mark.parametrize("level, kept", [(0, ["any_level", "level0", "from0"]),
                                         (1, ["any_level", "level1", "from0", "from1"])])
def test_level_keyword(tmp_path, level, kept):
    path = tmp_path / "levels.prototxt"
    path.write_text(LEVELS)
    net = caffe.Net(str(path), caffe.TEST, level=level) if level else caffe.Net(str(path), caffe.TEST)
    assert non_data_blobs(net) == kept


@pytest.mark.parametrize("stages, kept", [(["A"], ["A", "A_or_B"]), (["B"], ["B", "A_or_B"]),
                                          (["A", "B"], ["A", "B", "A_or_B", "A_and_B"]), ([], [])])
def test_stages_keyword(tmp_path, stages, kept):
    path = tmp_path / "stages.prototxt"
    path.write_text(STAGES)
    assert non_data_blobs(caffe.Net(str(path), caffe.TEST, stages=stages)) == kept


@pytest.mark.parametrize("phase, stage, outputs", [(caffe.TRAIN, "train", ["loss"]), (caffe.TEST, "val", ["loss"]),
                                                   (caffe.TEST, "deploy", ["pred"])])
def test_one_file_for_train_val_and_deploy(tmp_path, phase, stage, outputs):
    path = tmp_path / "all_in_one.prototxt"
    path.write_text(ALL_IN_ONE)
    net = caffe.Net(str(path), phase, stages=[stage])
    assert list(net.blobs["data"].shape) == [1, 1, 10, 10]
    assert net.outputs == outputs
    assert net.inputs == (["data"] if stage == "deploy" else [])


def test_missing_model_or_weights_file_is_reported(small_net_file, tmp_path):
    missing = str(tmp_path / "missing.caffemodel")
    with pytest.raises(caffe.CaffeliteError, match="missing.caffemodel"):
        caffe.Net(small_net_file, caffe.TEST, weights=missing)
    with pytest.raises(caffe.CaffeliteError, match="nothing.prototxt"):
        caffe.Net(str(tmp_path / "nothing.prototxt"), caffe.TEST)
