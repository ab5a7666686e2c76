"""InfogainLoss: softmax + H-weighted log loss against loops, H from a bottom or a binaryproto, gradients."""

import numpy as np
import pytest

from caffelite.errors import NetError, ShapeError
from caffelite.io.blob import write_binaryproto
from layer_harness import check_gradients, make_layer, run_forward
from softmax_loss_helpers import random_scores_and_labels, reference_softmax_loss


def inputs(shape=(3, 4, 2, 2), axis=1, seed=0, ignore=None):
    rng = np.random.default_rng(seed)
    scores, labels = random_scores_and_labels(rng, shape, axis, ignore)
    classes = shape[axis]
    infogain = rng.uniform(0, 2, (classes, classes))  # not symmetric: rows and columns must not be confused
    return scores, labels, infogain


def reference(scores, labels, infogain, axis, ignore, mode):
    def position_loss(prob, label):
        return -sum(infogain[label, k] * np.log(max(prob[k], 1e-20)) for k in range(len(prob)))

    return reference_softmax_loss(scores, labels, axis, ignore, mode, position_loss)


def layer_text(loss_param="", infogain_param="", h_bottom=True, tops='top: "loss"'):
    bottoms = 'bottom: "score" bottom: "label"' + (' bottom: "H"' if h_bottom else "")
    return (f'name: "info" type: "InfogainLoss" {bottoms} {tops} loss_param {{ {loss_param} }} '
            f'infogain_loss_param {{ {infogain_param} }}')


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, 2])
def test_forward_matches_loops(mode, ignore):
    scores, labels, infogain = inputs(ignore=ignore)
    ignore_text = "" if ignore is None else f"ignore_label: {ignore}"
    layer, bottom, top = make_layer(layer_text(f"normalization: {mode} {ignore_text}"), [scores, labels, infogain])
    (loss,) = run_forward(layer, bottom, top)
    assert loss.shape == () and layer.is_loss
    np.testing.assert_allclose(loss, reference(scores, labels, infogain, 1, ignore, mode), rtol=1e-12)


def test_matrix_from_source_file(tmp_path):
    scores, labels, infogain = inputs()
    path = tmp_path / "H.binaryproto"
    write_binaryproto(infogain.reshape(1, 1, 4, 4), path)
    layer, bottom, top = make_layer(layer_text(infogain_param=f'source: "{path}"', h_bottom=False),
                                    [scores, labels])
    (loss,) = run_forward(layer, bottom, top)
    stored = infogain.astype(np.float32).astype(np.float64)  # the file holds float32
    np.testing.assert_allclose(loss, reference(scores, labels, stored, 1, None, "VALID"), rtol=1e-12)
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_identity_matrix_is_softmax_with_loss():
    scores, labels, _ = inputs()
    layer, bottom, top = make_layer(layer_text(), [scores, labels, np.eye(4)])
    (loss,) = run_forward(layer, bottom, top)
    softmax_loss = make_layer('type: "SoftmaxWithLoss" bottom: "s" bottom: "l" top: "loss"', [scores, labels])
    np.testing.assert_allclose(loss, run_forward(*softmax_loss)[0], rtol=1e-13)


@pytest.mark.parametrize("axis_text, axis", [("axis: 2", 2), ("axis: -1", 3)])
def test_other_class_axis(axis_text, axis):
    scores, labels, infogain = inputs(shape=(2, 3, 4, 3), axis=axis)
    layer, bottom, top = make_layer(layer_text(infogain_param=axis_text), [scores, labels, infogain])
    (loss,) = run_forward(layer, bottom, top)
    np.testing.assert_allclose(loss, reference(scores, labels, infogain, axis, None, "VALID"), rtol=1e-12)


def test_softmax_param_axis_is_not_used():
    scores, labels, infogain = inputs()
    text = layer_text() + " softmax_param { axis: 2 }"
    (loss,) = run_forward(*make_layer(text, [scores, labels, infogain]))
    np.testing.assert_allclose(loss, reference(scores, labels, infogain, 1, None, "VALID"), rtol=1e-12)


def test_second_top_is_the_probabilities():
    scores, labels, infogain = inputs()
    layer, bottom, top = make_layer(layer_text(tops='top: "loss" top: "prob"'), [scores, labels, infogain])
    _, prob = run_forward(layer, bottom, top)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    np.testing.assert_allclose(prob, e / e.sum(axis=1, keepdims=True), rtol=1e-13)


def test_float32_stays_float32(tmp_path):
    scores, labels, infogain = inputs()
    path = tmp_path / "H.binaryproto"
    write_binaryproto(infogain, path)
    text = layer_text(infogain_param=f'source: "{path}"', h_bottom=False, tops='top: "loss" top: "prob"')
    layer, bottom, top = make_layer(text, [scores, labels], dtype=np.float32)
    loss, prob = run_forward(layer, bottom, top)
    top[0].grad[...] = 1
    layer.backward(top, [True, False], bottom)
    assert loss.dtype == prob.dtype == bottom[0].grad.dtype == np.float32
    expected = reference(scores.astype(np.float32), labels, infogain.astype(np.float32), 1, None, "VALID")
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_underflowing_probability_is_clamped_at_1e_20():
    scores, infogain = np.array([[0.0, 1000.0]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    (loss,) = run_forward(*make_layer(layer_text(), [scores, np.array([0.0]), infogain]))
    np.testing.assert_allclose(loss, -np.log(1e-20), rtol=1e-13)


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, 0])
def test_gradients(mode, ignore):
    scores, labels, infogain = inputs(shape=(2, 3, 2, 2), ignore=ignore, seed=3)
    ignore_text = "" if ignore is None else f"ignore_label: {ignore}"
    layer, bottom, top = make_layer(layer_text(f"normalization: {mode} {ignore_text}"), [scores, labels, infogain])
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_gradients_along_last_axis():
    scores, labels, infogain = inputs(shape=(2, 2, 3), axis=2, seed=4)
    layer, bottom, top = make_layer(layer_text(infogain_param="axis: -1"), [scores, labels, infogain])
    check_gradients(layer, bottom, top, check_bottom=[0])


def test_probability_top_carries_no_gradient():
    # As in Caffe, only the loss is differentiated; a grad on the probability top is ignored.
    scores, labels, infogain = inputs(seed=5)
    grads = []
    for tops, seed_prob in (('top: "loss"', None), ('top: "loss" top: "prob"', 7.0)):
        layer, bottom, top = make_layer(layer_text(tops=tops), [scores, labels, infogain])
        run_forward(layer, bottom, top)
        top[0].grad[...] = 1.5
        if seed_prob is not None:
            top[1].grad[...] = seed_prob
        layer.backward(top, [True, False, False], bottom)
        grads.append(bottom[0].grad.copy())
    np.testing.assert_array_equal(grads[0], grads[1])


def test_gradient_by_hand():
    scores, labels, infogain = np.array([[1.0, 2.0, 0.5]]), np.array([1.0]), np.array(
        [[1.0, 0.0, 0.0], [0.5, 2.0, 0.25], [0.0, 0.0, 1.0]])
    layer, bottom, top = make_layer(layer_text(), [scores, labels, infogain])
    run_forward(layer, bottom, top)
    top[0].grad[...] = 2.0
    layer.backward(top, [True, False, False], bottom)
    prob = np.exp(scores) / np.exp(scores).sum()
    np.testing.assert_allclose(bottom[0].grad, 2.0 * (prob * 2.75 - infogain[1]), rtol=1e-13)


def test_labels_and_matrix_take_no_gradient():
    scores, labels, infogain = inputs()
    layer, bottom, top = make_layer(layer_text(), [scores, labels, infogain])
    run_forward(layer, bottom, top)
    with pytest.raises(NetError, match="labels"):
        layer.backward(top, [True, True, False], bottom)
    with pytest.raises(NetError, match="infogain matrix"):
        layer.backward(top, [True, False, True], bottom)
    assert [layer.allow_force_backward(i) for i in range(3)] == [True, False, False]


def test_configuration_errors(tmp_path):
    scores, labels, infogain = inputs()
    with pytest.raises(NetError, match=r"layer 'info' \(InfogainLoss\).*source"):
        make_layer(layer_text(h_bottom=False), [scores, labels])
    with pytest.raises(NetError, match=r"layer 'info' \(InfogainLoss\).*no such file"):
        make_layer(layer_text(infogain_param=f'source: "{tmp_path}/missing"', h_bottom=False), [scores, labels])
    with pytest.raises(NetError, match="normalization"):
        make_layer(layer_text("normalize: true"), [scores, labels, infogain])
    with pytest.raises(ShapeError, match="4x4"):
        make_layer(layer_text(), [scores, labels, np.ones((3, 3))])
    path = tmp_path / "H3.binaryproto"
    write_binaryproto(np.ones((3, 3)), path)
    with pytest.raises(ShapeError, match="4x4"):
        make_layer(layer_text(infogain_param=f'source: "{path}"', h_bottom=False), [scores, labels])
    with pytest.raises(ShapeError, match="labels"):
        make_layer(layer_text(), [scores, np.zeros((3, 2, 3)), infogain])
    layer, bottom, top = make_layer(layer_text(), [np.zeros((2, 3)), np.array([0.0, 3.0]), np.eye(3)])
    with pytest.raises(ShapeError, match="label 3"):
        run_forward(layer, bottom, top)
