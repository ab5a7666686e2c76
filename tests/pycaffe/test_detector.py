"""Detector: windows cropped from image files, warped, classified; context padding filled with the mean."""

import numpy as np
import pytest
from PIL import Image

import caffelite as caffe
from caffelite.detector import Detector

DEPLOY = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 10 dim: 3 dim: 4 dim: 4 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
"""

MEAN = np.array([10.0, 20.0, 30.0])  # BGR, in [0, 255] units


@pytest.fixture
def model(tmp_path):
    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(DEPLOY)
    weights = tmp_path / "tiny.caffemodel"
    caffe.Net(str(deploy), caffe.TEST).save(str(weights))
    return str(deploy), str(weights)


@pytest.fixture
def image_file(tmp_path):
    pixels = np.random.default_rng(4).integers(0, 256, size=(10, 12, 3), dtype=np.uint8)
    path = tmp_path / "scene.png"
    Image.fromarray(pixels).save(path)
    return str(path)


def make_detector(model, context_pad=None):
    return Detector(*model, mean=MEAN, raw_scale=255.0, channel_swap=(2, 1, 0), context_pad=context_pad)


def fc_scores(detector, hwc_crop):
    """The net's output for one crop, by hand: warp to 4x4, preprocess, inner product."""
    warped = caffe.io.resize_image(hwc_crop, (4, 4)).astype(np.float64)
    item = warped.transpose(2, 0, 1)[::-1] * 255.0 - MEAN[:, None, None]
    weight, bias = (p.data.astype(np.float64) for p in detector.params["fc"])
    return weight @ item.ravel() + bias


def test_detect_windows_classifies_each_warped_window(model, image_file):
    detector = make_detector(model)
    np.testing.assert_array_equal(detector.crop_dims, (4, 4, 3))
    windows = [np.array([0, 0, 6, 6]), np.array([2, 3, 10, 12]), np.array([4, 1, 7, 9])]
    detections = detector.detect_windows([(image_file, windows[:2]), (image_file, windows[2:])])
    assert len(detections) == 3
    image = caffe.io.load_image(image_file)
    for detection, window in zip(detections, windows):
        assert detection["filename"] == image_file
        assert detection["window"] is window
        crop = image[window[0] : window[2], window[1] : window[3]]
        np.testing.assert_allclose(detection["prediction"], fc_scores(detector, crop), rtol=1e-4, atol=1e-4)


def test_context_crop_inside_the_image_is_the_enlarged_box(model, image_file):
    detector = make_detector(model, context_pad=1)
    image = caffe.io.load_image(image_file)
    # input 4, pad 1: the window is scaled by 4 / 2; window rows 2..5 (4 px, centre 4) grow to 0..8
    crop = detector.crop(image, np.array([2, 2, 5, 5]))
    np.testing.assert_allclose(crop, caffe.io.resize_image(image[0:8, 0:8], (4, 4)), rtol=1e-6)


def test_context_beyond_the_image_is_filled_with_the_raw_mean(model, image_file):
    detector = make_detector(model, context_pad=1)
    image = caffe.io.load_image(image_file)
    # rows/cols 0..3 grow to -2..6: 2 px of 9 stick out, 2 * 4/9 rounds to 1 input pixel of mean
    crop = detector.crop(image, np.array([0, 0, 3, 3]))
    assert crop.shape == (4, 4, 3)
    raw_mean_rgb = MEAN[::-1] / 255.0
    np.testing.assert_allclose(crop[0], np.tile(raw_mean_rgb, (4, 1)), rtol=1e-6)
    np.testing.assert_allclose(crop[:, 0], np.tile(raw_mean_rgb, (4, 1)), rtol=1e-6)
    # the clipped box 0..6 (7 px) becomes round(7 * 4/9) = 3 pixels
    np.testing.assert_allclose(crop[1:, 1:], caffe.io.resize_image(image[0:6, 0:6], (3, 3)), rtol=1e-6)
    # and the mean border preprocesses to zero
    item = detector.transformer.preprocess("data", crop)
    np.testing.assert_allclose(item[:, 0, :], 0, atol=1e-4)
