"""MNIST's IDX files -> an LMDB of Datum records, as Caffe's examples/mnist/convert_mnist_data makes it.

One Datum per image (channels 1, height rows, width cols, `data` = the image's raw bytes, `label`), under the keys
00000000, 00000001, ... in file order. The IDX files may be gzipped (as downloaded) or raw.
"""

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caffelite.data import db
from caffelite.errors import FileFormatError
from caffelite.io.files import read_data_file
from caffelite.proto import caffe_pb2

IMAGE_MAGIC = 2051  # IDX: unsigned bytes, 3 dimensions (count, rows, cols)
LABEL_MAGIC = 2049  # IDX: unsigned bytes, 1 dimension (count)
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class MnistConversion:
    """What convert_mnist wrote."""

    count: int
    rows: int
    cols: int
    db_path: Path


def read_idx_images(path):
    """The images of an IDX image file (gzipped or raw) as a (count, rows, cols) uint8 array."""
    return _read_idx(path, IMAGE_MAGIC, 3, "image")


def read_idx_labels(path):
    """The labels of an IDX label file (gzipped or raw) as a (count,) uint8 array."""
    return _read_idx(path, LABEL_MAGIC, 1, "label")


def convert_mnist(image_file, label_file, db_path, backend="lmdb", progress=None):
    """Convert an MNIST image file and label file into a new database at `db_path`; returns an MnistConversion.

    `progress(done, total)`, when given, is called with 0 before the first record, then after every committed
    batch of 1000 records, and with (total, total) at the end. The database is built in a temporary sibling
    directory and renamed into place when complete, so an interrupted conversion leaves nothing at `db_path`;
    an existing `db_path` is never overwritten.
    """
    db_path = Path(db_path)
    db.require_writable_backend(backend, db_path)
    db.check_new_path(db_path)
    images = read_idx_images(image_file)
    labels = read_idx_labels(label_file)
    if len(images) != len(labels):
        raise FileFormatError(
            f"'{image_file}' holds {len(images)} images but '{label_file}' holds {len(labels)} labels"
        )
    count, rows, cols = images.shape
    with db.staged_build(db_path) as built:
        _write_records(images, labels, built, backend, progress)
    return MnistConversion(count=count, rows=rows, cols=cols, db_path=db_path)


def _write_records(images, labels, path, backend, progress):
    total = len(images)
    report = progress or (lambda done, total: None)
    report(0, total)
    datum = caffe_pb2.Datum(channels=1, height=images.shape[1], width=images.shape[2])
    pixels = images.reshape(total, -1)
    with db.open_writer(path, backend, commit_every=db.COMMIT_EVERY) as writer:
        for index in range(total):
            datum.data = pixels[index].tobytes()
            datum.label = int(labels[index])
            writer.put(b"%08d" % index, datum.SerializeToString())
            if (index + 1) % db.COMMIT_EVERY == 0:
                report(index + 1, total)
    if total % db.COMMIT_EVERY:
        report(total, total)


def _read_idx(path, magic, num_dims, kind):
    data = _read_maybe_gzipped(path)
    header_size = 4 * (1 + num_dims)
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found is not None and found != magic:
        raise FileFormatError(f"'{path}' is not an MNIST {kind} file: magic number {found}, expected {magic}")
    if len(data) < header_size:
        raise FileFormatError(f"'{path}' is too short ({len(data)} bytes) to be an MNIST {kind} file")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=num_dims, offset=4))
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) - header_size < size:
        raise FileFormatError(
            f"'{path}' is truncated: its header announces {' x '.join(map(str, dims))} = {size} bytes of "
            f"{kind} data, but only {len(data) - header_size} follow"
        )
    return np.frombuffer(data, dtype=np.uint8, count=size, offset=header_size).reshape(dims)


def _read_maybe_gzipped(path):
    data = read_data_file(path, "MNIST file")
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise FileFormatError(f"'{path}' is a damaged gzip file: {error}") from None
