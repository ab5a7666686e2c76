"""The `caffelite` command: gflags spellings, one-line errors, and train/test end to end on a tiny model."""

import re
import signal
import subprocess
import sys

import lmdb
import numpy as np
import pytest

from caffelite.proto import caffe_pb2
from caffelite_tools.main import _double_dash, main

NET = """
name: "tiny"
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: 16 dim: 4 } shape { dim: 16 }
                           data_filler { type: "gaussian" } data_filler { type: "constant" value: 1 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" include { phase: TEST } }
"""


def test_single_dash_flags_become_double_dash():
    assert _double_dash(["-solver", "s.prototxt", "-weights=a,b", "-h", "--model", "-1"]) == [
        "--solver", "s.prototxt", "--weights=a,b", "-h", "--model", "-1",
    ]


@pytest.fixture
def tiny_solver(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    solver = tmp_path / "solver.prototxt"
    solver.write_text(
        f'net: "{tmp_path}/net.prototxt" test_iter: 2 test_interval: 10 base_lr: 0.5 lr_policy: "fixed" '
        f'display: 5 max_iter: 20 snapshot: 10 snapshot_prefix: "{tmp_path}/tiny" random_seed: 1'
    )
    return solver


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
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "Iteration 20 (" in line:
            process.send_signal(signal.SIGINT)
            break
    _, rest = process.communicate(timeout=60)
    log = "".join(lines) + rest
    assert process.returncode == 0, log
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
