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
    blob_shape,
    legacy_shape_matches,
    read_binaryproto,
    write_binaryproto,
)
from caffelite.io.prototxt import parse_text, read_net_text, read_solver_text, read_text, write_text

# pycaffe's caffe.io names (its blobproto_to_array also raises ValueError on a size mismatch, as pycaffe does).
from caffelite.io.pycaffe import (
    Transformer,
    array_to_blobproto,
    array_to_datum,
    arraylist_to_blobprotovector_str,
    blobproto_to_array,
    blobprotovector_str_to_arraylist,
    datum_to_array,
    load_image,
    oversample,
    resize_image,
)
from caffelite.io.upgrade import upgrade_net, upgrade_snapshot_prefix, upgrade_solver

__all__ = [
    "Transformer",
    "array_to_blobproto",
    "array_to_datum",
    "arraylist_to_blobprotovector_str",
    "blob_shape",
    "blobproto_to_array",
    "blobprotovector_str_to_arraylist",
    "datum_to_array",
    "legacy_shape_matches",
    "load_image",
    "oversample",
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
    "resize_image",
    "upgrade_net",
    "upgrade_snapshot_prefix",
    "upgrade_solver",
    "write_binary",
    "write_binaryproto",
    "write_text",
]
