"""How much of LeNet's training time the solver spends waiting for data from the prefetching Data layer.

    python benchmarks/data_wait.py --iterations 500 [--json result.json]

Builds the MNIST training LMDB from models/lenet/mnist/*.gz in a temporary folder (or uses --db-dir), trains
Caffe's LeNet solver (models/lenet/lenet_solver.prototxt, without test passes, display or snapshots) and times
every forward of the Data layer, i.e. the time the training loop is held up by data: taking the next prefetched
batch (blocked, if the background thread is behind) and copying it into the net's `data` and `label` blobs.
It prints one table row; the target is a data-wait share below 5% of wall time.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from caffelite.data.mnist import convert_mnist
from caffelite.io.prototxt import read_net_text, read_solver_text
from caffelite.solvers.solver import SOLVERS

PROJECT = Path(__file__).resolve().parents[1]
LENET = PROJECT / "models" / "lenet"
TARGET_SHARE = 5.0


class DataLayerClock:
    """Wraps one prefetching Data layer's forward (and its prefetcher's next/load) with timers.

    forward_s:  wall time inside the layer's forward: the data wait as the training loop sees it.
    blocked_s:  the part of it spent in the prefetcher's next() (waiting for the queue; ~0 when a batch is ready).
    empty:      forwards that found no batch ready (the background thread was behind).
    load_s:     time the background thread spent producing batches (in parallel with training), and `loads`.
    """

    def __init__(self, layer, clock=time.perf_counter):
        self.layer, self.clock = layer, clock
        self.forward_s = self.blocked_s = self.load_s = 0.0
        self.calls = self.empty = self.loads = 0
        self._wrap_forward()
        prefetcher = getattr(layer, "_prefetcher", None)
        if prefetcher is not None:
            self._wrap_next(prefetcher)
            self._wrap_load(prefetcher)

    def _wrap_forward(self):
        forward = self.layer.forward

        def timed_forward(bottom, top):
            start = self.clock()
            try:
                forward(bottom, top)
            finally:
                self.forward_s += self.clock() - start
                self.calls += 1

        self.layer.forward = timed_forward

    def _wrap_next(self, prefetcher):
        next_batch = prefetcher.next
        batches = getattr(prefetcher, "_queue", None)

        def timed_next():
            if batches is not None and batches.empty():
                self.empty += 1
            start = self.clock()
            try:
                return next_batch()
            finally:
                self.blocked_s += self.clock() - start

        prefetcher.next = timed_next

    def _wrap_load(self, prefetcher):
        # The worker thread looks up _load_batch for every batch, so batches from now on are timed.
        load = getattr(prefetcher, "_load_batch", None)
        if load is None:
            return

        def timed_load():
            start = self.clock()
            batch = load()
            self.load_s += self.clock() - start
            self.loads += 1
            return batch

        prefetcher._load_batch = timed_load

    def reset(self):
        self.forward_s = self.blocked_s = self.load_s = 0.0
        self.calls = self.empty = self.loads = 0


def make_train_lmdb(folder):
    """models/lenet/mnist's training set as folder/mnist_train_lmdb (Caffe's convert_mnist_data layout)."""
    db = Path(folder) / "mnist_train_lmdb"
    if not db.exists():
        convert_mnist(LENET / "mnist" / "train-images-idx3-ubyte.gz", LENET / "mnist" / "train-labels-idx1-ubyte.gz",
                      db)
    return db


def lenet_solver(train_db, seed):
    """LeNet's solver and net with the training Data layer reading `train_db`; no tests, display or snapshots."""
    solver = read_solver_text(LENET / "lenet_solver.prototxt")
    net = read_net_text(LENET / "lenet_train_test.prototxt")
    for layer in net.layer:
        if layer.type == "Data":
            layer.data_param.source = str(train_db)
    solver.ClearField("net")
    solver.net_param.CopyFrom(net)
    for name in ("test_iter", "test_interval", "display", "snapshot", "max_iter", "random_seed"):
        solver.ClearField(name)
    text_format.Merge(f"display: 0 snapshot: 0 snapshot_after_train: false random_seed: {seed}", solver)
    return solver


def measure(train_db, iterations, warmup, seed=1):
    """Train `warmup` untimed iterations, then `iterations` timed ones; returns the numbers as a dict."""
    param = lenet_solver(train_db, seed)
    solver = SOLVERS.get(param.type)(param, source=str(LENET / "lenet_solver.prototxt"))
    data_layers = [layer for layer in solver.net.layers if layer.param.type == "Data"]
    if len(data_layers) != 1:
        raise SystemExit(f"expected one Data layer in LeNet's training net, found {len(data_layers)}")
    clock = DataLayerClock(data_layers[0])
    solver.step(warmup)
    clock.reset()
    start, cpu_start = time.perf_counter(), time.process_time()
    solver.step(iterations)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    batch = solver.net.blobs["data"].shape[0]
    for layer in data_layers:
        layer.close()
    return {
        "iterations": iterations,
        "warmup_iterations": warmup,
        "batch_size": batch,
        "prefetch_depth": data_layers[0].param.data_param.prefetch,
        "total_s": total,
        "iteration_ms": 1000 * total / iterations,
        # CPU seconds of this process (all threads) over the timed run: well below total_s x usable CPUs, and
        # below total_s, means other processes were competing for the cores.
        "process_cpu_s": cpu,
        "data_wait_s": clock.forward_s,
        "data_wait_share_percent": 100 * clock.forward_s / total,
        "blocked_in_next_s": clock.blocked_s,
        "forwards_with_no_batch_ready": clock.empty,
        "loader_s": clock.load_s,
        "loader_batches": clock.loads,
        "loader_ms_per_batch": 1000 * clock.load_s / clock.loads if clock.loads else None,
        "target_share_percent": TARGET_SHARE,
    }


def machine():
    """What the numbers were measured on."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


COLUMNS = (  # (heading, key, format)
    ("iterations", "iterations", "d"),
    ("total s", "total_s", ".2f"),
    ("data-wait s", "data_wait_s", ".3f"),
    ("share %", "data_wait_share_percent", ".2f"),
    ("ms/iter", "iteration_ms", ".1f"),
    ("cpu s", "process_cpu_s", ".2f"),
    ("blocked s", "blocked_in_next_s", ".3f"),
    ("no batch", "forwards_with_no_batch_ready", "d"),
    ("load ms/batch", "loader_ms_per_batch", ".2f"),
)


def print_table(result, out=sys.stdout):
    widths = [max(len(heading), 8) for heading, _, _ in COLUMNS]
    cells = ["-" if result[key] is None else format(result[key], spec) for _, key, spec in COLUMNS]
    print(" ".join(f"{heading:>{width}}" for (heading, _, _), width in zip(COLUMNS, widths)), file=out)
    print(" ".join(f"{cell:>{width}}" for cell, width in zip(cells, widths)), file=out)
    verdict = "met" if result["data_wait_share_percent"] < TARGET_SHARE else "NOT met"
    print(f"target: data wait < {TARGET_SHARE:g}% of wall time: {verdict}", file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=500, help="timed training iterations (default 500)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed iterations first (default 10)")
    parser.add_argument("--db-dir", help="folder for mnist_train_lmdb, kept and reused (default: a temp folder)")
    parser.add_argument("--seed", type=int, default=1, help="solver random_seed (default 1)")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers and the machine to PATH as JSON")
    args = parser.parse_args(argv)
    if args.iterations < 1 or args.warmup < 0:
        parser.error("--iterations must be >= 1 and --warmup >= 0")
    with tempfile.TemporaryDirectory(prefix="caffelite-bench-") as scratch:
        folder = Path(args.db_dir) if args.db_dir else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        result = measure(make_train_lmdb(folder), args.iterations, args.warmup, args.seed)
    result["machine"] = machine()
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
