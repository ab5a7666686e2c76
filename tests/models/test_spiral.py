"""models/spiral: 200 epochs of the spiral reach 95% training accuracy, and the plot is drawn."""

import importlib.util
from pathlib import Path

import numpy as np

from caffelite.io.prototxt import read_solver_text
from caffelite.solvers.solver import SOLVERS

SPIRAL = Path(__file__).resolve().parents[2] / "models" / "spiral"


def load(name):
    spec = importlib.util.spec_from_file_location(name, SPIRAL / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_data_set_has_three_arms_of_a_hundred_points():
    points, labels = load("make_spiral").spiral(seed=0)
    assert points.shape == (300, 2) and points.dtype == np.float32
    np.testing.assert_array_equal(np.bincount(labels.astype(int)), [100, 100, 100])
    radius = np.hypot(points[:, 0], points[:, 1])
    np.testing.assert_allclose(radius[:100], np.linspace(0, 1, 100), atol=1e-6)  # noise moves the angle only


def test_two_hundred_epochs_reach_ninety_five_percent_and_the_plot_is_drawn(tmp_path):
    source = load("make_spiral").write(tmp_path)
    param = read_solver_text(str(SPIRAL / "spiral_solver.prototxt"))
    net_text = (SPIRAL / "spiral_train_test.prototxt").read_text().replace("models/spiral/spiral_list.txt",
                                                                            str(source))
    (tmp_path / "net.prototxt").write_text(net_text)
    param.net = str(tmp_path / "net.prototxt")
    param.snapshot_prefix = str(tmp_path / "spiral")
    solver = SOLVERS.get(param.type)(param)
    solver.solve()
    accuracy = load("plot_spiral").plot(tmp_path / "spiral_iter_3000.caffemodel", tmp_path / "spiral.png")
    assert accuracy >= 0.95
    assert (tmp_path / "spiral.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
