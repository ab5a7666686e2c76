"""The solver loop and SGD: update math, iter_size, clipping, testing, display lines, snapshots and restore."""

import logging
import re

import numpy as np
import pytest
from google.protobuf import text_format

import caffelite
from caffelite.errors import SolverError
from caffelite.proto import caffe_pb2

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 8 dim: 4 } shape { dim: 8 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.3 }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" include { phase: TEST } }
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


def feed(net):
    rng = np.random.default_rng(11)
    net.blobs["data"].data[...] = rng.standard_normal((8, 4))
    net.blobs["label"].data[...] = rng.integers(0, 3, size=8)


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
