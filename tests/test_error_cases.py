"""Every kind of user mistake, through the command line: one error line naming the file, line, layer or field,
no traceback (unless --debug), a non-zero exit; and the same errors as caffelite exceptions from Python."""

import subprocess
import sys

import lmdb
import numpy as np
import pytest

from caffelite.errors import CaffeliteError, FileFormatError, NetError, ParseError, ShapeError
from caffelite.io.blob import array_to_blobproto, read_binaryproto
from caffelite.net import Net
from caffelite.phase import TEST, TRAIN
from caffelite.proto import caffe_pb2
from cli_helpers import tiny_net

GOOD = tiny_net(batch=4)
INPUT = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'


def run(*args):
    return subprocess.run([sys.executable, "-m", "caffelite_tools.main", *args], capture_output=True, text=True,
                          timeout=120)


def one_error_line(result, command):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(f"caffelite {command}: error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def write(path, text):
    path.write_text(text)
    return str(path)


BROKEN = GOOD.replace('top: "ip"', 'top "ip"', 1)
BROKEN_LINE = next(number for number, line in enumerate(BROKEN.splitlines(), 1) if 'top "ip"' in line)
# (case, net text, [fragments the one error line must contain])
NET_MISTAKES = [
    ("syntax", BROKEN, [f"net.prototxt:{BROKEN_LINE}:", 'Expected ":"']),
    ("unknown type", INPUT + 'layer { name: "odd" type: "NoSuchLayer" bottom: "x" top: "y" }',
     ["net.prototxt", "layer 'odd'", "NoSuchLayer"]),
    ("unknown field", INPUT + 'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"\n'
                              '  inner_product_param { num_outputs: 3 } }',
     ["net.prototxt:3:", "num_outputs"]),
    ("bottom count", INPUT + 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" top: "l" }',
     ["net.prototxt", "layer 'loss' (SoftmaxWithLoss)", "bottom"]),
    ("shape mismatch", INPUT + 'layer { name: "in2" type: "Input" top: "z" input_param { shape { dim: 2 dim: 4 } } }\n'
                               'layer { name: "sum" type: "Eltwise" bottom: "x" bottom: "z" top: "s" }',
     ["net.prototxt", "layer 'sum' (Eltwise)"]),
    ("missing blob", INPUT + 'layer { name: "ip" type: "InnerProduct" bottom: "nothing" top: "y"\n'
                             '  inner_product_param { num_output: 3 } }',
     ["net.prototxt", "layer 'ip' (InnerProduct)", "unknown bottom blob 'nothing'"]),
    ("missing data source", 'layer { name: "mnist" type: "Data" top: "data" top: "label"\n'
                            '  data_param { source: "no/such/lmdb" batch_size: 4 backend: LMDB } }',
     ["net.prototxt", "layer 'mnist' (Data)", "data source 'no/such/lmdb' does not exist"]),
    ("bad value", INPUT + 'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"\n'
                          '  inner_product_param { num_output: 3 weight_filler { type: "nonsense" } } }',
     ["net.prototxt", "layer 'ip' (InnerProduct)", "nonsense"]),
]


@pytest.mark.parametrize("case, text, fragments", NET_MISTAKES, ids=[case for case, _, _ in NET_MISTAKES])
def test_net_mistakes_are_one_line_naming_file_line_and_layer(tmp_path, case, text, fragments):
    result = run("time", "--model", write(tmp_path / "net.prototxt", text), "--iterations", "1")
    line = one_error_line(result, "time")
    for fragment in fragments:
        assert fragment in line, line


def test_debug_shows_the_traceback(tmp_path):
    result = run("time", "--model", write(tmp_path / "net.prototxt", NET_MISTAKES[1][1]), "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr and "NoSuchLayer" in result.stderr


def test_solver_mistakes_name_the_solver_file_and_field(tmp_path):
    write(tmp_path / "net.prototxt", GOOD)
    solver = write(tmp_path / "solver.prototxt", f'net: "{tmp_path}/net.prototxt"\nbase_lr: 0.1\nlr_policy: "sometimes"'
                                                 "\nmax_iter: 2")
    line = one_error_line(run("train", "--solver", solver), "train")
    assert "solver.prototxt" in line and "sometimes" in line
    solver = write(tmp_path / "solver.prototxt", f'net: "{tmp_path}/net.prototxt"\nbase_lr: fast\n')
    line = one_error_line(run("train", "--solver", solver), "train")
    assert "solver.prototxt:2:" in line


@pytest.fixture
def trained(tmp_path):
    """A tiny net's definition and a .caffemodel / .solverstate pair written by two iterations of training."""
    write(tmp_path / "net.prototxt", GOOD)
    solver = write(tmp_path / "solver.prototxt", f'net: "{tmp_path}/net.prototxt" base_lr: 0.1 lr_policy: "fixed" '
                                                 f'max_iter: 2 snapshot_prefix: "{tmp_path}/s"')
    assert run("train", "--solver", solver).returncode == 0
    return tmp_path, solver


def test_weights_that_do_not_fit_name_the_file_and_layer(trained, tmp_path):
    folder, _ = trained
    other = write(tmp_path / "other.prototxt", GOOD.replace("num_output: 3", "num_output: 5"))
    line = one_error_line(run("test", "--model", other, "--weights", str(folder / "s_iter_2.caffemodel")), "test")
    assert "s_iter_2.caffemodel" in line and "layer 'ip'" in line and "shape" in line


@pytest.mark.parametrize("suffix", [".caffemodel", ".solverstate"])
def test_truncated_snapshot_files_name_the_file(trained, suffix):
    folder, solver = trained
    path = folder / f"s_iter_2{suffix}"
    path.write_bytes(path.read_bytes()[:-7])
    if suffix == ".caffemodel":
        result = run("test", "--model", str(folder / "net.prototxt"), "--weights", str(path))
        line = one_error_line(result, "test")
    else:
        line = one_error_line(run("train", "--solver", solver, "--snapshot", str(path)), "train")
    assert str(path) in line and "truncated or corrupt" in line


def test_a_corrupt_binaryproto_names_the_file(tmp_path):
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(array_to_blobproto(np.ones((1, 2, 2), np.float32)).SerializeToString()[:-3])
    with pytest.raises(FileFormatError, match=rf"{path}.*(truncated or corrupt|holds)"):
        read_binaryproto(str(path))


def test_a_corrupt_lmdb_record_names_the_layer_database_and_key(tmp_path):
    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        good = caffe_pb2.Datum(channels=1, height=2, width=2, data=bytes(4), label=1).SerializeToString()
        txn.put(b"00000000", good)
        txn.put(b"00000001", good[:-4])
    env.close()
    text = (f'layer {{ name: "db" type: "Data" top: "data" top: "label" '
            f'data_param {{ source: "{tmp_path / "db"}" batch_size: 2 backend: LMDB }} }}')
    net = Net(write(tmp_path / "net.prototxt", text), TRAIN)
    with pytest.raises(FileFormatError, match=r"layer 'db' \(Data\): record '00000001' of '.*db'"):
        net.forward()


def test_python_api_errors_are_the_caffelite_kinds(tmp_path):
    """From Python the same mistakes raise the hierarchy's classes (all CaffeliteError)."""
    kinds = {"syntax": ParseError, "unknown field": ParseError, "bottom count": NetError,
             "shape mismatch": ShapeError, "missing blob": NetError}
    for case, text, _ in NET_MISTAKES:
        if case in kinds:
            with pytest.raises(kinds[case]):
                Net(write(tmp_path / "n.prototxt", text), TEST)
    assert issubclass(ParseError, CaffeliteError) and issubclass(ShapeError, CaffeliteError)
