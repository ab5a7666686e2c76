"""models/cifar10_quick: the readme's commands make databases the nets read, both solvers build, and training learns.

CIFAR-10 is not available offline, so the data are synthetic 32x32 colour PNG files in four classes (a colour cast
and a stripe direction per class, plus noise), converted exactly as the readme tells a user to convert CIFAR-10.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format
from PIL import Image

import caffelite
from caffelite.data.db import open_db
from caffelite.io.blob import read_binaryproto
from caffelite.io.prototxt import read_net_text, read_solver_text
from caffelite.proto import caffe_pb2
from caffelite.solvers import SOLVERS

PROJECT = Path(__file__).resolve().parents[2]
QUICK = PROJECT / "models" / "cifar10_quick"
SOLVER_FILES = sorted(QUICK.glob("*solver*.prototxt"))
CLASSES = 4
# RGB colour casts of the four classes; even classes have horizontal stripes, odd ones vertical.
CASTS = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [40, 200, 200]])


def synthetic_images(count, seed):
    """(count, 32, 32, 3) uint8 RGB images and their labels (0..CLASSES-1, shuffled)."""
    generator = np.random.default_rng(seed)
    labels = generator.permutation(np.arange(count) % CLASSES)
    images = generator.normal(100, 30, (count, 32, 32, 3))
    images += 0.25 * (CASTS[labels] - 100)[:, None, None, :]
    stripes = np.where((np.arange(32) // 4) % 2, 20.0, -20.0)
    images[labels % 2 == 0] += stripes[None, :, None, None]
    images[labels % 2 == 1] += stripes[None, None, :, None]
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_image_folder(folder, name, images, labels):
    """PNG files under folder/name/ and the list file folder/name.txt ('name/00000.png label' lines)."""
    (folder / name).mkdir(parents=True)
    lines = []
    for index, (image, label) in enumerate(zip(images, labels)):
        path = f"{name}/{index:05d}.png"
        Image.fromarray(image).save(folder / path)
        lines.append(f"{path} {label}\n")
    (folder / f"{name}.txt").write_text("".join(lines))


def caffelite_command(*args, cwd):
    result = subprocess.run([sys.executable, "-m", "caffelite_tools.main", *args], cwd=cwd, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A project-like root holding models/cifar10_quick/{cifar10_train_lmdb, cifar10_test_lmdb, mean.binaryproto},
    made from folders of images with the readme's commands; returns (root, test images as BGR CHW, test labels)."""
    root = tmp_path_factory.mktemp("cifar10_quick")
    (root / "models" / "cifar10_quick").mkdir(parents=True)
    train_images, train_labels = synthetic_images(200, seed=0)
    test_images, test_labels = synthetic_images(100, seed=1)
    write_image_folder(root / "images", "train", train_images, train_labels)
    write_image_folder(root / "images", "test", test_images, test_labels)
    for split in ("train", "test"):
        caffelite_command("convert_imageset", "images/", f"images/{split}.txt",
                          f"models/cifar10_quick/cifar10_{split}_lmdb", cwd=root)
    caffelite_command("compute_image_mean", "models/cifar10_quick/cifar10_train_lmdb",
                      "models/cifar10_quick/mean.binaryproto", cwd=root)
    return root, test_images[..., ::-1].transpose(0, 3, 1, 2), test_labels


def solver_param(path, root, train_batch=None, **overrides):
    """The solver at `path` with its net inlined and every path in the net taken under `root` (the model files
    name them relative to the project root), with some solver fields overridden and, if given, a smaller
    training batch (the nets cost about 4x less per iteration at 25 than at Caffe's 100)."""
    solver = read_solver_text(path)
    assert solver.net == "models/cifar10_quick/cifar10_quick_train_test.prototxt"
    net = read_net_text(PROJECT / solver.net)
    for layer in net.layer:
        if layer.type == "Data":
            layer.data_param.source = str(root / layer.data_param.source)
            layer.transform_param.mean_file = str(root / layer.transform_param.mean_file)
            if train_batch and layer.include[0].phase == caffe_pb2.TRAIN:
                layer.data_param.batch_size = train_batch
    solver.ClearField("net")
    solver.net_param.CopyFrom(net)
    for name in overrides:
        solver.ClearField(name)
    text_format.Merge(" ".join(f"{k}: {v}" for k, v in overrides.items()), solver)
    return solver


def test_the_readme_commands_make_the_databases_and_mean_the_net_expects(dataset):
    root, _, _ = dataset
    folder = root / "models" / "cifar10_quick"
    with open_db(folder / "cifar10_train_lmdb") as db:
        assert len(db) == 200
        key, value = next(db.items())
    datum = caffe_pb2.Datum.FromString(value)
    assert (datum.channels, datum.height, datum.width) == (3, 32, 32)
    assert 0 <= datum.label < CLASSES and key.decode().startswith("00000000_")
    assert read_binaryproto(folder / "mean.binaryproto").shape == (1, 3, 32, 32)


def test_caffe_ships_two_solvers_run_one_after_the_other():
    assert [path.name for path in SOLVER_FILES] == ["cifar10_quick_solver.prototxt",
                                                    "cifar10_quick_solver_lr1.prototxt"]
    first, second = (read_solver_text(path) for path in SOLVER_FILES)
    assert (first.base_lr, first.max_iter, first.snapshot) == (pytest.approx(0.001), 4000, 4000)
    assert (second.base_lr, second.max_iter) == (pytest.approx(0.0001), 5000)
    assert second.snapshot_format == caffe_pb2.SolverParameter.HDF5
    assert first.snapshot_prefix == second.snapshot_prefix  # lr1 resumes from the first part's snapshot


@pytest.mark.parametrize("path", SOLVER_FILES, ids=lambda path: path.name)
def test_every_solver_builds_its_train_and_test_nets(path, dataset):
    root, _, _ = dataset
    param = solver_param(path, root, test_iter=1)
    solver = SOLVERS.get(param.type)(param)
    assert type(solver).__name__ == "SGDSolver"
    assert solver.net.blobs["data"].shape == (100, 3, 32, 32)
    assert solver.net.blobs["ip2"].shape == (100, 10)
    assert solver.net.outputs == ["loss"]
    [test_net] = solver.test_nets
    assert sorted(test_net.outputs) == ["accuracy", "loss"]


def test_the_solvers_learn_the_synthetic_classes_and_the_deploy_net_scores_them(dataset, tmp_path):
    """Caffe's schedule in miniature: the first solver, its snapshot resumed by the lr1 solver, then deploy."""
    root, test_images, test_labels = dataset
    settings = dict(test_iter=1, test_interval=1000, display=0, random_seed=1, snapshot=0,
                    snapshot_prefix=f'"{tmp_path}/cifar10_quick"')
    first = caffelite.SGDSolver(solver_param(SOLVER_FILES[0], root, train_batch=25, max_iter=30, **settings))
    first.step(30)
    assert first.test()["accuracy"] >= 0.9  # chance is 1 / 4
    state = Path(first.snapshot()).with_suffix(".solverstate")

    second = caffelite.SGDSolver(solver_param(SOLVER_FILES[1], root, train_batch=25, max_iter=33, **settings))
    second.restore(str(state))
    second.step(3)
    assert second.iter == 33 and second.learning_rate() == pytest.approx(0.0001)
    assert second.test()["accuracy"] >= 0.9
    weights = second.snapshot()
    assert weights.endswith("cifar10_quick_iter_33.caffemodel.h5")  # lr1 snapshots as HDF5, as in Caffe

    deploy = caffelite.Net(str(QUICK / "cifar10_quick.prototxt"), caffelite.TEST, weights=weights)
    mean = read_binaryproto(root / "models" / "cifar10_quick" / "mean.binaryproto")
    deploy.blobs["data"].reshape(*test_images.shape)
    deploy.reshape()
    prob = deploy.forward(data=test_images.astype(np.float32) - mean)["prob"]
    np.testing.assert_allclose(prob.sum(axis=1), 1, rtol=1e-5)
    assert np.mean(prob.argmax(axis=1) == test_labels) >= 0.9
