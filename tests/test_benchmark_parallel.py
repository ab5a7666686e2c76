"""benchmarks/parallel.py: the solver it trains and the table it writes (its timings themselves are never asserted)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from caffelite.data.db import open_db
from caffelite.io.prototxt import read_solver_text

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "parallel.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("parallel_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_solver_reads_random_images_of_the_models_shape_and_never_tests(bench, tmp_path):
    solver_path, batch = bench.benchmark_solver(*bench.MODELS["cifar10"], tmp_path, records=7)
    solver = read_solver_text(str(solver_path))
    assert batch == 100 and not solver.test_iter and solver.snapshot == 0 and not solver.snapshot_after_train
    data = next(layer for layer in solver.net_param.layer if layer.type == "Data" and layer.include[0].phase == 0)
    assert data.data_param.source == str(tmp_path / "data_lmdb") and not data.transform_param.mean_file
    with open_db(data.data_param.source) as db:
        assert len(db) == 7


def test_one_and_two_processes_give_a_row_each(tmp_path):
    pytest.importorskip("mpi4py", reason="the mpi extra (mpi4py, mpich) is not installed: pip install caffelite[mpi]")
    out = tmp_path / "parallel.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--models", "lenet", "--procs", "1,2", "--iterations", "2",
                             "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["procs"], r["batch_per_rank"]) for r in rows] == [("lenet", 1, 64), ("lenet", 2, 64)]
    for row in rows:
        assert row["images_per_s"] == pytest.approx(row["procs"] * 64 * 1000 / row["ms_per_iteration"])
        assert 0 <= row["allreduce_share"] < 1
    assert rows[0]["allreduce_share"] == 0 and rows[1]["allreduce_share"] > 0
    assert rows[1]["speedup"] == pytest.approx(rows[1]["images_per_s"] / rows[0]["images_per_s"])
    assert "lenet" in result.stdout and "all-reduce" in result.stdout
