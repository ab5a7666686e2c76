"""Every net prototxt under ../shared/conformance builds in every phase (and stage) it declares, with Caffe's shapes.

The datasets those nets read (LMDBs, image lists, HDF5 lists, window files) are not shipped, so each data layer is
replaced by a DummyData layer whose tops have the shapes the real data would give; every other layer is built as
written. Deploy nets run a forward pass and their outputs are checked against the shapes Caffe reports.
"""

import numpy as np
import pytest

import caffelite
from caffelite.errors import NetError
from caffelite.io.prototxt import read_net_text
from caffelite.layers.python import allow_python_layers
from caffelite.proto import caffe_pb2
from shared_data import CONFORMANCE, shared_path

NETS = sorted(
    str(path.relative_to(CONFORMANCE)) for path in CONFORMANCE.rglob("*.prototxt") if "solver" not in path.name
) if CONFORMANCE.exists() else []

DATA_TYPES = ("Data", "ImageData", "HDF5Data", "WindowData")

# What Caffe's own tools report for these deploy nets (batch sizes as the files declare them).
DEPLOY_OUTPUTS = {
    "bvlc_caffe/models/bvlc_alexnet/deploy.prototxt": {"prob": (10, 1000)},
    "bvlc_caffe/models/bvlc_reference_caffenet/deploy.prototxt": {"prob": (10, 1000)},
    "bvlc_caffe/models/bvlc_googlenet/deploy.prototxt": {"prob": (10, 1000)},
    "bvlc_caffe/models/bvlc_reference_rcnn_ilsvrc13/deploy.prototxt": {"fc-rcnn": (10, 200)},
    "bvlc_caffe/models/finetune_flickr_style/deploy.prototxt": {"prob": (10, 20)},
    "bvlc_caffe/examples/net_surgery/bvlc_caffenet_full_conv.prototxt": {"prob": (1, 1000, 8, 8)},
    "bvlc_caffe/examples/cifar10/cifar10_quick.prototxt": {"prob": (1, 10)},
    "bvlc_caffe/examples/cifar10/cifar10_full.prototxt": {"prob": (1, 10)},
    "bvlc_caffe/examples/mnist/lenet.prototxt": {"prob": (64, 10)},
    "bvlc_caffe/examples/siamese/mnist_siamese.prototxt": {"feat": (10000, 2)},
    "pretrained/squeezenet_forresti_NO_WEIGHTS/SqueezeNet_v1.0/deploy.prototxt": {"prob": (10, 1000, 1, 1)},
    "pretrained/squeezenet_forresti_NO_WEIGHTS/SqueezeNet_v1.1/deploy.prototxt": {"prob": (10, 1000, 1, 1)},
    "pretrained/mobilenet_shicai_NO_WEIGHTS/mobilenet_deploy.prototxt": {"prob": (1, 1000, 1, 1)},
    "pretrained/mobilenet_shicai_NO_WEIGHTS/mobilenet_v2_deploy.prototxt": {"prob": (1, 1000, 1, 1)},
    "pretrained/open_nsfw/deploy.prototxt": {"prob": (1, 2)},
}


def data_top_shapes(layer, source):
    """The shapes a data layer's tops would have on its real dataset."""
    params = {"Data": layer.data_param, "ImageData": layer.image_data_param,
              "HDF5Data": layer.hdf5_data_param, "WindowData": layer.window_data_param}[layer.type]
    batch = params.batch_size
    if layer.type == "HDF5Data":  # the hdf5_classification examples: 4 features per row
        return [(batch, 4), (batch,)][: len(layer.top)]
    crop = layer.transform_param.crop_size
    if crop:
        image = (3, crop, crop)
    elif layer.type == "ImageData" and layer.image_data_param.new_height:
        image = (3, layer.image_data_param.new_height, layer.image_data_param.new_width)
    elif "siamese" in params.source:  # pairs of MNIST digits stacked as two channels
        image = (2, 28, 28)
    elif "mnist" in source or "mnist" in params.source:
        image = (1, 28, 28)
    else:
        image = (3, 32, 32)  # CIFAR-10
    return [(batch,) + image, (batch,)][: len(layer.top)]


def with_dummy_data(net, source):
    replaced = caffe_pb2.NetParameter()
    replaced.CopyFrom(net)
    for layer in replaced.layer:
        if layer.type in DATA_TYPES:
            shapes = data_top_shapes(layer, source)
            kept = caffe_pb2.LayerParameter(name=layer.name, type="DummyData", top=layer.top)
            kept.include.extend(layer.include)
            kept.exclude.extend(layer.exclude)
            for shape in shapes:
                kept.dummy_data_param.shape.add(dim=shape)
            layer.CopyFrom(kept)
    return replaced


def declared_states(net):
    """(phase, stages) pairs to build: each phase the rules name (TEST if none), with each stage they name."""
    rules = [rule for layer in net.layer for rule in list(layer.include) + list(layer.exclude)]
    phases = sorted({rule.phase for rule in rules if rule.HasField("phase")}) or [caffelite.TEST]
    stages = sorted({stage for rule in rules for stage in list(rule.stage) + list(rule.not_stage)})
    return [(phase, [stage] if stage else []) for phase in phases for stage in (stages or [None])]


@pytest.mark.parametrize("name", NETS or ["<shared/ absent>"])
def test_net_builds_in_every_declared_phase(name):
    path = shared_path("conformance", name)
    net = with_dummy_data(read_net_text(path), name)
    uses_python = any(layer.type == "Python" for layer in net.layer)
    for phase, stages in declared_states(net):
        if uses_python:
            with pytest.raises(NetError, match="allow_python_layers"):
                caffelite.Net(net, phase, stages=stages)
            continue
        built = caffelite.Net(net, phase, stages=stages)
        assert built.layers and built.outputs, f"{name} in phase {phase} {stages}"
        for expected_name, expected_shape in DEPLOY_OUTPUTS.get(name, {}).items():
            assert built.blobs[expected_name].shape == expected_shape


@pytest.mark.parametrize("name", sorted(DEPLOY_OUTPUTS))
def test_deploy_net_forward_gives_caffes_output_shapes(name):
    path = shared_path("conformance", name)
    caffelite.set_random_seed(0)
    net = caffelite.Net(str(path), caffelite.TEST)
    inputs = {blob: np.random.default_rng(0).normal(0, 1, net.blobs[blob].shape) for blob in net.inputs}
    out = net.forward(**inputs)
    # Without trained weights a BatchNorm's statistics are all zero, so activations blow up as they would in
    # Caffe; values are checked only for nets without one.
    untrained_batch_norm = any(layer.type == "BatchNorm" for layer in net.layers)
    for blob, shape in DEPLOY_OUTPUTS[name].items():
        assert net.blobs[blob].shape == shape and (blob not in out or out[blob].shape == shape)
        if not untrained_batch_norm:
            assert np.all(np.isfinite(net.blobs[blob].data))
        if blob.startswith("prob") and not untrained_batch_norm:
            np.testing.assert_allclose(net.blobs[blob].data.sum(axis=1), 1, rtol=1e-4)


def test_python_layer_nets_build_once_allowed(monkeypatch, tmp_path):
    """linreg.prototxt's Python loss comes from pycaffe's examples; with permission it is imported and run."""
    path = shared_path("conformance", "bvlc_caffe", "examples", "pycaffe", "linreg.prototxt")
    net = read_net_text(path)
    python_layer = next(layer for layer in net.layer if layer.type == "Python")
    (tmp_path / f"{python_layer.python_param.module}.py").write_text(
        "import caffelite\n"
        f"class {python_layer.python_param.layer}(caffelite.Layer):\n"
        "    def reshape(self, bottom, top):\n"
        "        top[0].reshape(())\n"
        "    def forward(self, bottom, top):\n"
        "        top[0].data[...] = ((bottom[0].data - bottom[1].data) ** 2).sum() / bottom[0].data.shape[0] / 2\n"
        "    def backward(self, top, propagate_down, bottom):\n"
        "        diff = (bottom[0].data - bottom[1].data) / bottom[0].data.shape[0]\n"
        "        bottom[0].diff[...] = diff\n"
        "        bottom[1].diff[...] = -diff\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    allow_python_layers()
    try:
        built = caffelite.Net(net, caffelite.TRAIN)
        loss = built.forward()[built.outputs[0]]
        assert np.ndim(loss) == 0 and loss > 0
    finally:
        allow_python_layers(False)

