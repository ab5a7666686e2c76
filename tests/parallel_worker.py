"""Run by tests/test_parallel.py under `mpiexec -n K`: training through the Python API, caffelite.parallel.

    python parallel_worker.py SOLVER MODE [RESUME]

MODE:
  train   train, then every rank sends rank 0 its weights; rank 0 prints "max difference between ranks: X"
          and "threads: BLAS CAFFELITE_NUM_THREADS" (what init() left it)
  raise   rank 1 raises a CaffeliteError in its third iteration (the others must not wait for it)
  forever print "rank R pid P", then train until killed
"""

import os
import sys

import numpy as np
from mpi4py import MPI

from caffelite import parallel
from caffelite.errors import CaffeliteError
from caffelite.log import configure
from caffelite.solvers.solver import SOLVERS
from caffelite.io.prototxt import read_solver_text


class RaiseOnRankOne:
    def __init__(self, solver):
        self.solver = solver

    def on_start(self):
        if parallel.solver_rank() == 1 and self.solver.iter == 2:
            raise CaffeliteError("rank one gives up at iteration 2")


def main(solver_path, mode, resume=None):
    configure()
    rank, size = parallel.init()
    param = read_solver_text(solver_path)
    if mode == "forever":
        param.max_iter = 10**9
        print(f"rank {rank} pid {os.getpid()}", flush=True)
    solver = SOLVERS.get(param.type)(param, source=solver_path)
    if mode == "raise":
        solver.add_callback(RaiseOnRankOne(solver))
    parallel.solve(solver, resume)
    weights = np.concatenate([t.data.ravel() for t in solver.net.learnable_params])
    gathered = np.empty((size, weights.size), weights.dtype) if rank == 0 else None
    MPI.COMM_WORLD.Gather(weights, gathered, root=0)
    if rank == 0:
        from threadpoolctl import threadpool_info

        blas = {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}
        print(f"max difference between ranks: {np.abs(gathered - gathered[0]).max()}", flush=True)
        print(f"threads: {','.join(map(str, sorted(blas)))} {os.environ['CAFFELITE_NUM_THREADS']}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
