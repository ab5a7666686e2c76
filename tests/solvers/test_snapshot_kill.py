"""kill -9 at any moment of training leaves a complete, loadable snapshot from which training resumes."""

import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from caffelite.io.binary import read_caffemodel, read_solverstate
from caffelite.io.hdf5 import read_solverstate_hdf5, read_weights_hdf5
from caffelite.solvers.solver import get_solver

# Weights of a few MB, so that writing a snapshot takes long enough for kills to land inside it.
NET = """
name: "kill"
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: 8 dim: 512 } shape { dim: 8 }
                           data_filler { type: "gaussian" } data_filler { type: "constant" value: 1 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 1500 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""
FORMATS = {"BINARYPROTO": (".solverstate", ".caffemodel"), "HDF5": (".solverstate.h5", ".caffemodel.h5")}


def write_solver(folder, snapshot_format, max_iter=10**9):
    (folder / "net.prototxt").write_text(NET)
    solver = folder / "solver.prototxt"
    solver.write_text(
        f'net: "{folder}/net.prototxt" base_lr: 0.01 momentum: 0.9 lr_policy: "fixed" max_iter: {max_iter} '
        f'snapshot: 1 snapshot_prefix: "{folder}/kill" snapshot_format: {snapshot_format} random_seed: 3 '
        "snapshot_after_train: false"
    )
    return solver


def snapshots(folder, snapshot_format):
    """{iteration: state path} of the solver states on disk (temporary files do not match)."""
    state_suffix = FORMATS[snapshot_format][0]
    found = {}
    for path in folder.iterdir():
        match = re.fullmatch(r"kill_iter_(\d+)" + re.escape(state_suffix), path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def check_complete(folder, snapshot_format):
    """Every snapshot file under its final name parses completely; returns the newest state's iteration."""
    state_suffix, model_suffix = FORMATS[snapshot_format]
    read_state, read_model = ((read_solverstate, read_caffemodel) if snapshot_format == "BINARYPROTO"
                              else (read_solverstate_hdf5, read_weights_hdf5))
    for path in folder.glob(f"kill_iter_*{model_suffix}"):
        read_model(str(path))  # raises on a partial file
    states = snapshots(folder, snapshot_format)
    for path in states.values():
        read_state(str(path))
    return max(states) if states else None


def wait_for_temporary_file(folder, child, timeout=20):
    """Poll until a snapshot is being written (1 if seen), or the child is gone or time is up (0)."""
    known = {p.name for p in folder.iterdir() if p.name.endswith(".tmp")}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.is_alive():
        if any(name.endswith(".tmp") and name not in known for name in os.listdir(folder)):
            return 1
        time.sleep(0.0005)
    return 0


def _train(solver_path, state):
    """The child: resume from `state` (None: start afresh) and train until killed (a forked process; the parent
    never runs a net before forking)."""
    os.environ["CAFFELITE_NUM_THREADS"] = "1"
    get_solver(str(solver_path)).solve(state)


@pytest.mark.parametrize("snapshot_format", sorted(FORMATS))
def test_sigkill_during_training_always_leaves_a_snapshot_to_resume_from(tmp_path, snapshot_format):
    solver_path = write_solver(tmp_path, snapshot_format)
    context = multiprocessing.get_context("fork")
    chooser = random.Random(20261122)
    newest, mid_write = None, 0
    for kill in range(20):
        # Each run resumes from the newest snapshot the previous kill left, so every kill also tests resuming.
        state = str(snapshots(tmp_path, snapshot_format)[newest]) if newest is not None else None
        child = context.Process(target=_train, args=(solver_path, state))
        child.start()
        if kill % 2:
            # Past start-up (building the net) into the snapshot-every-iteration loop, then at a random moment.
            time.sleep(0.4 + chooser.uniform(0, 0.3))
        else:
            # The moment a snapshot file is being written (its temporary file exists).
            mid_write += wait_for_temporary_file(tmp_path, child)
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        assert child.exitcode == -signal.SIGKILL
        previous, newest = newest, check_complete(tmp_path, snapshot_format)
        # A kill during the very first snapshot leaves none yet; after that one is always there, never older.
        assert previous is None or (newest is not None and newest >= previous), f"kill {kill}: {previous} -> {newest}"
    assert mid_write == 10  # every other kill hit a write in progress
    # Iterations accumulate over the runs: the runs resumed from their snapshots instead of starting afresh.
    assert newest is not None and newest > 10, newest
    # The newest state (and the weights it names) resumes training in a new solver.
    state = snapshots(tmp_path, snapshot_format)[newest]
    solver = get_solver(str(write_solver(tmp_path, snapshot_format, max_iter=newest + 2)))
    solver.restore(str(state))
    assert solver.iter == newest
    before = solver.net.params["ip1"][0].data.copy()
    solver.step(2)
    assert solver.iter == newest + 2
    assert np.all(np.isfinite(solver.net.params["ip1"][0].data))
    assert not np.array_equal(before, solver.net.params["ip1"][0].data)


def test_the_command_resumes_after_kill_9(tmp_path):
    solver_path = write_solver(tmp_path, "BINARYPROTO")
    command = [sys.executable, "-m", "caffelite_tools.main", "train", "--solver", str(solver_path)]
    chooser = random.Random(7)
    for _ in range(3):
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        for line in process.stderr:  # wait until it is snapshotting, then a little more
            if "Snapshotting solver state" in line:
                break
        time.sleep(chooser.uniform(0, 0.2))
        process.kill()
        process.communicate(timeout=30)
    newest = check_complete(tmp_path, "BINARYPROTO")
    state = snapshots(tmp_path, "BINARYPROTO")[newest]
    write_solver(tmp_path, "BINARYPROTO", max_iter=newest + 3)
    result = subprocess.run([*command, "--snapshot", str(state)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"Restoring previous solver status from {state}" in result.stderr
    assert f"Iteration {newest + 3}" in result.stderr or f"_iter_{newest + 3}" in result.stderr


def test_no_temporary_file_is_left_by_a_completed_snapshot(tmp_path):
    solver = get_solver(str(write_solver(tmp_path, "BINARYPROTO", max_iter=2)))
    solver.step(2)
    leftovers = [p.name for p in Path(tmp_path).iterdir() if p.name.startswith(".")]
    assert leftovers == []
