"""Phases, under pycaffe's names (values equal caffe.proto's Phase enum)."""

TRAIN = 0
TEST = 1
PHASE_NAMES = {TRAIN: "TRAIN", TEST: "TEST"}
