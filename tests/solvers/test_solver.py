"""The solver loop and SGD: update math, iter_size, clipping, testing, display lines, snapshots and restore."""

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

import caffelite
import caffelite.io.files as files_module
from caffelite.data.mnist import convert_mnist
from caffelite.errors import FileFormatError, SolverError
from caffelite.io.prototxt import read_net_text, read_solver_text
from caffelite.proto import caffe_pb2
from caffelite.solvers import SOLVERS
from shared_data import shared_path
from solvers.solver_harness import (
    NET as TINY_NET,
    SETTINGS,
    feed,
    make_solver as make_any_solver,
    resume_in_new_process,
    snapshot_contents,
    solver_param,
    write_dummy_solver,
)

# The harness's tiny net, with an accuracy in the test phase.
NET = TINY_NET + """layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" include { phase: TEST } }
"""


def make_solver(extra="", net=NET, seed=3):
    param = text_format.Merge(  # Merge: `extra` may override the defaults given first
        f"""base_lr: 0.1 momentum: 0.9 weight_decay: 0.01 lr_policy: "fixed" max_iter: 4
            display: 0 random_seed: {seed} snapshot_after_train: false {extra}""",
        caffe_pb2.SolverParameter(),
    )
    param.net_param.CopyFrom(text_format.Parse(net, caffe_pb2.NetParameter()))
    solver = caffelite.SGDSolver(param)
    for n in [solver.net, *solver.test_nets]:
        feed(n)
    return solver


def test_sgd_update_follows_caffes_formula():
    solver = make_solver()
    reference = make_solver()  # same seed, same weights: used only to compute raw gradients
    history = [np.zeros_like(p.data, dtype=np.float64) for p in solver.net.learnable_params]
    for _ in range(3):
        reference.net.clear_param_diffs()
        reference.net.forward_backward()
        expected = []
        for index, (ref, h) in enumerate(zip(reference.net.learnable_params, history)):
            lr_mult, decay_mult = [(1, 1), (2, 0)][index]
            grad = ref.grad.astype(np.float64) + 0.01 * decay_mult * ref.data
            h[...] = 0.9 * h + 0.1 * lr_mult * grad
            expected.append(ref.data - h)
        solver.step(1)
        for ref, new in zip(reference.net.learnable_params, expected):
            ref.data[...] = new
        for actual, wanted in zip(solver.net.learnable_params, expected):
            np.testing.assert_allclose(actual.data, wanted, rtol=1e-5, atol=1e-6)
    assert solver.iter == 3


def test_iter_size_normalizes_the_accumulated_gradient():
    once = make_solver()
    twice = make_solver("iter_size: 2")
    once.step(2)
    twice.step(2)  # the same batch twice, then divided by 2: the same update
    for a, b in zip(once.net.learnable_params, twice.net.learnable_params):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-7)


def test_clip_gradients_bounds_the_global_norm(caplog):
    solver = make_solver("clip_gradients: 0.001 momentum: 0 weight_decay: 0")
    before = [p.data.copy() for p in solver.net.learnable_params]
    with caplog.at_level(logging.INFO, logger="caffelite"):
        solver.step(1)
    steps = [b - p.data for b, p in zip(before, solver.net.learnable_params)]
    # step = lr * lr_mult * clipped grad; undo lr and lr_mult to get the clipped gradient back.
    clipped = [steps[0] / 0.1, steps[1] / 0.2]
    assert np.sqrt(sum(np.sum(c.astype(np.float64) ** 2) for c in clipped)) == pytest.approx(0.001, rel=2e-3)  # float32 weights
    assert "Gradient clipping: scaling down gradients (L2 norm" in caplog.text


def test_test_nets_share_weights_and_report_averaged_outputs(caplog):
    solver = make_solver("test_iter: 3 test_interval: 2 test_initialization: false")
    assert len(solver.test_nets) == 1
    with caplog.at_level(logging.INFO, logger="caffelite"):
        solver.step(3)
        scores = solver.test()
    assert solver.test_nets[0].params["ip"][0].data is solver.net.params["ip"][0].data
    logits = solver.net.blobs["data"].data @ solver.net.params["ip"][0].data.T + solver.net.params["ip"][1].data
    assert scores["acc"] == pytest.approx(np.mean(logits.argmax(1) == solver.net.blobs["label"].data))
    assert "Iteration 2, Testing net (#0)" in caplog.text
    assert re.search(r"    Test net output #1: loss = [\d.e+-]+ \(\* 1 = [\d.e+-]+ loss\)", caplog.text)
    assert "Iteration 0, Testing net" not in caplog.text


def test_display_lines_have_caffes_shape(caplog):
    solver = make_solver("display: 2 average_loss: 2")
    with caplog.at_level(logging.INFO, logger="caffelite"):
        solver.step(3)
    assert re.search(r"Iteration 2 \([\d.e+-]+ iter/s, [\d.e+-]+s/2 iters\), loss = [\d.e+-]+", caplog.text)
    assert re.search(r"    Train net output #0: loss = [\d.e+-]+ \(\* 1 = [\d.e+-]+ loss\)", caplog.text)
    assert "Iteration 2, lr = 0.1" in caplog.text


def test_snapshot_then_restore_continues_exactly(tmp_path):
    prefix = tmp_path / "tiny"
    continuous = make_solver(f'snapshot: 2 snapshot_prefix: "{prefix}"')
    continuous.step(4)
    assert (tmp_path / "tiny_iter_2.caffemodel").exists() and (tmp_path / "tiny_iter_4.solverstate").exists()
    state = caffe_pb2.SolverState.FromString((tmp_path / "tiny_iter_2.solverstate").read_bytes())
    assert state.iter == 2 and state.learned_net == f"{prefix}_iter_2.caffemodel" and len(state.history) == 2

    resumed = make_solver(seed=99)  # different initial weights: restore must replace them
    resumed.restore(str(tmp_path / "tiny_iter_2.solverstate"))
    assert resumed.iter == 2
    resumed.step(2)
    for a, b in zip(continuous.net.learnable_params, resumed.net.learnable_params):
        assert a.data.tobytes() == b.data.tobytes()


def test_restore_refuses_a_state_with_the_wrong_history(tmp_path):
    state = caffe_pb2.SolverState(iter=5)
    path = tmp_path / "bad.solverstate"
    path.write_bytes(state.SerializeToString())
    with pytest.raises(SolverError, match="holds 0 history blobs"):
        make_solver().restore(str(path))


def test_solve_runs_to_max_iter_and_snapshots_after_train(tmp_path):
    solver = make_solver(f'snapshot_prefix: "{tmp_path}/final" snapshot_after_train: true')
    solver.solve()
    assert solver.iter == 4 and (tmp_path / "final_iter_4.caffemodel").exists()


def test_solver_needs_exactly_one_train_net():
    param = caffe_pb2.SolverParameter(base_lr=0.1)
    with pytest.raises(SolverError, match="exactly one of net"):
        caffelite.SGDSolver(param)


def test_get_solver_reads_the_type_from_the_file(tmp_path):
    net = tmp_path / "net.prototxt"
    net.write_text(NET)
    path = tmp_path / "solver.prototxt"
    path.write_text(f'net: "{net}" base_lr: 0.1 lr_policy: "fixed" solver_type: SGD')
    solver = caffelite.get_solver(str(path))
    assert isinstance(solver, caffelite.SGDSolver) and solver.net.name == "tiny"


# -- every solver type --------------------------------------------------------------------------
def test_settings_cover_every_registered_solver_type():
    assert sorted(SETTINGS) == SOLVERS.names() == sorted(
        ["SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam", "AdamW", "RAdam"]
    )


@pytest.mark.parametrize("solver_type", sorted(SETTINGS))
def test_resuming_in_a_new_process_matches_a_straight_run(tmp_path, solver_type):
    """6 iterations straight (snapshots at 3 and 6) vs the iteration-3 snapshot resumed elsewhere to 6."""
    pairs, formats = [], ("BINARYPROTO", "HDF5")
    for fmt in formats:
        straight = caffelite.get_solver(str(write_dummy_solver(tmp_path, solver_type, f"straight_{fmt}", fmt)))
        straight.solve()
        assert straight.iter == 6
        extension = ".solverstate.h5" if fmt == "HDF5" else ".solverstate"
        pairs.append((write_dummy_solver(tmp_path, solver_type, f"resumed_{fmt}", fmt),
                      tmp_path / f"straight_{fmt}_iter_3{extension}"))
    resume_in_new_process(pairs, cwd=tmp_path)
    for fmt in formats:
        expected = snapshot_contents(tmp_path / f"straight_{fmt}", 6, fmt)
        resumed = snapshot_contents(tmp_path / f"resumed_{fmt}", 6, fmt)
        assert expected[:2] == resumed[:2] == (6, 3)  # iter, and multistep's current_step carried over
        assert resumed[2] == expected[2], f"{fmt}: weights differ"
        assert resumed[3] == expected[3], f"{fmt}: history differs"
        assert len(resumed[3]) == SOLVERS.get(solver_type).history_count * 4


SEEDED_NET = """
name: "seeded"
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: 6 dim: 4 } shape { dim: 6 }
                           data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 8 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "drop" type: "Dropout" bottom: "ip1" top: "ip1" dropout_param { dropout_ratio: 0.5 } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


@pytest.mark.parametrize("solver_type", sorted(SETTINGS))
def test_the_same_random_seed_gives_identical_weights(solver_type):
    def run(seed):
        param = solver_param(solver_type, SETTINGS[solver_type], seed=seed, net=SEEDED_NET)
        solver = SOLVERS.get(solver_type)(param)
        solver.step(4)
        return [p.data.tobytes() for p in solver.net.learnable_params]

    first = run(7)
    assert run(7) == first
    assert run(8) != first


# -- snapshots in HDF5, snapshot_diff ----------------------------------------------------------
def test_hdf5_snapshot_has_caffes_layout_and_restores(tmp_path):
    import h5py

    prefix = tmp_path / "tiny"
    continuous = make_any_solver("Adam", f'momentum: 0.9 snapshot: 2 snapshot_prefix: "{prefix}" snapshot_format: HDF5')
    continuous.step(4)
    model, state = tmp_path / "tiny_iter_2.caffemodel.h5", tmp_path / "tiny_iter_2.solverstate.h5"
    assert model.exists() and state.exists() and not (tmp_path / "tiny_iter_2.caffemodel").exists()
    with h5py.File(model, "r") as handle:
        assert sorted(handle) == ["data"]  # no /diff without snapshot_diff
        assert sorted(handle["data"]) == ["data", "ip", "loss"]  # a group for every layer
        assert sorted(handle["data/ip"]) == ["0", "1"] and handle["data/ip/0"].shape == (3, 4)
        assert handle["data/ip/0"].dtype == np.float32
    with h5py.File(state, "r") as handle:
        assert handle["iter"].dtype == np.int32 and handle["iter"].shape == (1,) and handle["iter"][0] == 2
        assert handle["current_step"][0] == 0
        assert handle["learned_net"][()] == str(model).encode()
        assert sorted(handle["history"]) == ["0", "1", "2", "3"]  # m of ip's 2 blobs, then v
        assert handle["history/3"].shape == (3,)

    resumed = make_any_solver("Adam", "momentum: 0.9", seed=99)
    resumed.restore(str(state))
    assert resumed.iter == 2
    resumed.step(2)
    for a, b in zip(continuous.net.learnable_params, resumed.net.learnable_params):
        assert a.data.tobytes() == b.data.tobytes()
    for a, b in zip(continuous.history, resumed.history):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
def test_snapshot_diff_saves_the_last_update(tmp_path, fmt):
    import h5py

    solver = make_solver(f'snapshot: 1 snapshot_prefix: "{tmp_path}/d" snapshot_diff: true snapshot_format: {fmt}')
    solver.step(1)
    ip = solver.net.params["ip"]
    if fmt == "HDF5":
        with h5py.File(tmp_path / "d_iter_1.caffemodel.h5", "r") as handle:
            diffs = [handle[f"diff/ip/{i}"][()] for i in range(2)]
            datas = [handle[f"data/ip/{i}"][()] for i in range(2)]
    else:
        model = caffelite.io.read_caffemodel(str(tmp_path / "d_iter_1.caffemodel"))
        layer = next(layer for layer in model.layer if layer.name == "ip")
        diffs = [caffelite.io.blobproto_to_array(b, return_diff=True) for b in layer.blobs]
        datas = [caffelite.io.blobproto_to_array(b) for b in layer.blobs]
    for tensor, diff, data in zip(ip, diffs, datas):
        np.testing.assert_array_equal(diff, tensor.grad)  # after the update, grad holds the step taken
        np.testing.assert_array_equal(data, tensor.data)
        assert np.any(diff != 0)


def test_binary_snapshot_has_no_diff_by_default(tmp_path):
    solver = make_solver(f'snapshot: 1 snapshot_prefix: "{tmp_path}/n"')
    solver.step(1)
    model = caffelite.io.read_caffemodel(str(tmp_path / "n_iter_1.caffemodel"))
    assert all(len(blob.diff) == 0 for layer in model.layer for blob in layer.blobs)


@pytest.mark.parametrize("which", ["state", "model"])
def test_a_truncated_hdf5_snapshot_is_refused_naming_the_file(tmp_path, which):
    solver = make_solver(f'snapshot: 2 snapshot_prefix: "{tmp_path}/t" snapshot_format: HDF5')
    solver.step(2)
    path = tmp_path / ("t_iter_2.solverstate.h5" if which == "state" else "t_iter_2.caffemodel.h5")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    fresh = make_solver(seed=99)
    weights = [p.data.copy() for p in fresh.net.learnable_params]
    with pytest.raises(FileFormatError, match=re.escape(str(path)) + ": not a readable HDF5 file"):
        fresh.restore(str(tmp_path / "t_iter_2.solverstate.h5"))
    assert fresh.iter == 0
    if which == "state":  # nothing was read: the solver is as it was
        for tensor, before in zip(fresh.net.learnable_params, weights):
            np.testing.assert_array_equal(tensor.data, before)


def test_an_interrupted_hdf5_snapshot_leaves_no_file(tmp_path, monkeypatch):
    solver = make_solver(f'snapshot: 1 snapshot_prefix: "{tmp_path}/i" snapshot_format: HDF5')

    def failing_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_module.os, "fsync", failing_fsync)
    with pytest.raises(caffelite.CaffeliteError, match="i_iter_1.caffemodel.h5: cannot write"):
        solver.step(1)
    assert list(tmp_path.iterdir()) == []  # neither the model, nor the state, nor a temporary file


def test_restore_refuses_a_state_of_another_solver_type(tmp_path):
    sgd = make_solver(f'snapshot: 1 snapshot_prefix: "{tmp_path}/sgd"')
    sgd.step(1)
    adam = make_any_solver("Adam")
    with pytest.raises(SolverError, match="holds 2 history blobs; this solver \\(Adam\\) over this net needs 4"):
        adam.restore(str(tmp_path / "sgd_iter_1.solverstate"))


def test_get_solver_builds_every_legacy_solver_type(tmp_path):
    net = tmp_path / "net.prototxt"
    net.write_text(NET)
    path = tmp_path / "solver.prototxt"
    path.write_text(f'net: "{net}" base_lr: 0.1 lr_policy: "fixed" solver_type: ADAM')
    assert isinstance(caffelite.get_solver(str(path)), caffelite.AdamSolver)
    path.write_text(f'net: "{net}" base_lr: 0.1 lr_policy: "fixed" solver_type: ADADELTA')
    assert isinstance(caffelite.get_solver(str(path)), caffelite.AdaDeltaSolver)


# -- restoring BVLC Caffe's own LeNet snapshot ----------------------------------------------------
LENET = Path(__file__).resolve().parents[2] / "models" / "lenet"


@pytest.fixture(scope="module")
def mnist_lmdbs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist")
    mnist = LENET / "mnist"
    for split, name in (("train", "train"), ("t10k", "test")):
        convert_mnist(mnist / f"{split}-images-idx3-ubyte.gz", mnist / f"{split}-labels-idx1-ubyte.gz",
                      folder / f"mnist_{name}_lmdb")
    return folder


def test_caffes_lenet_solverstate_continues_training(mnist_lmdbs):
    caffe_run = shared_path("conformance", "pretrained", "yuvval_nn_ex1", "examples", "mnist")
    param = read_solver_text(LENET / "lenet_solver.prototxt")
    net = read_net_text(LENET / "lenet_train_test.prototxt")
    for layer in net.layer[:2]:
        layer.data_param.source = str(mnist_lmdbs / Path(layer.data_param.source).name)
    param.ClearField("net")
    param.net_param.CopyFrom(net)
    param.ClearField("test_iter")
    param.test_iter.append(5)
    param.display = 0
    param.snapshot = 0
    solver = SOLVERS.get(param.type)(param)

    # learned_net is "examples/mnist/lenet_iter_5000.caffemodel", relative to Caffe's working directory.
    state_file = caffe_run / "lenet_iter_5000.solverstate"
    solver.restore(str(state_file))
    assert solver.iter == 5000
    trained = caffelite.io.read_caffemodel(str(caffe_run / "lenet_iter_5000.caffemodel"))
    copied = 0
    for layer in trained.layer:
        for tensor, blob in zip(solver.net.params.get(layer.name, []), layer.blobs):
            np.testing.assert_array_equal(tensor.data, caffelite.io.blobproto_to_array(blob).reshape(tensor.shape))
            copied += 1
    assert copied == 8
    state = caffelite.io.read_solverstate(str(state_file))
    assert len(state.history) == len(solver.history) == 8
    for history, blob in zip(solver.history, state.history):
        np.testing.assert_array_equal(history, caffelite.io.blobproto_to_array(blob).reshape(history.shape))

    solver.step(3)
    assert solver.iter == 5003
    assert solver.test()["accuracy"] > 0.98  # 500 test images
