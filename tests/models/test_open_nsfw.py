"""Yahoo's open_nsfw (ResNet-50, BatchNorm + Scale + Eltwise) classifies Caffe's cat.jpg as a float64 reference does.

The reference below walks the deploy prototxt itself with plain numpy formulas, reading the weights straight from
the .caffemodel's protobuf, so it shares no code with caffelite's layers, Net or weight loading.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

import caffelite
from caffelite.io.prototxt import read_net_text
from caffelite.proto import caffe_pb2
from shared_data import shared_path

MEAN_BGR = np.array([104.0, 117.0, 123.0])


def preprocess(path):
    """BGR, mean [104, 117, 123] subtracted, the 224x224 centre of a 256x256 bilinear resize, as (1, 3, 224, 224)."""
    image = Image.open(path).convert("RGB").resize((256, 256), Image.BILINEAR)
    pixels = np.asarray(image, dtype=np.float64)[16:240, 16:240, ::-1] - MEAN_BGR
    return pixels.transpose(2, 0, 1)[None]


def reference_conv(x, layer, blobs):
    p = layer.convolution_param
    k, s = p.kernel_size[0], (p.stride[0] if p.stride else 1)
    pad = p.pad[0] if p.pad else 0
    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # n c h w kh kw
    weight = blobs[0].reshape(p.num_output, -1, k, k)
    y = np.einsum("nchwij,ocij->nohw", windows, weight, optimize=True)
    return y + blobs[1][None, :, None, None] if len(blobs) > 1 else y


def reference_pool(x, layer):
    p = layer.pooling_param
    k, s = p.kernel_size, p.stride
    h = x.shape[2]
    out = int(np.ceil((h - k) / s)) + 1  # Caffe's ceil rule (no padding in this net)
    extra = (out - 1) * s + k - h
    if p.pool == caffe_pb2.PoolingParameter.MAX:
        x = np.pad(x, ((0, 0), (0, 0), (0, extra), (0, extra)), constant_values=-np.inf)
        return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s].max(axis=(4, 5))
    assert extra == 0
    return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s].mean(axis=(4, 5))


def reference_forward(deploy, weights, image):
    # Flat values; each formula below gives them the shape it needs (files mix `shape` and legacy 4-D blobs).
    blobs = {layer.name: [np.asarray(b.data, np.float64) for b in layer.blobs] for layer in weights.layer}
    values = {"data": image}
    for layer in deploy.layer[1:]:
        x, w = values[layer.bottom[0]], blobs.get(layer.name)
        if layer.type == "Convolution":
            y = reference_conv(x, layer, w)
        elif layer.type == "BatchNorm":
            factor = 0.0 if w[2][0] == 0 else 1.0 / w[2][0]
            mean, var = w[0] * factor, w[1] * factor
            y = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + layer.batch_norm_param.eps)
        elif layer.type == "Scale":
            y = x * w[0][None, :, None, None] + w[1][None, :, None, None]
        elif layer.type == "ReLU":
            y = np.maximum(x, 0)
        elif layer.type == "Eltwise":
            y = sum(values[name] for name in layer.bottom)
        elif layer.type == "Pooling":
            y = reference_pool(x, layer)
        elif layer.type == "InnerProduct":
            y = x.reshape(len(x), -1) @ w[0].reshape(layer.inner_product_param.num_output, -1).T + w[1]
        elif layer.type == "Softmax":
            e = np.exp(x - x.max(axis=1, keepdims=True))
            y = e / e.sum(axis=1, keepdims=True)
        else:
            raise AssertionError(f"reference has no {layer.type}")
        values[layer.top[0]] = y
    return values[deploy.layer[-1].top[0]]


def test_open_nsfw_scores_the_cat_like_a_float64_reference():
    folder = shared_path("conformance", "pretrained", "open_nsfw")
    cat = shared_path("conformance", "bvlc_caffe", "examples", "images", "cat.jpg")
    image = preprocess(cat)
    net = caffelite.Net(str(folder / "deploy.prototxt"), caffelite.TEST,
                        weights=str(folder / "resnet_50_1by2_nsfw.caffemodel"))
    prob = net.forward(data=image.astype(np.float32))["prob"]

    deploy = read_net_text(folder / "deploy.prototxt")
    weights = caffe_pb2.NetParameter.FromString((folder / "resnet_50_1by2_nsfw.caffemodel").read_bytes())
    expected = reference_forward(deploy, weights, image)

    assert prob.shape == (1, 2)
    np.testing.assert_allclose(prob.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(prob, expected, atol=2e-5)
    assert prob[0, 1] < 0.1  # a cat photo is safe for work
