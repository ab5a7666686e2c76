"""Classifier: preprocessing, 10-crop averaging and centre-crop prediction against a hand computation."""

import numpy as np
import pytest

import caffelite as caffe
from caffelite.classifier import Classifier

DEPLOY = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 10 dim: 3 dim: 4 dim: 4 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.1 }
                              bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""

MEAN = np.array([0.1, 0.2, 0.3])


@pytest.fixture
def model(tmp_path):
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(DEPLOY)
    weights = tmp_path / "tiny.caffemodel"
    caffe.Net(str(deploy), caffe.TEST).save(str(weights))
    return str(deploy), str(weights)


def make_classifier(model, **options):
    deploy, weights = model
    return Classifier(deploy, weights, mean=MEAN, raw_scale=2.0, input_scale=0.5, channel_swap=(2, 1, 0), **options)


def scores(classifier, hwc_crop):
    """The net's class probabilities for one (4, 4, 3) crop, by hand: preprocess, inner product, softmax."""
    chw = hwc_crop.transpose(2, 0, 1)[::-1].astype(np.float64)
    item = (chw * 2.0 - MEAN[:, None, None]) * 0.5
    weight, bias = (p.data.astype(np.float64) for p in classifier.params["fc"])
    logits = weight @ item.ravel() + bias
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def images():
    rng = np.random.default_rng(5)
    return [rng.uniform(0, 1, size=(7, 9, 3)).astype(np.float32) for _ in range(3)]


def test_classifier_is_a_test_phase_net_with_loaded_weights(model):
    classifier = make_classifier(model)
    reference = caffe.Net(model[0], caffe.TEST, weights=model[1])
    assert isinstance(classifier, caffe.Net)
    assert classifier.phase == caffe.TEST
    np.testing.assert_array_equal(classifier.params["fc"][0].data, reference.params["fc"][0].data)
    np.testing.assert_array_equal(classifier.crop_dims, (4, 4))
    np.testing.assert_array_equal(classifier.image_dims, (4, 4))


def test_oversampled_prediction_is_the_mean_over_ten_crops(model):
    classifier = make_classifier(model, image_dims=(6, 6))
    inputs = images()
    predictions = classifier.predict(inputs)
    assert predictions.shape == (3, 5)
    for image, prediction in zip(inputs, predictions):
        resized = caffe.io.resize_image(image, (6, 6))
        windows = [resized[:4, :4], resized[:4, 2:], resized[2:, :4], resized[2:, 2:], resized[1:5, 1:5]]
        crops = windows + [w[:, ::-1] for w in windows]
        expected = np.mean([scores(classifier, crop) for crop in crops], axis=0)
        np.testing.assert_allclose(prediction, expected, rtol=1e-4, atol=1e-6)


def test_centre_crop_prediction(model):
    classifier = make_classifier(model, image_dims=(7, 7))
    inputs = images()
    predictions = classifier.predict(inputs, oversample=False)
    assert predictions.shape == (3, 5)
    for image, prediction in zip(inputs, predictions):
        # centre 3.5 minus half the crop, 1.5, truncates to 1
        crop = caffe.io.resize_image(image, (7, 7))[1:5, 1:5]
        np.testing.assert_allclose(prediction, scores(classifier, crop), rtol=1e-4, atol=1e-6)


def test_default_image_dims_predict_whole_image_crops(model):
    classifier = make_classifier(model)
    inputs = images()[:1]
    expected = scores(classifier, caffe.io.resize_image(inputs[0], (4, 4)))
    # with image_dims equal to the crop every one of the ten crops is the whole image or its mirror
    single = classifier.predict(inputs, oversample=False)[0]
    np.testing.assert_allclose(single, expected, rtol=1e-4, atol=1e-6)
    mirrored = scores(classifier, caffe.io.resize_image(inputs[0], (4, 4))[:, ::-1])
    np.testing.assert_allclose(classifier.predict(inputs)[0], (expected + mirrored) / 2, rtol=1e-4, atol=1e-6)
