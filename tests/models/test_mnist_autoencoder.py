"""models/mnist_autoencoder: Caffe's four autoencoder solvers build their staged nets and lower the loss."""

from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from caffelite.data.mnist import convert_mnist
from caffelite.io.prototxt import read_net_text, read_solver_text
from caffelite.solvers import SOLVERS

PROJECT = Path(__file__).resolve().parents[2]
AUTOENCODER = PROJECT / "models" / "mnist_autoencoder"
MNIST = PROJECT / "models" / "lenet" / "mnist"
SOLVER_FILES = sorted(AUTOENCODER.glob("*solver*.prototxt"))
SOLVER_TYPES = {
    "mnist_autoencoder_solver.prototxt": "SGD",
    "mnist_autoencoder_solver_adadelta.prototxt": "AdaDelta",
    "mnist_autoencoder_solver_adagrad.prototxt": "AdaGrad",
    "mnist_autoencoder_solver_nesterov.prototxt": "Nesterov",
}


@pytest.fixture(scope="module")
def mnist_lmdbs(tmp_path_factory):
    """mnist_train_lmdb and mnist_test_lmdb, both made from the 10,000 MNIST test images (fast to convert)."""
    folder = tmp_path_factory.mktemp("mnist")
    for name in ("train", "test"):
        convert_mnist(MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz",
                      folder / f"mnist_{name}_lmdb")
    return folder


def solver_param(path, folder, **overrides):
    """The solver at `path` with its net inlined, the Data layers reading the LMDBs in `folder` (the model reads
    LeNet's models/lenet/mnist_*_lmdb), and some solver fields overridden."""
    solver = read_solver_text(path)
    assert solver.net == "models/mnist_autoencoder/mnist_autoencoder.prototxt"
    net = read_net_text(PROJECT / solver.net)
    for layer in net.layer:
        if layer.type == "Data":
            assert Path(layer.data_param.source).parent == Path("models/lenet")
            layer.data_param.source = str(folder / Path(layer.data_param.source).name)
    solver.ClearField("net")
    solver.net_param.CopyFrom(net)
    for name, value in overrides.items():
        solver.ClearField(name)  # a repeated field (test_iter) is replaced by the list given
        for item in value if isinstance(value, list) else [value]:
            text_format.Merge(f"{name}: {item}", solver)
    return solver


def build(path, folder, **overrides):
    param = solver_param(path, folder, **overrides)
    return SOLVERS.get(param.type)(param, source=str(path))


def data_source(net):
    [data] = [layer for layer in net.layers if layer.param.type == "Data"]
    return Path(data.param.data_param.source).name


def test_the_four_solvers_caffe_ships_are_here():
    assert {path.name: read_solver_text(path).type for path in SOLVER_FILES} == SOLVER_TYPES


@pytest.mark.parametrize("path", SOLVER_FILES, ids=lambda path: path.name)
def test_every_solver_builds_a_train_net_and_the_two_staged_test_nets(path, mnist_lmdbs):
    solver = build(path, mnist_lmdbs)
    assert type(solver).__name__ == f"{SOLVER_TYPES[path.name]}Solver"
    assert list(solver.param.test_iter) == [500, 100]
    assert [list(state.stage) for state in solver.param.test_state] == [["test-on-train"], ["test-on-test"]]
    assert data_source(solver.net) == "mnist_train_lmdb"
    assert [data_source(net) for net in solver.test_nets] == ["mnist_train_lmdb", "mnist_test_lmdb"]
    for net in [solver.net] + solver.test_nets:
        assert net.blobs["data"].shape == (100, 1, 28, 28)
        assert net.blobs["encode4"].shape == (100, 30)
        assert net.blobs["decode1neuron"].shape == (100, 784)
        assert sorted(net.outputs) == ["cross_entropy_loss", "l2_error"]
        assert net.blob_loss_weights["cross_entropy_loss"] == 1 and net.blob_loss_weights["l2_error"] == 0


@pytest.mark.parametrize("path", SOLVER_FILES, ids=lambda path: path.name)
def test_training_lowers_the_reconstruction_losses_on_both_test_nets(path, mnist_lmdbs):
    """From the sparse random start (cross-entropy ~970 per image) each solver gets within sight of the mean image
    (~206 on MNIST) within 30 iterations; both staged test nets see it, with their loss computed."""
    solver = build(path, mnist_lmdbs, test_iter=[2, 2], test_interval=1000, test_initialization="false",
                   display=0, snapshot=0, random_seed=1)
    before = solver.test_all()
    losses = []
    for _ in range(30):
        solver.step(1)
        losses.append(float(solver.net.blobs["cross_entropy_loss"].data))
    after = solver.test_all()
    assert np.mean(losses[-5:]) < 0.4 * losses[0]
    for start, end in zip(before, after):
        assert end["cross_entropy_loss"] < 0.4 * start["cross_entropy_loss"]
        assert end["l2_error"] < 0.4 * start["l2_error"]
