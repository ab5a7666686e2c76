#!/usr/bin/env sh
# From the project root: convert the MNIST files in models/lenet/mnist/ into models/lenet/mnist_{train,test}_lmdb
# (once; existing databases are kept). Used by the LeNet and MNIST MLP training scripts.
set -e
here=models/lenet
for split in train t10k; do
  db=$here/mnist_$( [ $split = t10k ] && echo test || echo train )_lmdb
  [ -d "$db" ] || caffelite convert_mnist "$here/mnist/$split-images-idx3-ubyte.gz" \
    "$here/mnist/$split-labels-idx1-ubyte.gz" "$db"
done
