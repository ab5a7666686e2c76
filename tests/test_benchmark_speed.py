"""benchmarks/speed.py: what it builds and counts (its timings themselves are never asserted)."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from caffelite import device
from caffelite.io.prototxt import read_net_text
from caffelite.net import Net
from caffelite.phase import TEST, TRAIN
from caffelite.proto import caffe_pb2

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
LENET = Path(__file__).resolve().parents[1] / "models" / "lenet"


@pytest.fixture(scope="module")
def speed():
    sys.path.insert(0, str(BENCHMARKS))  # speed.py imports its sibling torch_net only when torch is there
    try:
        spec = importlib.util.spec_from_file_location("speed", BENCHMARKS / "speed.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_data_layers_become_inputs_of_the_batch_shape(speed):
    param = speed.with_inputs(read_net_text(str(LENET / "lenet_train_test.prototxt")), TRAIN, (1, 28, 28), 64)
    inputs = [layer for layer in param.layer if layer.type == "Input"]
    assert [list(layer.top) for layer in inputs] == [["data", "label"]]
    assert [list(s.dim) for s in inputs[0].input_param.shape] == [[64, 1, 28, 28], [64]]
    assert not any(layer.type == "Data" for layer in param.layer)
    assert "accuracy" not in [layer.name for layer in param.layer]  # a TEST-only layer


def test_flops_are_the_multiply_adds_of_lenet(speed):
    model = speed.models(speed.CONFORMANCE)["lenet"]
    solver = speed.build_solver(model, np.random.default_rng(0))
    forward = 2 * 64 * (20 * 1 * 25 * 24 * 24 + 50 * 20 * 25 * 8 * 8 + 800 * 500 + 500 * 10)
    # Backward: every weight gradient again, and the input gradient of all but conv1 (its bottom is the data).
    backward = forward + forward - 2 * 64 * 20 * 25 * 24 * 24
    assert speed.flops(speed.matrix_products(solver.net, backward=False)) == forward
    assert speed.flops(speed.matrix_products(solver.net, backward=True)) == forward + backward


def test_matrix_products_are_caffes_products_per_group_and_their_time_alone_counts_each_group(speed, monkeypatch):
    text = """
    force_backward: true
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 4 dim: 6 dim: 5 } } }
    layer { name: "conv" type: "Convolution" bottom: "x" top: "c"
            convolution_param { num_output: 6 kernel_size: 3 group: 2 } }
    layer { name: "ip" type: "InnerProduct" bottom: "c" top: "y" inner_product_param { num_output: 7 } }
    """
    net = Net(text_format.Parse(text, caffe_pb2.NetParameter()), TEST)
    # conv per group: 3 filters of 2 x 3 x 3 inputs at 2 x (4 x 3) positions; ip: 2 rows of 6 x 4 x 3 inputs, 7 outputs.
    forward = [(2, 3, 18, 24), (1, 2, 72, 7)]
    assert speed.matrix_products(net, backward=False) == forward
    assert speed.matrix_products(net, backward=True) == [(2, 3, 18, 24), (2, 3, 24, 18), (2, 18, 3, 24),
                                                         (1, 2, 72, 7), (1, 2, 7, 72), (1, 72, 2, 7)]
    assert speed.flops(speed.matrix_products(net, backward=False)) == 2 * (2 * 3 * 18 * 24 + 2 * 72 * 7)
    timed_sizes = []

    def fake_seconds(step):
        step()
        timed_sizes.append(None)
        return 1e-6 * len(timed_sizes)

    monkeypatch.setattr(speed, "_seconds", fake_seconds)
    # Each size is timed `repeats` times and the best run counts, once per group.
    assert speed.products_alone(forward, repeats=2) == pytest.approx(1000 * (2 * 1e-6 + 3e-6))
    assert len(timed_sizes) == 4


def test_deploy_rows_measure_memory_against_what_the_net_holds(speed):
    model = speed.Model("lenet-deploy", "deploy", LENET / "lenet.prototxt", (1, 28, 28), 10)
    args = speed.argparse.Namespace(repeats=1, caffe=None)
    rows = speed.deploy_rows(model, args, torch_module=None)
    assert [row.name for row in rows] == ["lenet-deploy-forward", "lenet-deploy-forward+backward"]
    for row in rows:
        assert row.ms > 0 and row.images_per_s == pytest.approx(10 / (row.ms / 1000))
        assert row.memory_ratio >= 1.0  # the peak includes everything the net holds
        assert row.torch_ms is None and row.ratio is None and row.caffe_ms is None
        assert row.products_ms > 0


def test_a_row_counts_its_own_scratch_whatever_ran_before(speed):
    model = speed.Model("lenet-deploy", "deploy", LENET / "lenet.prototxt", (1, 28, 28), 10)
    alone = speed.peak_memory(lambda: speed.build_deploy(model, 10, np.random.default_rng(0), False),
                              lambda net: net.forward())[0]
    # A forward-only convolution with far larger columns leaves the shared scratch as LeNet's layers would not.
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 8 dim: 16 dim: 64 dim: 64 } } }
    layer { name: "conv" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 4 kernel_size: 5 } }
    """
    Net(text_format.Parse(text, caffe_pb2.NetParameter()), TEST).forward()
    after = speed.peak_memory(lambda: speed.build_deploy(model, 10, np.random.default_rng(0), False),
                              lambda net: net.forward())[0]
    assert abs(after - alone) < 100_000  # Python objects of the build differ by a few KB; the scratch is MBs


def test_what_the_net_holds_counts_a_shared_array_once(speed):
    # ip1 feeds two layers: its Split's two tops share ip1's array, which must count once.
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "ip1" inner_product_param { num_output: 5 } }
    layer { name: "a" type: "ReLU" bottom: "ip1" top: "a" }
    layer { name: "b" type: "Sigmoid" bottom: "ip1" top: "b" }
    """
    net = Net(text_format.Parse(text, caffe_pb2.NetParameter()), TEST)
    net.forward()
    weights = (5 * 3 + 5) * 4
    blobs = (2 * 3 + 2 * 5 + 2 * 5 + 2 * 5) * 4  # x, ip1 (and its split tops), a, b
    assert len(net.blobs) == 6 and speed.held_bytes(net, backward=False) == weights + blobs
    assert speed.held_bytes(net, backward=True) == 2 * (weights + blobs)


def test_timing_never_counts_a_run_right_after_the_other_step(speed, monkeypatch):
    log = []
    steps = [lambda: log.append("ours"), lambda: log.append("torch")]

    def seconds(step):  # a fake clock: 1 s for a run that follows the other step, 1 ms otherwise
        before = log[-1] if log else None
        step()
        return 1.0 if before != log[-1] else 0.001

    monkeypatch.setattr(speed, "_seconds", seconds)
    assert speed.timed(steps, repeats=7, warmup=2, block=5) == [pytest.approx(1.0)] * 2
    # 2 warm-up runs, then blocks of one untimed and 5, then 2 timed runs, for each step in turn
    assert log == ["ours", "torch"] * 2 + ["ours"] * 6 + ["torch"] * 6 + ["ours"] * 3 + ["torch"] * 3


def test_the_command_writes_a_json_table(speed, tmp_path, capsys):
    out = tmp_path / "speed.json"
    speed.main(["--rows", "lenet", "--repeats", "1", "--no-torch", "--json", str(out)])
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["name"] == "lenet-train" and row["ms"] > 0
    assert row["gflops"] == pytest.approx(row["peak_share"] * row["peak_gflops"]) and row["peak_gflops"] > 0
    assert result["machine"]["openblas_thread_timeout"] == device.openblas_thread_timeout()  # recorded with the rows
    assert "lenet-train" in capsys.readouterr().out


def test_an_unknown_row_is_refused_naming_the_models(speed, capsys):
    with pytest.raises(SystemExit) as stop:
        speed.main(["--rows", "lenet,lenet-train", "--no-torch"])
    assert stop.value.code == 2
    assert "--rows: no model named lenet-train (the models: lenet,cifar10,caffenet,googlenet,nsfw)" in \
        capsys.readouterr().err


FAKE_CAFFE = """#!{python}
import os
import sys
from pathlib import Path
args = dict(arg.lstrip("-").split("=", 1) for arg in sys.argv[2:])
assert sys.argv[1] == "time" and 'type: "Input"' in Path(args["model"]).read_text()
assert os.environ["GLOG_logtostderr"] == "1"  # else glog leaves log files in /tmp
text = Path(args["model"]).read_text()
backward = "force_backward" if "force_backward: true" in text else "-"
with open({calls!r}, "a") as calls:
    calls.write(" ".join([args["phase"], args["iterations"], backward, text.split(chr(10))[0]]) + chr(10))
if {fail!r}:
    print("F1207 net.cpp:42] Check failed: something Caffe did not like", file=sys.stderr)
    sys.exit(1)
run = len(open({calls!r}).read().splitlines()) % 3  # three runs a row: the median is the first one's
print(f"I1207 caffe.cpp:408] Average Forward pass: {{[5, 12.5, 30][run]}} ms.", file=sys.stderr)
print("I1207 caffe.cpp:410] Average Backward pass: 7.5 ms.", file=sys.stderr)
print(f"I1207 caffe.cpp:412] Average Forward-Backward: {{[10, 20, 40][run]}} ms.", file=sys.stderr)
"""


def fake_caffe(tmp_path, fail=False):
    binary, calls = tmp_path / "caffe", tmp_path / "calls.txt"
    binary.write_text(FAKE_CAFFE.format(python=sys.executable, calls=str(calls), fail=fail))
    binary.chmod(0o755)
    return binary, calls


def test_caffe_times_the_same_net_and_its_ratio_is_printed(speed, tmp_path, capsys):
    binary, calls = fake_caffe(tmp_path)
    out = tmp_path / "speed.json"
    speed.main(["--rows", "lenet", "--repeats", "2", "--no-torch", "--caffe", str(binary), "--json", str(out)])
    (row,) = json.loads(out.read_text())["rows"]
    assert row["caffe_ms"] == 20.0 and row["caffe_ratio"] == pytest.approx(row["ms"] / 20.0)  # forward-backward
    assert calls.read_text() == 'TRAIN 2 - name: "LeNet"\n' * 3
    printed = capsys.readouterr().out
    assert "caffe ms" in printed and "20.00" in printed


def test_a_rows_peak_is_the_median_of_peaks_measured_around_its_rounds(speed, monkeypatch):
    log, peaks = [], iter([100.0, 300.0, 250.0, 90.0])
    monkeypatch.setattr(speed, "_seconds", lambda step: (step(), 0.001)[1])
    monkeypatch.setattr(speed, "matmul_peak", lambda: log.append("peak") or next(peaks))
    times, peak = speed.timed_row([lambda: log.append("ours")], repeats=12, caffe_between=lambda: log.append("caffe"))
    assert times == [pytest.approx(1.0)] and peak == 175.0  # median of 100, 300, 250, 90
    rounds = ["ours"] * 6 + ["peak", "caffe"]
    assert log == ["peak"] + ["ours"] * 3 + rounds * 2 + ["ours"] * 3 + ["peak", "caffe"]


def test_caffes_runs_fall_between_the_blocks_and_stop_at_three(speed, tmp_path, monkeypatch):
    log = []
    monkeypatch.setattr(speed, "_seconds", lambda step: (step(), 0.001)[1])
    speed.timed([lambda: log.append("ours")], repeats=12, warmup=1, block=5, between=lambda: log.append("caffe"))
    assert log == ["ours"] + (["ours"] * 6 + ["caffe"]) * 2 + ["ours"] * 3 + ["caffe"]
    binary, calls = fake_caffe(tmp_path)
    param = speed.with_inputs(read_net_text(str(LENET / "lenet_train_test.prototxt")), TRAIN, (1, 28, 28), 64)
    with speed.CaffeTimer(binary, param, "TRAIN", 2) as caffe:
        for _ in range(4):
            caffe.between()
        assert len(calls.read_text().splitlines()) == 3  # the fourth call runs nothing
        assert caffe.medians() == (12.5, 20.0)
    assert len(calls.read_text().splitlines()) == 3
    with speed.CaffeTimer(None, param, "TRAIN", 2) as nothing:
        assert nothing.between is None


def test_deploy_rows_take_caffes_forward_pass_and_forward_backward_of_one_force_backward_timing(speed, tmp_path):
    binary, calls = fake_caffe(tmp_path)
    model = speed.Model("tiny", "deploy", tmp_path / "tiny.prototxt", (1, 4, 4), 2)
    model.path.write_text('name: "tiny" input: "data" input_shape { dim: 1 dim: 1 dim: 4 dim: 4 } '
                          'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" '
                          'inner_product_param { num_output: 3 } }')
    args = speed.argparse.Namespace(repeats=1, caffe=binary)
    forward, both = speed.deploy_rows(model, args, torch_module=None)
    assert (forward.caffe_ms, both.caffe_ms) == (12.5, 20.0)
    assert calls.read_text() == 'TEST 1 force_backward name: "tiny"\n' * 3


def test_a_failing_or_missing_caffe_is_a_clear_error(speed, tmp_path, capsys):
    binary, _ = fake_caffe(tmp_path, fail=True)
    with pytest.raises(SystemExit, match=r"(?s)--caffe: `.*caffe time` on LeNet failed \(exit status 1\):"
                                         r".*Check failed: something Caffe did not like"):
        speed.main(["--rows", "lenet", "--repeats", "1", "--no-torch", "--caffe", str(binary)])
    with pytest.raises(SystemExit) as stop:
        speed.main(["--rows", "lenet", "--no-torch", "--caffe", str(tmp_path / "nowhere")])
    assert stop.value.code == 2
    assert f"--caffe: {tmp_path / 'nowhere'} is not an executable file" in capsys.readouterr().err
