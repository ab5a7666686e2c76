"""pycaffe's solver surface: SGDSolver(path) / get_solver(path), net and test_nets, solve, step, update, snapshot."""

import numpy as np
import pytest

import caffelite as caffe

SOLVER = """net: '{net}'
test_iter: 2 test_interval: 10 base_lr: 0.01 momentum: 0.9
weight_decay: 0.0005 lr_policy: 'inv' gamma: 0.0001 power: 0.75
display: 100 max_iter: {max_iter} snapshot_after_train: false
snapshot_prefix: "model"
"""


@pytest.fixture
def solver_file(small_net_file, tmp_path, monkeypatch):
    """A solver prototxt over the small net; the working directory is tmp_path (snapshots land there)."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "solver.prototxt"
    path.write_text(SOLVER.format(net=small_net_file, max_iter=30))
    return str(path)


@pytest.fixture
def solver(solver_file, fill_labels):
    caffe.set_random_seed(11)
    solver = caffe.SGDSolver(solver_file)
    fill_labels(solver.net, seed=1)
    fill_labels(solver.test_nets[0], seed=2)
    return solver


def test_get_solver_builds_the_type_the_file_names(solver_file):
    solver = caffe.get_solver(solver_file)
    assert isinstance(solver, caffe.SGDSolver)
    assert solver.param.base_lr == pytest.approx(0.01) and solver.param.max_iter == 30


def test_nets_of_a_new_solver(solver):
    assert solver.iter == 0
    assert solver.net.phase == caffe.TRAIN and len(solver.test_nets) == 1
    assert solver.test_nets[0].phase == caffe.TEST
    assert list(solver.net.params) == list(solver.test_nets[0].params) == ["conv", "ip"]


def test_solve_runs_to_max_iter_then_the_net_still_runs(solver):
    before = solver.net.params["ip"][0].data.copy()
    solver.solve()
    assert solver.iter == 30
    assert not np.array_equal(solver.net.params["ip"][0].data, before)
    assert np.isfinite(solver.net.forward()["loss"])
    # Testing shares the training weights with the test net.
    for name, blobs in solver.net.params.items():
        for mine, tested in zip(blobs, solver.test_nets[0].params[name]):
            np.testing.assert_array_equal(mine.data, tested.data)


def test_step_counts_iterations(solver):
    solver.step(3)
    assert solver.iter == 3
    solver.step(2)
    assert solver.iter == 5


def test_apply_update_takes_one_sgd_step(solver):
    net = solver.net
    weights = net.layers[1].blobs[0].data[...]  # a view: the update must change it in place
    weights[...] = 0
    net.layers[1].blobs[0].diff[...] = 1
    solver.apply_update()
    np.testing.assert_allclose(weights, -0.01, rtol=1e-6)  # base_lr at iter 0, no momentum yet, no decay of 0
    assert solver.iter == 1


def test_nets_outlive_the_solver(solver):
    nets = [solver.net] + list(solver.test_nets)
    del solver
    for net in nets:
        total = sum(float(p.data.sum() + p.diff.sum()) for blobs in net.params.values() for p in blobs)
        total += sum(float(b.data.sum() + b.diff.sum()) for b in net.blobs.values())
        assert np.isfinite(total)
    assert "loss" in nets[0].forward()


def test_snapshot_writes_model_and_state_then_restore_resumes(solver, solver_file, tmp_path, fill_labels):
    solver.snapshot()
    assert (tmp_path / "model_iter_0.caffemodel").is_file()
    assert (tmp_path / "model_iter_0.solverstate").is_file()
    solver.step(4)
    solver.snapshot()
    resumed = caffe.SGDSolver(solver_file)
    resumed.restore("model_iter_4.solverstate")
    assert resumed.iter == 4
    for name, blobs in solver.net.params.items():
        for mine, restored in zip(blobs, resumed.net.params[name]):
            np.testing.assert_array_equal(mine.data, restored.data)


def test_solve_resumes_from_a_state_file(solver, solver_file, fill_labels):
    solver.step(25)
    solver.snapshot()
    resumed = caffe.SGDSolver(solver_file)
    fill_labels(resumed.net, seed=1)
    resumed.solve("model_iter_25.solverstate")
    assert resumed.iter == 30


def test_share_weights_and_lr(solver, small_net_file):
    other = caffe.Net(small_net_file, caffe.TEST)
    solver.share_weights(other)
    solver.net.params["ip"][1].data[...] = 4.0
    assert np.all(other.params["ip"][1].data == 4.0)
    assert solver.lr == pytest.approx(0.01)
    solver.step(10)
    assert solver.lr == pytest.approx(0.01 * (1 + 0.0001 * 10) ** -0.75)


def test_callbacks_run_every_iteration(solver):
    calls = []
    solver.add_callback(lambda: calls.append("start"), lambda: calls.append("ready"))
    solver.step(2)
    assert calls == ["start", "ready", "start", "ready"]
