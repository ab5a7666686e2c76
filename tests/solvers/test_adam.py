"""AdamSolver: Caffe's Adam, bias correction folded into the rate with t = iter + 1, m then v in the history."""

import math

import numpy as np

import caffelite
from caffelite.proto import caffe_pb2
from solvers.solver_harness import check_against_formula, make_solver


def adam_rule(beta1, beta2, delta):
    def rule(w, g, lr, decay, t, h):
        g = g + decay * w
        h["m"] = beta1 * h.get("m", 0) + (1 - beta1) * g
        h["v"] = beta2 * h.get("v", 0) + (1 - beta2) * g * g
        return w - lr * math.sqrt(1 - beta2**t) / (1 - beta1**t) * h["m"] / (np.sqrt(h["v"]) + delta)

    return rule


def test_adam_follows_caffes_formula():
    solver = make_solver("Adam", "momentum: 0.9 momentum2: 0.99 delta: 1e-3")
    assert isinstance(solver, caffelite.AdamSolver)
    check_against_formula(solver, adam_rule(0.9, 0.99, 1e-3), steps=5, layout=("m", "v"))


def test_adam_defaults_are_caffes():
    # momentum has no default in Caffe's schema (β1 = 0); momentum2 = 0.999 and delta = 1e-8 have.
    check_against_formula(make_solver("Adam"), adam_rule(0.0, 0.999, 1e-8), steps=2)


def test_adam_bias_correction_counts_from_the_solvers_iteration():
    solver = make_solver("Adam", "momentum: 0.9 momentum2: 0.99")
    solver.iter = 40  # as after a restore: t = 41, so the correction is nearly 1
    before = [p.data.copy() for p in solver.net.learnable_params]
    grads = _raw_gradients(solver)
    solver.step(1)
    g = grads[0] + 0.01 * before[0]
    m, v = 0.1 * g, 0.01 * g * g
    expected = before[0] - 0.1 * math.sqrt(1 - 0.99**41) / (1 - 0.9**41) * m / (np.sqrt(v) + 1e-8)
    np.testing.assert_allclose(solver.net.learnable_params[0].data, expected, rtol=2e-5, atol=1e-6)


def test_adam_state_stores_every_m_then_every_v(tmp_path):
    solver = make_solver("Adam", f'momentum: 0.9 snapshot: 3 snapshot_prefix: "{tmp_path}/adam"')
    solver.step(3)
    state = caffe_pb2.SolverState.FromString((tmp_path / "adam_iter_3.solverstate").read_bytes())
    count = len(solver.net.learnable_params)
    assert len(state.history) == 2 * count
    saved = [caffelite.io.blobproto_to_array(blob) for blob in state.history]
    for index, tensor in enumerate(solver.net.learnable_params):
        assert saved[index].shape == saved[count + index].shape == tensor.shape
        np.testing.assert_array_equal(saved[index], solver.history_block(0, index))  # m
        np.testing.assert_array_equal(saved[count + index], solver.history_block(1, index))  # v
        assert np.all(saved[count + index] >= 0)


def _raw_gradients(solver):
    solver.net.clear_param_diffs()
    solver.net.forward_backward()
    return [p.grad.astype(np.float64) for p in solver.net.learnable_params]
