"""caffelite.parallel: data-parallel training on MPI ranks.

The data layers' sharing out of records is checked in-process, posing as rank r of K. The training itself runs
2 ranks on this machine through `mpiexec` (MPICH's, from the `mpi` extra): K ranks at batch B must end where one
process at batch K*B, or at iter_size K, ends; all ranks must hold the same weights; a rank that raises or is
killed must stop the others; training resumes from a snapshot with another K.
"""

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from caffelite import parallel
from caffelite.data import db
from caffelite.data.datum import array_to_datum
from caffelite.errors import CaffeliteError
from caffelite.io.binary import read_caffemodel
from caffelite.io.blob import blobproto_to_array
from caffelite.phase import TEST, TRAIN
from cli_helpers import send_signals
from layer_harness import make_layer, run_forward

WORKER = Path(__file__).with_name("parallel_worker.py")
RECORDS = 48


# -- the data layers' shares, posing as one rank of several -----------------------------------------------------
@pytest.fixture
def as_rank(monkeypatch):
    def pose(rank, size, shared_seed=11):
        monkeypatch.setattr(parallel._world, "rank", rank)
        monkeypatch.setattr(parallel._world, "size", size)
        monkeypatch.setattr(parallel._world, "shared_seed", shared_seed)
    return pose


def labelled_lmdb(path, count=RECORDS, nan_from_rank=None):
    """Records labelled by their index (label i % 3 is the class); float items; record i holds i everywhere
    (or NaN for the odd records when nan_from_rank is set, so rank 1 of 2 reads only NaN)."""
    with db.open_writer(path) as writer:
        for i in range(count):
            item = np.random.default_rng(i).normal(size=(1, 4, 4)).astype(np.float32)
            if nan_from_rank is not None and i % 2 == nan_from_rank:
                item[...] = np.nan
            writer.put(b"%08d" % i, array_to_datum(item, label=i % 3).SerializeToString())
    return path


def indexed_lmdb(path, count=10):
    with db.open_writer(path) as writer:
        for i in range(count):
            writer.put(b"%08d" % i, array_to_datum(np.full((1, 1, 1), i, np.uint8), label=i).SerializeToString())
    return path


def served_labels(made, batches):
    layer, bottom, top = made
    labels = [run_forward(layer, bottom, top)[1] for _ in range(batches)]
    if hasattr(layer, "close"):  # the prefetching layers' reader thread
        layer.close()
    return np.concatenate(labels).astype(int)


def data_layer_text(source, batch):
    return (f'name: "d" type: "Data" top: "data" top: "label" '
            f'data_param {{ source: "{source}" backend: LMDB batch_size: {batch} }}')


@pytest.mark.parametrize("size", [2, 3])
def test_data_ranks_read_interleaved_records_and_together_every_record(tmp_path, as_rank, size):
    source = indexed_lmdb(tmp_path / "db", count=10)
    shares = []
    for rank in range(size):
        as_rank(rank, size)
        shares.append(served_labels(make_layer(data_layer_text(source, 4), [], phase=TRAIN), 3))
    for rank, share in enumerate(shares):
        # record i is rank i % K's, counting on through the wrap-around at 10 (Caffe's offset)
        assert list(share) == [i % 10 for i in range(rank, 12 * size, size)]
    # one batch of each rank: the records one process at batch 4K would read
    first = np.concatenate([share[:4] for share in shares])
    assert sorted(first) == sorted(i % 10 for i in range(4 * size))


def test_data_in_the_test_phase_reads_every_record_on_every_rank(tmp_path, as_rank):
    source = indexed_lmdb(tmp_path / "db")
    as_rank(1, 2)
    assert list(served_labels(make_layer(data_layer_text(source, 5), [], phase=TEST), 1)) == [0, 1, 2, 3, 4]


def test_image_data_ranks_share_one_shuffled_order(tmp_path, as_rank):
    from PIL import Image

    lines = []
    for i in range(9):
        Image.fromarray(np.full((2, 2, 3), i * 20, np.uint8)).save(tmp_path / f"{i}.png")
        lines.append(f"{i}.png {i}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    text = (f'name: "d" type: "ImageData" top: "data" top: "label" image_data_param {{ source: "{tmp_path}/list.txt" '
            f'root_folder: "{tmp_path}/" batch_size: 3 shuffle: true }}')
    shares = []
    for rank in range(2):
        as_rank(rank, 2)
        shares.append(served_labels(make_layer(text, [], phase=TRAIN, seed=rank + 1), 3))
    # 18 draws = two passes over 9 images, interleaved: each pass's images split between the ranks, once each
    merged = np.empty(18, int)
    merged[0::2], merged[1::2] = shares[0], shares[1]
    assert sorted(merged[:9]) == list(range(9)) and sorted(merged[9:]) == list(range(9))
    assert list(merged[:9]) != list(range(9))  # shuffled, and alike on both ranks despite different seeds


def test_hdf5_data_ranks_read_interleaved_rows_across_files(tmp_path, as_rank):
    names = []
    for f, rows in enumerate([range(0, 5), range(5, 12)]):
        path = tmp_path / f"{f}.h5"
        with h5py.File(path, "w") as handle:
            handle["data"] = np.array(rows, np.float32).reshape(-1, 1)
            handle["label"] = np.array(rows, np.float32)
        names.append(str(path))
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    text = (f'name: "d" type: "HDF5Data" top: "data" top: "label" hdf5_data_param {{ source: "{tmp_path}/list.txt" '
            'batch_size: 4 }')
    for rank in range(2):
        as_rank(rank, 2)
        assert list(served_labels(make_layer(text, [], phase=TRAIN), 4)) == [i % 12 for i in range(rank, 32, 2)]
    as_rank(0, 1)  # a lone process reads every row, as before
    assert list(served_labels(make_layer(text, [], phase=TRAIN), 3)) == [i % 12 for i in range(12)]


def test_launcher_variables_tell_a_rank_of_several():
    assert parallel.launched_by_mpi({"PMI_SIZE": "2", "PMI_RANK": "1"})
    assert parallel.launched_by_mpi({"OMPI_COMM_WORLD_SIZE": "4"})
    assert not parallel.launched_by_mpi({"PMI_SIZE": "1"})
    assert not parallel.launched_by_mpi({})


def test_without_mpi4py_init_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # what an environment without the mpi extra sees
    with pytest.raises(CaffeliteError, match=r"pip install 'caffelite\[mpi\]'"):
        parallel.init()
    assert parallel.solver_count() == 1


def test_a_lone_process_is_rank_zero_of_one():
    assert (parallel.solver_rank(), parallel.solver_count(), parallel.root_solver()) == (0, 1, True)
    assert parallel.shared_generator("data") is None


# -- training on 2 ranks through mpiexec ------------------------------------------------------------------------
def mpiexec():
    pytest.importorskip("mpi4py", reason="the mpi extra (mpi4py, mpich) is not installed: pip install caffelite[mpi]")
    found = Path(sys.executable).with_name("mpiexec")
    found = str(found) if found.exists() else shutil.which("mpiexec")
    if not found:
        pytest.skip("no mpiexec: install the mpi extra (MPICH's wheel carries it) or an MPI library")
    return found


NET = """
name: "shares"
layer {{ name: "data" type: "Data" top: "data" top: "label"
        data_param {{ source: "{source}" backend: LMDB batch_size: {batch} }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param {{ num_output: 8 weight_filler {{ type: "xavier" }}
                               bias_filler {{ type: "constant" value: 0.1 }} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }}
layer {{ name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param {{ num_output: 3 weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }}
"""

SOLVERS = {
    "SGD": 'type: "SGD" base_lr: 0.1 momentum: 0.9 weight_decay: 0.001',
    "Adam": 'type: "Adam" base_lr: 0.01 momentum: 0.9 momentum2: 0.999',
}


def write_run(folder, name, source, batch, solver, max_iter=12, iter_size=1, extra=""):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.prototxt").write_text(NET.format(source=source, batch=batch))
    path = folder / "solver.prototxt"
    path.write_text(
        f'net: "{folder}/net.prototxt" {SOLVERS[solver]} lr_policy: "fixed" max_iter: {max_iter} '
        f'iter_size: {iter_size} display: 4 random_seed: 5 snapshot_prefix: "{folder}/{name}" {extra}'
    )
    return path


def train(solver, ranks=1, *extra, timeout=120):
    command = [sys.executable, "-m", "caffelite_tools.main", "train", "--solver", str(solver), *extra]
    if ranks > 1:
        command = [mpiexec(), "-n", str(ranks), *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def weights(path):
    return {layer.name: [blobproto_to_array(b) for b in layer.blobs] for layer in read_caffemodel(path).layer
            if layer.blobs}


def assert_same_weights(a, b):
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys() == {"ip1", "ip2"}
    for name in first:
        for x, y in zip(first[name], second[name]):
            np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6, err_msg=name)


@pytest.mark.parametrize("solver", sorted(SOLVERS))
def test_two_ranks_train_as_one_process_with_twice_the_batch_or_iter_size_two(tmp_path, solver):
    source = labelled_lmdb(tmp_path / "db")
    log = train(write_run(tmp_path / "two", "two", source, 4, solver), 2)
    assert "Training on 2 processes (MPI)" in log
    assert log.count("Iteration 4 (") == 1  # rank 0 alone logs
    train(write_run(tmp_path / "wide", "wide", source, 8, solver))
    train(write_run(tmp_path / "accum", "accum", source, 4, solver, iter_size=2))
    two = tmp_path / "two" / "two_iter_12.caffemodel"
    assert_same_weights(two, tmp_path / "wide" / "wide_iter_12.caffemodel")
    assert_same_weights(two, tmp_path / "accum" / "accum_iter_12.caffemodel")
    assert sorted(p.name for p in (tmp_path / "two").glob("*_iter_*")) == ["two_iter_12.caffemodel",
                                                                             "two_iter_12.solverstate"]
    # and training did move the weights away from where the fillers put them
    assert not np.allclose(weights(two)["ip2"][0], 0, atol=0.05)


def test_every_rank_holds_the_same_weights_through_the_python_api(tmp_path):
    solver = write_run(tmp_path, "api", labelled_lmdb(tmp_path / "db"), 4, "SGD", max_iter=6)
    result = subprocess.run([mpiexec(), "-n", "2", sys.executable, str(WORKER), str(solver), "train"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max difference between ranks: 0.0" in result.stdout
    assert (tmp_path / "api_iter_6.caffemodel").exists()
    # both ranks run on this machine: each gets half its cores for BLAS and for caffelite's batch threads
    half = max(1, len(os.sched_getaffinity(0)) // 2)
    assert f"threads: {half} {half}" in result.stdout


def test_resume_from_a_snapshot_with_another_number_of_ranks(tmp_path):
    source = labelled_lmdb(tmp_path / "db")
    first = train(write_run(tmp_path / "a", "a", source, 4, "Adam", max_iter=6), 2)
    assert "Snapshotting to binary proto file" in first
    state = tmp_path / "a" / "a_iter_6.solverstate"
    # 2 ranks -> 1 process at twice the batch, and 2 ranks -> 2 ranks: the same 4 more iterations
    log = train(write_run(tmp_path / "one", "one", source, 8, "Adam", max_iter=10), 1, "--snapshot", str(state))
    assert "Restoring previous solver status" in log and "Iteration 8 (" in log and "Iteration 4 (" not in log
    log = train(write_run(tmp_path / "two", "two", source, 4, "Adam", max_iter=10), 2, "--snapshot", str(state))
    assert "Restoring previous solver status" in log and "Iteration 4 (" not in log
    # rank 1 never read the snapshot: it trains from rank 0's broadcast weights and Adam history
    assert_same_weights(tmp_path / "one" / "one_iter_10.caffemodel", tmp_path / "two" / "two_iter_10.caffemodel")


def test_ctrl_c_to_mpiexec_stops_every_rank_after_one_final_snapshot(tmp_path):
    """mpiexec passes SIGINT to the ranks; rank 0's request travels with the gradients, so all stop together."""
    solver = write_run(tmp_path, "int", labelled_lmdb(tmp_path / "db"), 4, "SGD", max_iter=10**7)
    process = subprocess.Popen([mpiexec(), "-n", "2", sys.executable, "-m", "caffelite_tools.main", "train",
                                "--solver", str(solver)], stderr=subprocess.PIPE, text=True)
    log = send_signals(process, [(40, signal.SIGINT)])
    assert "Optimization stopped early." in log
    stopped = re.findall(r"Snapshotting solver state to binary proto file .*_iter_(\d+)\.solverstate", log)
    assert len(stopped) == 1 and int(stopped[0]) > 40
    assert (tmp_path / f"int_iter_{stopped[0]}.caffemodel").exists()


def test_a_rank_that_fails_stops_every_rank_with_its_message(tmp_path):
    """Rank 1 reads only NaN records: its loss is NaN, it stops with the solver's message and takes rank 0 along."""
    source = labelled_lmdb(tmp_path / "db", nan_from_rank=1)
    solver = write_run(tmp_path, "nan", source, 4, "SGD", max_iter=10**6)
    started = time.monotonic()
    result = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "caffelite_tools.main", "train",
                             "--solver", str(solver)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert time.monotonic() - started < 30
    assert re.search(r"caffelite train \(rank 1 of 2\): error: .*solver.prototxt: iteration 0: the loss is nan",
                     result.stderr), result.stderr[-3000:]


def test_an_exception_in_a_script_stops_every_rank(tmp_path):
    solver = write_run(tmp_path, "raise", labelled_lmdb(tmp_path / "db"), 4, "SGD", max_iter=10**6)
    started = time.monotonic()
    result = subprocess.run([mpiexec(), "-n", "2", sys.executable, str(WORKER), str(solver), "raise"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and time.monotonic() - started < 30
    assert "rank one gives up at iteration 2" in result.stderr


def test_killing_one_rank_stops_the_others_within_seconds(tmp_path):
    solver = write_run(tmp_path, "kill", labelled_lmdb(tmp_path / "db"), 4, "SGD")
    process = subprocess.Popen([mpiexec(), "-n", "2", sys.executable, str(WORKER), str(solver), "forever"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # Read in a thread so that a rank that never says its pid fails the test instead of hanging it.
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    pids, seen = {}, []
    try:
        while len(pids) < 2:
            try:
                seen.append(lines.get(timeout=60))
            except queue.Empty:
                pytest.fail(f"the ranks did not say their pids within 60 s; their output: {seen}")
            # mpiexec may interleave the ranks' lines ("rank 0 pid 7379rank 1 pid 7380\n", seen here).
            pids.update((int(rank), int(pid)) for rank, pid in re.findall(r"rank (\d) pid (\d+)", seen[-1]))
        time.sleep(1)  # both are training now, exchanging gradients
        os.kill(pids[1], signal.SIGKILL)
        killed = time.monotonic()
        process.wait(timeout=30)
        assert time.monotonic() - killed < 10
        assert process.returncode != 0
        deadline = time.monotonic() + 5
        while running(pids[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not running(pids[0])
    finally:
        process.kill()
        process.wait()
        for pid in pids.values():  # the ranks run in sessions of their own, out of mpiexec's reach once it is gone
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def running(pid):
    """The process exists and is not a zombie (an orphan's zombie may wait for a lazy init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
