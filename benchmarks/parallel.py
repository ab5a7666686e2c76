"""Data-parallel training speed: images/s of LeNet and CIFAR-10 quick on 1 and more MPI processes.

    python benchmarks/parallel.py [--models lenet,cifar10] [--procs 1,2] [--iterations 30] [--json out.json]

Each model trains from its solver prototxt with the training data replaced by an LMDB of random images of the
same shape and no mean file (so no dataset is needed; reading and decoding records is still part of the time), no test net and no
snapshots. With K processes each rank keeps the solver's batch (as Caffe's multi-GPU training does), so one
iteration trains K x batch images. Columns: median ms per iteration after warm-up, images/s over all ranks, the
speed-up over one process, and the share of each iteration that the gradient exchange takes (rank 0's time in
caffelite.parallel's all-reduce, waiting for the slower rank included). Needs the `mpi` extra for K > 1.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
# name: (solver, the shape of one training image)
MODELS = {
    "lenet": (PROJECT / "models/lenet/lenet_solver.prototxt", (1, 28, 28)),
    "cifar10": (PROJECT / "models/cifar10_quick/cifar10_quick_solver.prototxt", (3, 32, 32)),
}
WARMUP = 5


def benchmark_solver(solver_path, shape, folder, records):
    """A copy of the solver whose TRAIN data layer reads an LMDB of `records` random images of its shape."""
    from caffelite.data.datum import array_to_datum
    from caffelite.data.db import open_writer
    from caffelite.io.prototxt import read_net_text, read_solver_text

    solver = read_solver_text(str(solver_path))
    net = read_net_text(str(PROJECT / solver.net))
    data = next(layer for layer in net.layer if layer.type == "Data" and all(r.phase != 1 for r in layer.include))
    source = folder / "data_lmdb"
    generator = np.random.default_rng(0)
    with open_writer(source) as writer:
        for i in range(records):
            item = generator.integers(0, 256, size=shape, dtype=np.uint8)
            writer.put(b"%08d" % i, array_to_datum(item, label=i % 10).SerializeToString())
    data.data_param.source = str(source)
    data.transform_param.ClearField("mean_file")  # CIFAR-10's mean image comes with its dataset
    solver.ClearField("net")
    solver.net_param.CopyFrom(net)
    del solver.test_iter[:]
    for field in ("test_interval", "display", "snapshot"):
        setattr(solver, field, 0)
    solver.snapshot_after_train = False
    solver.random_seed = 1
    path = folder / "solver.prototxt"
    path.write_text(str(solver))
    return path, data.data_param.batch_size


def worker(solver_path, iterations):
    """Run in each process: train, time every iteration, and on rank 0 print one JSON line."""
    from caffelite import parallel
    from caffelite.io.prototxt import read_solver_text
    from caffelite.solvers.solver import SOLVERS

    several = parallel.launched_by_mpi()
    if several:
        parallel.init()
    param = read_solver_text(solver_path)
    param.max_iter = WARMUP + iterations
    solver = SOLVERS.get(param.type)(param, source=solver_path)
    sync = parallel.DataParallel(solver) if several else None
    starts = []
    solver.add_callback(lambda: starts.append(time.perf_counter()), lambda: None)
    solver.step(WARMUP)
    if sync:
        sync.reduce_seconds = 0.0
    starts.clear()
    began = time.perf_counter()
    solver.step(iterations)
    total = time.perf_counter() - began
    if parallel.root_solver():
        laps = np.diff(starts + [began + total]) * 1000
        print(json.dumps({"ms": statistics.median(laps.tolist()), "total_s": total,
                          "reduce_share": (sync.reduce_seconds / total) if sync else 0.0}), flush=True)


def run(solver_path, procs, iterations):
    command = [sys.executable, __file__, "--worker", str(solver_path), "--iterations", str(iterations)]
    if procs > 1:
        mpiexec = Path(sys.executable).with_name("mpiexec")
        command = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(procs), *command]
    result = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="lenet,cifar10")
    parser.add_argument("--procs", default="1,2", help="process counts to compare, comma separated")
    parser.add_argument("--iterations", type=int, default=30, help="timed iterations per run (after 5 warm-up)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.iterations)
    rows = []
    print(f"{'model':<10} {'procs':>5} {'batch/rank':>10} {'ms/iter':>9} {'images/s':>9} {'speed-up':>8} "
          f"{'all-reduce':>10}")
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory(prefix=f"caffelite-{name}-") as folder:
            procs_list = [int(p) for p in args.procs.split(",")]
            solver, batch = benchmark_solver(*MODELS[name], Path(folder), records_needed(procs_list, args))
            single = None
            for procs in procs_list:
                measured = run(solver, procs, args.iterations)
                images = procs * batch * 1000 / measured["ms"]
                single = single or (images if procs == 1 else None)
                row = {"model": name, "procs": procs, "batch_per_rank": batch, "ms_per_iteration": measured["ms"],
                       "images_per_s": images, "speedup": images / single if single else None,
                       "allreduce_share": measured["reduce_share"]}
                rows.append(row)
                speedup = f"{row['speedup']:.2f}x" if single else "-"
                print(f"{name:<10} {procs:>5} {batch:>10} {row['ms_per_iteration']:>9.1f} {images:>9.0f} "
                      f"{speedup:>8} {row['allreduce_share']:>10.1%}", flush=True)
    if args.json:
        machine = {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                   "processor": platform.processor() or platform.machine()}
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))


def records_needed(procs_list, args):
    """Enough records that no rank reads one twice during the run (at the largest batch of the models)."""
    return max(procs_list) * 100 * (WARMUP + args.iterations + 2)


if __name__ == "__main__":
    main()
