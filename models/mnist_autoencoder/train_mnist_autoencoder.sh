#!/usr/bin/env sh
# Train Caffe's MNIST autoencoder from the project root: make LeNet's MNIST LMDBs once, then run a solver.
#   sh models/mnist_autoencoder/train_mnist_autoencoder.sh [sgd|nesterov|adagrad|adadelta] [caffelite train flags]
# The first argument picks the solver (default sgd); the rest go to `caffelite train`
# (e.g. --snapshot models/mnist_autoencoder/snapshots/mnist_autoencoder_iter_10000.solverstate).
set -e
here=models/mnist_autoencoder
mnist=models/lenet
case "$1" in
  sgd) solver=$here/mnist_autoencoder_solver.prototxt; shift ;;
  nesterov|adagrad|adadelta) solver=$here/mnist_autoencoder_solver_$1.prototxt; shift ;;
  ""|-*) solver=$here/mnist_autoencoder_solver.prototxt ;;
  *) echo "unknown solver '$1' (known: sgd, nesterov, adagrad, adadelta)" >&2; exit 2 ;;
esac
for split in train t10k; do
  db=$mnist/mnist_$( [ $split = t10k ] && echo test || echo train )_lmdb
  [ -d "$db" ] || caffelite convert_mnist "$mnist/mnist/$split-images-idx3-ubyte.gz" \
    "$mnist/mnist/$split-labels-idx1-ubyte.gz" "$db"
done
mkdir -p $here/snapshots
exec caffelite train --solver "$solver" "$@"
