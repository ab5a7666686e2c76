"""Caffe's datasets: Datum records, LMDB access, the data transformer, dataset converters (MNIST)."""
