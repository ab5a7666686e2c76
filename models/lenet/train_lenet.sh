#!/usr/bin/env sh
# Train LeNet on MNIST from the project root: make the MNIST LMDBs once, then run the solver.
# Extra arguments go to `caffelite train` (e.g. --snapshot models/lenet/snapshots/lenet_iter_5000.solverstate).
set -e
here=models/lenet
for split in train t10k; do
  db=$here/mnist_$( [ $split = t10k ] && echo test || echo train )_lmdb
  [ -d "$db" ] || caffelite convert_mnist "$here/mnist/$split-images-idx3-ubyte.gz" \
    "$here/mnist/$split-labels-idx1-ubyte.gz" "$db"
done
mkdir -p $here/snapshots
exec caffelite train --solver $here/lenet_solver.prototxt "$@"
