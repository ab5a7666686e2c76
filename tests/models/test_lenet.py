"""models/lenet: the deploy net scores a real Caffe-trained LeNet, and the train/test net trains from scratch."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

import caffelite
from caffelite.data.mnist import convert_mnist, read_idx_images, read_idx_labels
from caffelite.io.prototxt import read_net_text, read_solver_text
from shared_data import shared_path

LENET = Path(__file__).resolve().parents[2] / "models" / "lenet"
MNIST = LENET / "mnist"


def mnist_test_set():
    images = read_idx_images(MNIST / "t10k-images-idx3-ubyte.gz")
    labels = read_idx_labels(MNIST / "t10k-labels-idx1-ubyte.gz")
    return images.reshape(-1, 1, 28, 28).astype(np.float32) * np.float32(0.00390625), labels


def test_deploy_net_with_a_caffe_trained_model_scores_the_mnist_test_set():
    weights = shared_path("conformance", "pretrained", "lenet_nandahkrishna", "lenet_iter_10000.caffemodel")
    net = caffelite.Net(str(LENET / "lenet.prototxt"), caffelite.TEST, weights=str(weights))
    images, labels = mnist_test_set()
    net.blobs["data"].reshape(500, 1, 28, 28)
    net.reshape()
    correct = 0
    for start in range(0, len(images), 500):
        prob = net.forward(data=images[start : start + 500])["prob"]
        np.testing.assert_allclose(prob.sum(axis=1), 1, rtol=1e-5)
        correct += int(np.sum(prob.argmax(axis=1) == labels[start : start + 500]))
    assert correct / len(images) >= 0.989


@pytest.fixture(scope="module")
def mnist_lmdbs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist")
    for split, name in (("train", "train"), ("t10k", "test")):
        convert_mnist(MNIST / f"{split}-images-idx3-ubyte.gz", MNIST / f"{split}-labels-idx1-ubyte.gz",
                      folder / f"mnist_{name}_lmdb")
    return folder


def lenet_solver(folder, **overrides):
    """Caffe's LeNet solver and net, reading the LMDBs in `folder`, with some solver fields overridden."""
    solver = read_solver_text(LENET / "lenet_solver.prototxt")
    net = read_net_text(LENET / "lenet_train_test.prototxt")
    for layer in net.layer[:2]:
        layer.data_param.source = str(folder / Path(layer.data_param.source).name)
    solver.ClearField("net")
    solver.net_param.CopyFrom(net)
    for name in overrides:
        solver.ClearField(name)  # test_iter is repeated: replace it, don't append
    text_format.Merge(" ".join(f"{k}: {v}" for k, v in overrides.items()), solver)
    return solver


def test_lenet_trains_from_its_solver(mnist_lmdbs, tmp_path):
    """A short run of the main job: after 1000 iterations of Caffe's LeNet solver the 10,000 test images pass 97.5%."""
    solver = caffelite.SGDSolver(lenet_solver(
        mnist_lmdbs, max_iter=1000, test_interval=1000, test_iter=100, display=0, random_seed=1,
        snapshot=0, snapshot_prefix=f'"{tmp_path}/lenet"',
    ))
    solver.step(1000)
    accuracy = solver.test()["accuracy"]
    assert accuracy >= 0.975
    solver.net.save(str(tmp_path / "lenet.caffemodel"))
    deploy = caffelite.Net(str(LENET / "lenet.prototxt"), caffelite.TEST, weights=str(tmp_path / "lenet.caffemodel"))
    images, labels = mnist_test_set()
    predicted = deploy.forward(data=images[:64])["prob"].argmax(axis=1)
    assert np.mean(predicted == labels[:64]) >= 0.9


def test_caffelite_time_on_lenet_prints_the_per_layer_table_and_summary(mnist_lmdbs, tmp_path):
    # The prototxt reads models/lenet/mnist_*_lmdb relative to the working directory, as Caffe's do.
    (tmp_path / "models" / "lenet").mkdir(parents=True)
    for name in ("mnist_train_lmdb", "mnist_test_lmdb"):
        (tmp_path / "models" / "lenet" / name).symlink_to(mnist_lmdbs / name)
    result = subprocess.run(
        [sys.executable, "-m", "caffelite_tools.main", "time", "-model", str(LENET / "lenet_train_test.prototxt"),
         "-iterations", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    timed = re.findall(r"\] +(\w+)\t(forward|backward): [\d.e+-]+ ms\.$", result.stderr, re.M)
    layers = ["mnist", "conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2", "loss"]
    assert timed == [(name, way) for name in layers for way in ("forward", "backward")]
    for summary in ("Average Forward pass", "Average Backward pass", "Average Forward-Backward", "Total Time"):
        assert re.search(rf"\] {summary}: [\d.e+-]+ ms\.$", result.stderr, re.M)
