"""Features of a trained net saved to databases, as Caffe's extract_features saves them.

The net (a TEST-phase prototxt whose data layer feeds it, plus trained weights) runs a number of mini-batches;
after each, every item n of each requested blob becomes one Datum: channels, height, width are the blob's legacy
4-D dims (a (N, D) blob gives channels D, height 1, width 1) and `float_data` holds the item's values in blob order;
no label, no `data`. One database per blob; keys are the item's running index, `%010d` (`0000000000`, ...).
"""

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caffelite.data import db
from caffelite.errors import CaffeliteError, ShapeError
from caffelite.net import Net
from caffelite.phase import TEST
from caffelite.proto import caffe_pb2

# The wire tag of one Datum.float_data value: field 6, 32-bit (the field is not packed, so each value has one).
_FLOAT_DATA_TAG = 6 << 3 | 5


@dataclass(frozen=True)
class FeatureExtraction:
    """What extract_features wrote: records per blob, and the database of each blob."""

    counts: dict  # blob name -> number of records
    db_paths: dict  # blob name -> Path


def extract_features(weights, model, blob_names, db_paths, num_mini_batches, backend=db.LMDB, progress=None):
    """Run `model` (TEST phase, with `weights`) for `num_mini_batches` batches and save each blob of `blob_names`
    into the new database of the same position in `db_paths`.

    `progress(blob_name, count)`, when given, is called each time a blob's count reaches a multiple of 1000 and,
    for every blob, at the end. The databases are built in temporary sibling directories and renamed into place
    once all batches are written; existing paths are never overwritten.
    """
    blob_names, db_paths = list(blob_names), [Path(p) for p in db_paths]
    _check_arguments(blob_names, db_paths, num_mini_batches, backend)
    net = Net(model, TEST, weights=weights)
    try:
        _check_blobs(net, blob_names, model)
        counts = _extract(net, blob_names, db_paths, num_mini_batches, backend, progress or (lambda name, n: None))
    finally:
        _close_layers(net)
    return FeatureExtraction(counts=counts, db_paths=dict(zip(blob_names, db_paths)))


def feature_datums(features):
    """One serialized Datum per item of a blob's data (num first), as bytes; see the module docstring."""
    features = np.asarray(features)
    channels, height, width, num = _legacy_dims(features.shape)
    header = caffe_pb2.Datum(channels=channels, height=height, width=width).SerializeToString()
    values = np.ascontiguousarray(features, dtype="<f4").reshape(num, -1)
    # Serializing floats one by one through protobuf is slow for wide features; the wire form of the unpacked
    # field is simply (tag, 4 little-endian bytes) per value, after the dims, so it is laid out with numpy.
    wire = np.empty(values.shape + (5,), dtype=np.uint8)
    wire[..., 0] = _FLOAT_DATA_TAG
    wire[..., 1:] = values.view(np.uint8).reshape(values.shape + (4,))
    return [header + wire[n].tobytes() for n in range(num)]


def _legacy_dims(shape):
    """(channels, height, width, num) of a blob shape, with Caffe's legacy accessors (missing axes are 1)."""
    if len(shape) > 4:
        raise ShapeError(f"a blob of shape {tuple(shape)} has more than 4 axes; extract_features saves each item "
                         f"as a Datum (channels, height, width)")
    num, channels, height, width = tuple(shape) + (1,) * (4 - len(shape))
    return channels, height, width, num


def _check_arguments(blob_names, db_paths, num_mini_batches, backend):
    if len(blob_names) != len(db_paths):
        raise CaffeliteError(f"the number of blob names ({len(blob_names)}) and dataset names ({len(db_paths)}) "
                             f"must be equal")
    if not blob_names or not all(blob_names):
        raise CaffeliteError("expected one or more feature blob names, comma separated")
    if num_mini_batches < 1:
        raise CaffeliteError(f"the number of mini-batches must be at least 1, got {num_mini_batches}")
    resolved = [p.resolve() for p in db_paths]
    if len(set(resolved)) != len(resolved):
        raise CaffeliteError("each feature blob needs its own dataset: a dataset name is repeated")
    for path in db_paths:
        db.require_writable_backend(backend, path)
        db.check_new_path(path)


def _check_blobs(net, blob_names, model):
    for name in blob_names:
        if name not in net.blobs:
            raise CaffeliteError(f"unknown feature blob name '{name}' in the network '{model}' "
                                 f"(blobs: {', '.join(net.blobs)})")


def _extract(net, blob_names, db_paths, num_mini_batches, backend, report):
    counts = dict.fromkeys(blob_names, 0)
    with contextlib.ExitStack() as stack:
        writers = []
        for path in db_paths:
            building = stack.enter_context(db.staged_build(path))
            writers.append(stack.enter_context(db.open_writer(building, backend, commit_every=db.COMMIT_EVERY)))
        for _ in range(num_mini_batches):
            net.forward_range()
            for name, writer in zip(blob_names, writers):
                for value in feature_datums(net.blobs[name].data):
                    writer.put(b"%010d" % counts[name], value)
                    counts[name] += 1
                    if counts[name] % db.COMMIT_EVERY == 0:
                        report(name, counts[name])
    for name in blob_names:
        report(name, counts[name])
    return counts


def _close_layers(net):
    """Stop data layers' prefetch threads and close their databases now rather than at garbage collection."""
    for layer in net.layers:
        close = getattr(layer, "close", None)
        if callable(close):
            close()
