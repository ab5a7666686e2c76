"""debug_info statistics (Caffe's log lines, checked against numpy) and stopping on a NaN/Inf loss."""

import logging
import re
import subprocess
import sys

import numpy as np
import pytest
from google.protobuf import text_format

from caffelite.errors import SolverError
from caffelite.net import Net
from caffelite.phase import TRAIN
from caffelite.proto import caffe_pb2
from caffelite.solvers.solver import get_solver
from cli_helpers import write_model

NET = """
name: "diag" debug_info: true
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: 6 dim: 5 } shape { dim: 6 }
                           data_filler { type: "gaussian" } data_filler { type: "constant" value: 2 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1" param { name: "w1" } param { lr_mult: 0 }
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } } }
layer { name: "act" type: "Sigmoid" bottom: "ip1" top: "act" }
layer { name: "ip2" type: "InnerProduct" bottom: "act" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""
NUMBER = r"([-+\d.einf]+)"


def mean_abs(array):
    return np.abs(array.astype(np.float64)).mean()


def test_debug_info_logs_caffes_statistics(caplog):
    net = Net(text_format.Parse(NET, caffe_pb2.NetParameter()), TRAIN)
    with caplog.at_level(logging.INFO, logger="caffelite"):
        net.forward_backward()
    lines = caplog.messages
    blob = {name: tensor for name, tensor in net.blobs.items()}
    forward = re.compile(r"    \[Forward\] Layer (\S+), top blob (\S+) data: " + NUMBER)
    tops = [m.groups() for m in map(forward.fullmatch, lines) if m]
    assert [(layer, top) for layer, top, _ in tops] == [
        ("data", "data"), ("data", "label"), ("ip1", "ip1"), ("act", "act"), ("ip2", "ip2"), ("loss", "loss")]
    for _, top, value in tops:
        assert float(value) == pytest.approx(mean_abs(blob[top].data), rel=1e-5)
    params = [m.groups() for m in map(re.compile(r"    \[Forward\] Layer (\S+), param blob (\S+) data: " + NUMBER)
                                      .fullmatch, lines) if m]
    assert [(layer, name) for layer, name, _ in params] == [("ip1", "w1"), ("ip1", "1"), ("ip2", "0"), ("ip2", "1")]
    assert float(params[0][2]) == pytest.approx(mean_abs(net.params["ip1"][0].data), rel=1e-5)
    bottoms = [m.groups() for m in map(re.compile(r"    \[Backward\] Layer (\S+), bottom blob (\S+) diff: "
                                                  + NUMBER).fullmatch, lines) if m]
    # The loss feeds back to ip2 only (not to the label); data needs no gradient.
    assert [(layer, name) for layer, name, _ in bottoms] == [("loss", "ip2"), ("ip2", "act"), ("act", "ip1")]
    for _, name, value in bottoms:
        assert float(value) == pytest.approx(mean_abs(blob[name].grad), rel=1e-5)
    diffs = [m.groups() for m in map(re.compile(r"    \[Backward\] Layer (\S+), param blob (\d+) diff: " + NUMBER)
                                     .fullmatch, lines) if m]
    # ip1's bias has lr_mult 0: no gradient, no line.
    assert [(layer, index) for layer, index, _ in diffs] == [("ip2", "0"), ("ip2", "1"), ("ip1", "0")]
    assert float(diffs[2][2]) == pytest.approx(mean_abs(net.params["ip1"][0].grad), rel=1e-5)
    norms = re.compile(r"    \[Backward\] All net params \(data, diff\): L1 norm = \({0}, {0}\); "
                       r"L2 norm = \({0}, {0}\)".format(NUMBER))
    (match,) = [m for m in map(norms.fullmatch, lines) if m]
    learnable = net.learnable_params
    expected = (sum(np.abs(p.data).sum() for p in learnable), sum(np.abs(p.grad).sum() for p in learnable),
                np.sqrt(sum(np.square(p.data).sum() for p in learnable)),
                np.sqrt(sum(np.square(p.grad).sum() for p in learnable)))
    np.testing.assert_allclose([float(g) for g in match.groups()], expected, rtol=1e-5)


def test_without_debug_info_nothing_is_logged(caplog):
    net = Net(text_format.Parse(NET.replace("debug_info: true", ""), caffe_pb2.NetParameter()), TRAIN)
    with caplog.at_level(logging.INFO, logger="caffelite"):
        net.forward_backward()
    assert not any("[Forward]" in m or "[Backward]" in m for m in caplog.messages)


def solver_file(tmp_path, net, settings):
    return write_model(tmp_path, net, f'lr_policy: "fixed" max_iter: 5 snapshot_after_train: false {settings}')


def test_the_solver_logs_statistics_on_display_iterations(tmp_path, caplog):
    solver = get_solver(str(solver_file(tmp_path, NET.replace("debug_info: true", ""),
                                        "base_lr: 0.1 display: 2 debug_info: true")))
    with caplog.at_level(logging.INFO, logger="caffelite"):
        solver.step(4)
    iterations = [m for m in caplog.messages if m.startswith("    [Backward] All net params")]
    assert len(iterations) == 2  # iterations 0 and 2


DIVERGING = NET.replace("debug_info: true", "").replace('type: "Sigmoid"', 'type: "ReLU"')


def test_a_diverging_solver_stops_naming_the_first_layer_that_overflowed(tmp_path):
    solver = get_solver(str(solver_file(tmp_path, DIVERGING, "base_lr: 1e30 momentum: 0.9 random_seed: 1")))
    with pytest.raises(SolverError) as error:
        solver.step(5)
    message = str(error.value)
    assert f"{tmp_path}/solver.prototxt: iteration 1: the loss is nan" in message
    assert "the first layer to go non-finite is 'ip2': its output 'ip2' is not finite" in message


def test_non_finite_weights_are_named_before_any_output(tmp_path):
    solver = get_solver(str(solver_file(tmp_path, DIVERGING, "base_lr: 0.1")))
    solver.net.params["ip1"][0].data[0, 0] = np.inf
    with pytest.raises(SolverError, match=r"iteration 0: the loss is nan; the first layer to go non-finite is "
                                          r"'ip1': param w1 \(its weights\) is not finite"):
        solver.step(1)


def test_an_infinite_output_is_traced_to_the_layer_that_made_it(tmp_path):
    net = NET.replace("debug_info: true", "").replace(
        'layer { name: "act" type: "Sigmoid" bottom: "ip1" top: "act" }',
        'layer { name: "act" type: "Log" bottom: "ip1" top: "act" log_param { shift: -1000 } }')
    solver = get_solver(str(solver_file(tmp_path, net, "base_lr: 0.1")))
    with pytest.raises(SolverError, match=r"iteration 0: the loss is nan; the first layer to go non-finite is "
                                          r"'act': its output 'act' is not finite"):
        solver.step(1)


def test_the_command_reports_a_nan_loss_in_one_line(tmp_path):
    solver = solver_file(tmp_path, DIVERGING, "base_lr: 1e30 momentum: 0.9 random_seed: 1")
    result = subprocess.run([sys.executable, "-m", "caffelite_tools.main", "train", "--solver", str(solver)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if "loss is nan" in line]
    assert len(errors) == 1 and "'ip2'" in errors[0]
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr
