"""Fixtures for the pycaffe-style tests: BVLC's small test net on disk, and Python layers allowed for one test."""

import numpy as np
import pytest

import caffelite as caffe

NUM_OUTPUT = 13


def small_net_text(num_output):
    """DummyData (5x2x3x4 gaussian data, 5 labels) -> Convolution 'conv' -> InnerProduct 'ip' -> SoftmaxWithLoss."""
    return f"""name: 'smallnet' force_backward: true
    layer {{ type: 'DummyData' name: 'data' top: 'data' top: 'label'
      dummy_data_param {{ num: 5 channels: 2 height: 3 width: 4
        num: 5 channels: 1 height: 1 width: 1
        data_filler {{ type: 'gaussian' std: 1 }}
        data_filler {{ type: 'constant' }} }} }}
    layer {{ type: 'Convolution' name: 'conv' bottom: 'data' top: 'conv'
      convolution_param {{ num_output: 11 kernel_size: 2 pad: 3
        weight_filler {{ type: 'gaussian' std: 1 }}
        bias_filler {{ type: 'constant' value: 2 }} }}
      param {{ decay_mult: 1 }} param {{ decay_mult: 0 }} }}
    layer {{ type: 'InnerProduct' name: 'ip' bottom: 'conv' top: 'ip_blob'
      inner_product_param {{ num_output: {num_output}
        weight_filler {{ type: 'gaussian' std: 2.5 }}
        bias_filler {{ type: 'constant' value: -3 }} }} }}
    layer {{ type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip_blob' bottom: 'label' top: 'loss' }}
    """


@pytest.fixture
def small_net_file(tmp_path):
    """The path of the small net's prototxt (13 classes)."""
    path = tmp_path / "small_net.prototxt"
    path.write_text(small_net_text(NUM_OUTPUT))
    return str(path)


@pytest.fixture
def fill_labels():
    """fill_labels(net): valid random class labels in the 'label' blob (the constant filler gives all zeros)."""

    def fill(net, seed=0):
        blob = net.blobs["label"]
        blob.data[...] = np.random.default_rng(seed).integers(NUM_OUTPUT, size=blob.data.shape)

    return fill


@pytest.fixture
def small_net(small_net_file, fill_labels):
    """The small net in TRAIN phase, with valid labels."""
    caffe.set_random_seed(3)
    net = caffe.Net(small_net_file, caffe.TRAIN)
    fill_labels(net)
    return net


@pytest.fixture
def python_layers():
    """Allow Python layers for one test, then restore the switch as it was."""
    saved = caffe.python_layers_allowed()
    caffe.allow_python_layers()
    yield
    caffe.allow_python_layers(saved)
