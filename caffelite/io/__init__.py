"""Reading and writing Caffe's files: prototxt, .caffemodel, .solverstate, .binaryproto, with Caffe's upgrades."""

from caffelite.io.binary import (
    parse_binary,
    read_binary,
    read_caffemodel,
    read_net,
    read_solverstate,
    write_binary,
)
from caffelite.io.blob import (
    array_to_blobproto,
    blob_shape,
    blobproto_to_array,
    legacy_shape_matches,
    read_binaryproto,
    write_binaryproto,
)
from caffelite.io.prototxt import parse_text, read_net_text, read_solver_text, read_text, write_text
from caffelite.io.upgrade import upgrade_net, upgrade_snapshot_prefix, upgrade_solver

__all__ = [
    "array_to_blobproto",
    "blob_shape",
    "blobproto_to_array",
    "legacy_shape_matches",
    "parse_binary",
    "parse_text",
    "read_binary",
    "read_binaryproto",
    "read_caffemodel",
    "read_net",
    "read_net_text",
    "read_solver_text",
    "read_solverstate",
    "read_text",
    "upgrade_net",
    "upgrade_snapshot_prefix",
    "upgrade_solver",
    "write_binary",
    "write_binaryproto",
    "write_text",
]
