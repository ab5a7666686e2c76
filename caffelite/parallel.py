"""Data-parallel training over MPI: K processes train one model, each on its own share of the data.

The model of Caffe's multi-GPU training (parallel.cpp), with MPI (through mpi4py) as the transport, so `mpirun`
and any cluster scheduler launch it:

- `init()` joins the MPI world: this process learns its rank (Caffe's solver_rank) and the world size
  (solver_count), the BLAS and caffelite threads of the machine are divided between the ranks it holds, only
  rank 0 logs below WARNING, and an uncaught exception aborts every rank instead of leaving them waiting.
- Built after `init()`, a Solver seeds rank r with random_seed + r (as Caffe does); the Data, ImageData and
  HDF5Data layers of the TRAIN phase read record i only on rank i % K (Caffe's DataLayer::Skip), shuffling
  with a generator that is the same on every rank, so the ranks' shares partition the data.
- `DataParallel(solver)` makes the ranks one trainer: rank 0's weights (and solver state) are broadcast, and
  after every backward pass the gradients are summed across ranks in a few large buffers and divided by K, so
  every rank applies the same update. K ranks at batch B thus train as one process at batch K*B. Rank 0 alone
  tests and snapshots; its signal requests (SIGINT, SIGHUP) reach every rank in the gradient exchange.

`solve(solver, resume_file)` does all of it for a script; `caffelite train` does it when launched by mpirun.
Without mpi4py (the `mpi` extra) nothing here is imported by the rest of caffelite, and one process trains alone.
"""

import logging
import os
import sys
import time
import zlib

import numpy as np

from caffelite.device import usable_cores
from caffelite.errors import CaffeliteError
from caffelite.phase import TRAIN
from caffelite.rng import set_random_seed

log = logging.getLogger("caffelite")

# Gradients are exchanged in buffers of at most this many elements (64 MB of float32): few calls, bounded copies.
BUCKET_ELEMENTS = 1 << 24

# The action rank 0 asks for (the solver's NONE, STOP, SNAPSHOT) travels as its index in the first gradient buffer.
_ACTION_CODES = ("none", "stop", "snapshot")

# How long a failing rank waits before aborting the others, for its message to get out (see abort).
_LAST_WORDS_SECONDS = 0.5

# Environment variables by which MPI launchers tell a process the size of its world.
_LAUNCHER_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")


class _World:
    rank = 0
    size = 1
    comm = None
    shared_seed = None


_world = _World()


def solver_rank():
    """This process's rank (0 when not training in parallel)."""
    return _world.rank


def solver_count():
    """How many processes train together (1 when not training in parallel)."""
    return _world.size


def root_solver():
    """True on the rank that logs, tests and snapshots (rank 0), and in a lone process."""
    return _world.rank == 0


def launched_by_mpi(environ=None):
    """True when an MPI launcher (mpirun/mpiexec of MPICH, Open MPI, MVAPICH, or PMIx) started this process
    as one of several."""
    environ = os.environ if environ is None else environ
    for name in _LAUNCHER_SIZE_VARIABLES:
        value = environ.get(name, "")
        if value.isdigit():
            return int(value) > 1
    return False


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise CaffeliteError(
            f"training on several processes needs mpi4py and an MPI library ({error}); install them with "
            "pip install 'caffelite[mpi]'"
        ) from None
    return MPI


def init(comm=None, threads=None):
    """Join the MPI world (`comm`, default COMM_WORLD) and set this process up as one of its ranks; returns
    (rank, size). Call it before building nets and solvers. `threads`: BLAS and caffelite threads per rank
    (default: the cores of the machine divided by the ranks running on it)."""
    MPI = _mpi()
    comm = comm or MPI.COMM_WORLD
    _world.comm, _world.rank, _world.size = comm, comm.Get_rank(), comm.Get_size()
    seed = np.array([np.random.SeedSequence().entropy % (1 << 63)], dtype=np.int64)
    comm.Bcast(seed, root=0)
    _world.shared_seed = int(seed[0])
    _divide_threads(comm, MPI, threads)
    if _world.rank > 0:
        log.addFilter(lambda record: record.levelno >= logging.WARNING)
    sys.excepthook = _abort_on_exception(sys.excepthook)
    log.info("Training on %d processes (MPI)", _world.size)
    return _world.rank, _world.size


def _divide_threads(comm, MPI, threads):
    if threads is None:
        on_this_machine = comm.Split_type(MPI.COMM_TYPE_SHARED)
        local = on_this_machine.Get_size()
        on_this_machine.Free()
        threads = max(1, usable_cores() // local)
    os.environ["CAFFELITE_NUM_THREADS"] = str(threads)  # caffelite's own batch threads (layers/_threads.py)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        log.warning("threadpoolctl is not installed: BLAS keeps its own thread count (set OPENBLAS_NUM_THREADS=%d "
                    "or install caffelite[mpi])", threads)
        return
    threadpool_limits(threads)


def _abort_on_exception(previous):
    def hook(kind, value, trace):
        previous(kind, value, trace)
        abort(1)
    return hook


def abort(code=1):
    """Stop every rank now (MPI_Abort): the others may be waiting for this one in a collective call."""
    if _world.comm is not None and _world.size > 1:
        sys.stderr.flush()
        sys.stdout.flush()
        # The launcher relays each rank's output asynchronously and drops what it has not relayed when a rank
        # aborts: give it a moment to pass on this rank's last words (the error the user needs to see).
        time.sleep(_LAST_WORDS_SECONDS)
        _world.comm.Abort(code)


def seed(random_seed):
    """Caffe's per-rank seeding: rank r draws from random_seed + r; the shuffles shared by all ranks from
    random_seed itself, so a seeded parallel run repeats."""
    set_random_seed(random_seed + _world.rank)
    if _world.size > 1:
        _world.shared_seed = random_seed


def shared_generator(name):
    """A generator that gives the same numbers on every rank (for the data order that the ranks share out),
    distinct per `name`; None in a lone process (the caller uses its usual generator)."""
    if _world.size == 1:
        return None
    return np.random.default_rng([_world.shared_seed, zlib.crc32(name.encode())])


def data_share(phase):
    """(rank, size) of the records a data layer of `phase` keeps: record i on rank i % size in TRAIN; (0, 1),
    every record, in TEST, which only rank 0 runs (as in Caffe)."""
    return (_world.rank, _world.size) if phase == TRAIN else (0, 1)


class DataParallel:
    """Solver callback that makes the ranks one trainer (see the module docstring). Attach it once all ranks
    have built their solver; it broadcasts rank 0's state at once.

    `reduce_seconds` accumulates the time spent exchanging gradients (for the benchmark).
    """

    def __init__(self, solver, bucket_elements=BUCKET_ELEMENTS):
        if _world.comm is None:
            raise CaffeliteError("caffelite.parallel.init() must be called before DataParallel")
        self.solver = solver
        self.comm = _world.comm
        self._in_place = _mpi().IN_PLACE
        self._buckets = _buckets(solver.net.learnable_params, bucket_elements, extra=1)
        self._poll = solver.action_request if root_solver() else None
        self._agreed = _ACTION_CODES[0]
        solver.action_request = self._agreed_action
        solver.add_callback(self)
        self.reduce_seconds = 0.0
        self.broadcast_state()

    def state_arrays(self):
        """Everything that must be equal on every rank: each param of the net once, then the solver's history."""
        seen, arrays = set(), []
        for function in self.solver.net.layers:
            for tensor in function.params:
                if id(tensor) not in seen:
                    seen.add(id(tensor))
                    arrays.append(tensor.data)
        return arrays + list(self.solver.history)

    def broadcast_state(self):
        """Give every rank rank 0's weights, solver history, iteration and step (after building or restoring)."""
        counters = np.array([self.solver.iter, self.solver.current_step], dtype=np.int64)
        self.comm.Bcast(counters, root=0)
        self.solver.iter, self.solver.current_step = int(counters[0]), int(counters[1])
        for arrays, buffer in _buckets_of(self.state_arrays(), BUCKET_ELEMENTS):
            _pack(arrays, buffer)
            self.comm.Bcast(buffer, root=0)
            _unpack(buffer, arrays)

    def on_gradients_ready(self):
        started = time.perf_counter()
        action = _ACTION_CODES.index(self._poll()) if self._poll else 0
        scale = 1.0 / _world.size
        for index, (tensors, buffer) in enumerate(self._buckets):
            grads = [t.grad for t in tensors]
            _pack(grads, buffer)
            if index == 0:
                buffer[-1] = action  # rank 0's request; every other rank adds 0
            self.comm.Allreduce(self._in_place, buffer)  # the default operation is the sum
            if index == 0:
                self._agreed = _ACTION_CODES[int(round(float(buffer[-1])))]
            buffer *= scale
            _unpack(buffer, grads)
        self.reduce_seconds += time.perf_counter() - started

    def _agreed_action(self):
        """The solver's action_request on every rank: what rank 0 asked for in this iteration's exchange, once."""
        action, self._agreed = self._agreed, _ACTION_CODES[0]
        return action


def _buckets(tensors, limit, extra=0):
    """Consecutive runs of `tensors` of at most `limit` elements (a larger tensor alone) with their buffer;
    the first buffer has `extra` more elements."""
    arrays = [t.grad for t in tensors]
    groups = _buckets_of(arrays, limit, extra)
    start, result = 0, []
    for members, buffer in groups:
        result.append((tensors[start : start + len(members)], buffer))
        start += len(members)
    return result


def _buckets_of(arrays, limit, extra=0):
    groups, current, size = [], [], 0
    for array in arrays:
        if current and size + array.size > limit:
            groups.append(current)
            current, size = [], 0
        current.append(array)
        size += array.size
    if current or extra:
        groups.append(current)
    dtype = arrays[0].dtype if arrays else np.float32
    return [
        (group, np.empty(sum(a.size for a in group) + (extra if i == 0 else 0), dtype=dtype))
        for i, group in enumerate(groups)
    ]


def _pack(arrays, buffer):
    start = 0
    for array in arrays:
        buffer[start : start + array.size] = array.reshape(-1)
        start += array.size


def _unpack(buffer, arrays):
    start = 0
    for array in arrays:
        array[...] = buffer[start : start + array.size].reshape(array.shape)
        start += array.size


def solve(solver, resume_file=None):
    """Train `solver` on every rank as one model: rank 0 restores `resume_file` (when given), every rank starts
    from rank 0's state, and the loop runs with gradients exchanged; returns the DataParallel."""
    sync = DataParallel(solver)
    if resume_file:
        if root_solver():
            log.info("Restoring previous solver status from %s", resume_file)
            solver.restore(resume_file)
        sync.broadcast_state()
    solver.solve()
    return sync
