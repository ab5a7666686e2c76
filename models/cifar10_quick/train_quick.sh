#!/usr/bin/env sh
# Train CIFAR-10 quick from the project root, as Caffe's examples/cifar10/train_quick.sh does: 4,000 iterations at
# lr 0.001, then resume from that snapshot for 1,000 more at lr 0.0001. Extra arguments go to both
# `caffelite train` runs. The LMDBs must exist (see readme.md: caffelite convert_imageset); the mean image is
# computed from the training LMDB the first time.
set -e
here=models/cifar10_quick
for split in train test; do
  if [ ! -d "$here/cifar10_${split}_lmdb" ]; then
    echo "missing $here/cifar10_${split}_lmdb: make it with caffelite convert_imageset (see $here/readme.md)" >&2
    exit 1
  fi
done
[ -f "$here/mean.binaryproto" ] || caffelite compute_image_mean "$here/cifar10_train_lmdb" "$here/mean.binaryproto"
mkdir -p $here/snapshots
caffelite train --solver $here/cifar10_quick_solver.prototxt "$@"
# reduce the learning rate by a factor of 10 after 8 epochs
caffelite train --solver $here/cifar10_quick_solver_lr1.prototxt \
  --snapshot $here/snapshots/cifar10_quick_iter_4000.solverstate "$@"
