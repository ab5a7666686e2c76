"""benchmarks/speed.py: what it builds and counts (its timings themselves are never asserted)."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from caffelite.io.prototxt import read_net_text
from caffelite.phase import TRAIN

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
    assert speed.layer_flops(solver.net, backward=False) == forward
    assert speed.layer_flops(solver.net, backward=True) == forward + backward


def test_deploy_rows_measure_memory_against_what_the_net_holds(speed):
    model = speed.Model("lenet-deploy", "deploy", LENET / "lenet.prototxt", (1, 28, 28), 10)
    args = type("Args", (), {"repeats": 1})()
    rows = speed.deploy_rows(model, args, peak=100.0, torch_module=None)
    assert [row.name for row in rows] == ["lenet-deploy-forward", "lenet-deploy-forward+backward"]
    for row in rows:
        assert row.ms > 0 and row.images_per_s == pytest.approx(10 / (row.ms / 1000))
        assert row.memory_ratio >= 1.0  # the peak includes everything the net holds
        assert row.torch_ms is None and row.ratio is None


def test_the_command_writes_a_json_table(speed, tmp_path, capsys):
    out = tmp_path / "speed.json"
    speed.main(["--rows", "lenet", "--repeats", "1", "--no-torch", "--json", str(out)])
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["name"] == "lenet-train" and row["ms"] > 0
    assert row["gflops"] == pytest.approx(row["peak_share"] * result["matmul_peak_gflops"])
    assert "lenet-train" in capsys.readouterr().out
