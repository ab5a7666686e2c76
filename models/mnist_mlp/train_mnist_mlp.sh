#!/usr/bin/env sh
# Train the MNIST MLP from the project root (makes LeNet's MNIST LMDBs first if they are missing).
set -e
sh models/lenet/make_mnist_lmdb.sh
mkdir -p models/mnist_mlp/snapshots
exec caffelite train --solver models/mnist_mlp/mnist_mlp_solver.prototxt "$@"
