"""Every prototxt, caffemodel and solverstate in ../shared/conformance reads through caffelite.io."""

import math

import pytest
from shared_data import CONFORMANCE, shared_path

from caffelite.io.binary import read_caffemodel, read_solverstate
from caffelite.io.blob import blob_shape, blobproto_to_array
from caffelite.io.prototxt import read_net_text, read_solver_text


def check_prototxt(path):
    if "solver" in path.name:
        solver = read_solver_text(path)
        assert solver.ListFields() and not solver.HasField("solver_type")
    else:
        net = read_net_text(path)
        assert net.layer and not net.layers and not net.input
        assert all(layer.type for layer in net.layer)


def check_blobs(blobs):
    for blob in blobs:
        assert blobproto_to_array(blob).size == math.prod(blob_shape(blob))


def check_caffemodel(path):
    net = read_caffemodel(path)
    with_blobs = [layer for layer in net.layer if layer.blobs]
    assert with_blobs
    for layer in with_blobs:
        check_blobs(layer.blobs)


def check_solverstate(path):
    state = read_solverstate(path)
    assert state.iter > 0
    check_blobs(state.history)


CHECKS = {".prototxt": check_prototxt, ".caffemodel": check_caffemodel, ".solverstate": check_solverstate}
FILES = sorted(str(p.relative_to(CONFORMANCE)) for p in CONFORMANCE.rglob("*") if p.suffix in CHECKS)


# With shared/ absent nothing is collected; the None placeholder makes one test that skips saying why.
@pytest.mark.parametrize("relative", FILES or [None])
def test_conformance_file_reads(relative):
    root = shared_path("conformance")
    assert relative is not None, f"{root} holds no .prototxt, .caffemodel or .solverstate file"
    path = root / relative
    CHECKS[path.suffix](path)
