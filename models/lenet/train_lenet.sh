#!/usr/bin/env sh
# Train LeNet on MNIST from the project root: make the MNIST LMDBs once, then run the solver.
# Extra arguments go to `caffelite train` (e.g. --snapshot models/lenet/snapshots/lenet_iter_5000.solverstate).
set -e
sh models/lenet/make_mnist_lmdb.sh
mkdir -p models/lenet/snapshots
exec caffelite train --solver models/lenet/lenet_solver.prototxt "$@"
