"""Caffe's protobuf schema (proto/caffe.proto), compiled by grpcio-tools into caffe_pb2 (see build.py)."""
