"""The `caffelite` command: gflags spellings, one-line errors, and train/test end to end on a tiny model."""

import os
import re
import signal
import subprocess
import sys

import lmdb
import numpy as np
import pytest

from caffelite import device
from caffelite.proto import caffe_pb2
from caffelite_tools.main import _double_dash, main
from cli_helpers import send_signals, tiny_net, write_model

NET = tiny_net()


def test_single_dash_flags_become_double_dash():
    assert _double_dash(["-solver", "s.prototxt", "-weights=a,b", "-h", "--model", "-1"]) == [
        "--solver", "s.prototxt", "--weights=a,b", "-h", "--model", "-1",
    ]
    assert _double_dash(["-phase", "TEST", "-progress=off", "-allow_python_layers", "-iterations", "2"]) == [
        "--phase", "TEST", "--progress=off", "--allow_python_layers", "--iterations", "2",
    ]


@pytest.fixture
def tiny_solver(tmp_path):
    return write_model(
        tmp_path, NET,
        'test_iter: 2 test_interval: 10 base_lr: 0.5 lr_policy: "fixed" '
        f'display: 5 max_iter: 20 snapshot: 10 snapshot_prefix: "{tmp_path}/tiny" random_seed: 1',
    )


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "caffelite_tools.main", *args], capture_output=True, text=True, timeout=120
    )


def test_train_logs_in_caffes_format_and_snapshots(tiny_solver, tmp_path):
    result = run_cli("train", "-solver", str(tiny_solver))
    assert result.returncode == 0, result.stderr
    log = result.stderr
    glog = r"^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ \w+\.py:\d+\] "
    assert re.search(glog + r"Solving tiny$", log, re.M)
    assert re.search(glog + r"Iteration 5 \([\d.e+-]+ iter/s, [\d.e+-]+s/5 iters\), loss = [\d.e+-]+$", log, re.M)
    assert re.search(glog + r"Iteration 5, lr = 0\.5$", log, re.M)
    assert re.search(glog + r"    Test net output #0: acc = 1$", log, re.M)  # all labels are 1: learnable
    assert re.search(glog + r"Optimization Done\.$", log, re.M)
    assert (tmp_path / "tiny_iter_20.caffemodel").exists() and (tmp_path / "tiny_iter_10.solverstate").exists()


def test_test_command_scores_a_snapshot(tiny_solver, tmp_path):
    assert run_cli("train", "--solver", str(tiny_solver)).returncode == 0
    result = run_cli(
        "test", "-model", str(tmp_path / "net.prototxt"), "-weights", str(tmp_path / "tiny_iter_20.caffemodel"),
        "-iterations", "3",
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"\] Batch 2, acc = 1$", result.stderr, re.M)
    assert re.search(r"\] loss = [\d.e+-]+ \(\* 1 = [\d.e+-]+ loss\)$", result.stderr, re.M)


def test_resume_from_snapshot(tiny_solver, tmp_path):
    assert run_cli("train", "--solver", str(tiny_solver)).returncode == 0
    result = run_cli("train", "--solver", str(tiny_solver), "--snapshot", str(tmp_path / "tiny_iter_10.solverstate"))
    assert result.returncode == 0, result.stderr
    assert "Restoring previous solver status from" in result.stderr
    assert "Iteration 5 (" not in result.stderr and "Iteration 15 (" in result.stderr


def test_user_errors_print_one_line_and_exit_nonzero(tmp_path, capsys):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('net: "x.prototxt"\nbase_lr: 0.1\nmomentum: [oops\n')
    assert main(["train", "--solver", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and ":3:" in err[0]
    assert "Traceback" not in "\n".join(err)
    assert main(["test", "--model", str(tmp_path / "missing.prototxt"), "--weights", "w"]) == 1
    assert "missing.prototxt" in capsys.readouterr().err


def test_sigint_stops_training_after_a_final_snapshot(tiny_solver, tmp_path):
    """Caffe's default sigint_effect is stop: the loop ends, snapshot_after_train still writes the state."""
    text = tiny_solver.read_text().replace("max_iter: 20", "max_iter: 100000000")
    tiny_solver.write_text(text)
    process = subprocess.Popen(
        [sys.executable, "-m", "caffelite_tools.main", "train", "--solver", str(tiny_solver)],
        stderr=subprocess.PIPE, text=True,
    )
    log = send_signals(process, [(20, signal.SIGINT)])
    assert "Optimization stopped early." in log
    stopped_at = int(re.findall(r"Snapshotting to binary proto file .*_iter_(\d+)\.caffemodel", log)[-1])
    assert stopped_at > 20 and (tmp_path / f"tiny_iter_{stopped_at}.solverstate").exists()


def test_convert_mnist_writes_an_lmdb_of_datum(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name, magic, array in (("img", 2051, images), ("lbl", 2049, np.array([7, 3], np.uint8))):
        header = np.array((magic, *array.shape), dtype=">u4").tobytes()
        (tmp_path / name).write_bytes(header + array.tobytes())
    result = run_cli("convert_mnist", str(tmp_path / "img"), str(tmp_path / "lbl"), str(tmp_path / "db"))
    assert result.returncode == 0, result.stderr
    assert "A total of 2 items." in result.stderr and "Rows: 3 Cols: 4" in result.stderr
    env = lmdb.open(str(tmp_path / "db"), readonly=True, lock=False)
    with env.begin() as txn:
        records = list(txn.cursor())
    env.close()
    assert [key for key, _ in records] == [b"00000000", b"00000001"]
    datum = caffe_pb2.Datum.FromString(records[1][1])
    assert (datum.channels, datum.height, datum.width, datum.label) == (1, 3, 4, 3)
    assert datum.data == images[1].tobytes()


GLOG = r"^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ \w+\.py:\d+\] "
NUMBER = r"[\d.e+-]+"


def test_time_benchmarks_each_layer_like_caffe(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    result = run_cli("time", "-model", str(tmp_path / "net.prototxt"), "-iterations", "3")
    assert result.returncode == 0, result.stderr
    log = result.stderr
    assert re.search(GLOG + rf"Initial loss: {NUMBER}$", log, re.M)
    assert re.search(GLOG + r"Testing for 3 iterations\.$", log, re.M)
    for index in (1, 2, 3):
        assert re.search(GLOG + rf"Iteration: {index} forward-backward time: {NUMBER} ms\.$", log, re.M)
    layers = re.findall(GLOG + rf" *(\S+)\t(forward|backward): {NUMBER} ms\.$", log, re.M)
    # TRAIN is the default phase (as in Caffe): the TEST-only Accuracy layer is not there
    assert layers == [(name, way) for name in ("data", "ip", "loss") for way in ("forward", "backward")]
    assert re.search(GLOG + r"      data\tforward: ", log, re.M)  # names right-aligned in 10 columns
    assert re.search(GLOG + r"      data\tbackward: 0 ms\.$", log, re.M)  # a data layer has no backward
    for summary in ("Average Forward pass", "Average Backward pass", "Average Forward-Backward", "Total Time"):
        assert re.search(GLOG + rf"{summary}: {NUMBER} ms\.$", log, re.M), summary


def test_time_honours_phase_and_weights(tiny_solver, tmp_path):
    assert run_cli("train", "-solver", str(tiny_solver)).returncode == 0
    result = run_cli(
        "time", "--model", str(tmp_path / "net.prototxt"), "--phase", "TEST", "--iterations", "1",
        "--weights", str(tmp_path / "tiny_iter_20.caffemodel"),
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"\]        acc\tforward: ", result.stderr, re.M)
    assert run_cli("time", "--model", str(tmp_path / "net.prototxt"), "--phase", "VAL").returncode == 2


def test_time_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "net.prototxt").write_text(NET)
    assert main(["time", "--model", str(tmp_path / "net.prototxt"), "--iterations", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["caffelite time: error: --iterations must be at least 1, got 0"]
    assert main(["time", "--model", str(tmp_path / "net.prototxt"), "--weights", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("caffelite time: error: ") and "none" in err[-1]


def test_device_query_describes_the_cpu_and_blas(monkeypatch):
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT", raising=False)  # the command sets it before numpy loads
    result = run_cli("device_query")
    assert result.returncode == 0, result.stderr
    log = result.stderr
    assert re.search(GLOG + r"CPU model: \S.*$", log, re.M)
    assert re.search(GLOG + r"Logical cores: \d+ \(\d+ usable by this process\)$", log, re.M)
    assert re.search(GLOG + rf"numpy: {re.escape(np.__version__)}$", log, re.M)
    assert re.search(GLOG + r"BLAS: \S.*$", log, re.M) and re.search(GLOG + r"Threads: ", log, re.M)
    if device.openblas_threads() is not None:  # numpy's BLAS is OpenBLAS here
        assert re.search(GLOG + r"BLAS idle threads spin for 2\^16 clock ticks", log, re.M)


# -- Python layers run only with --allow_python_layers -----------------------------------------------
USER_LAYER = """
from caffelite.layers.python import Layer


class Double(Layer):
    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data[...] = 2 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].grad[...] = 2 * top[0].grad
"""


@pytest.fixture
def python_layer_model(tmp_path):
    (tmp_path / "user_layers.py").write_text(USER_LAYER)
    net = NET.replace(
        'bottom: "data" top: "ip"',
        'bottom: "doubled" top: "ip"',
    ).replace(
        'layer { name: "ip"',
        'layer { name: "double" type: "Python" bottom: "data" top: "doubled" '
        'python_param { module: "user_layers" layer: "Double" } }\nlayer { name: "ip"',
    )
    write_model(tmp_path, net, 'base_lr: 0.1 lr_policy: "fixed" display: 0 max_iter: 2 '
                               f'snapshot_prefix: "{tmp_path}/py" random_seed: 1')
    return tmp_path


def run_with_user_code(folder, *args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "caffelite_tools.main", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_python_layers_need_the_flag(python_layer_model):
    model = str(python_layer_model / "net.prototxt")
    refused = run_with_user_code(python_layer_model, "time", "-model", model, "-iterations", "1")
    assert refused.returncode == 1 and "--allow_python_layers" in refused.stderr.strip().splitlines()[-1]
    timed = run_with_user_code(python_layer_model, "time", "-model", model, "-iterations", "1", "-allow_python_layers")
    assert timed.returncode == 0, timed.stderr
    assert re.search(r"\]     double\tbackward: ", timed.stderr, re.M)
    solver = str(python_layer_model / "solver.prototxt")
    assert run_with_user_code(python_layer_model, "train", "-solver", solver).returncode == 1
    trained = run_with_user_code(python_layer_model, "train", "-solver", solver, "--allow_python_layers")
    assert trained.returncode == 0, trained.stderr
    weights = str(python_layer_model / "py_iter_2.caffemodel")
    tested = run_with_user_code(
        python_layer_model, "test", "-model", model, "-weights", weights, "-iterations", "1", "-allow_python_layers"
    )
    assert tested.returncode == 0, tested.stderr
    assert "Batch 0, acc = " in tested.stderr


def test_the_command_starts_without_the_optional_extras():
    """`pip install .` (no extras) must give a working `caffelite`: matplotlib and plyvel load only when used."""
    blocked = "import sys; sys.modules.update(matplotlib=None, plyvel=None); "
    result = subprocess.run(
        [sys.executable, "-c", blocked + "from caffelite_tools.main import main; raise SystemExit(main(['--help']))"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout
