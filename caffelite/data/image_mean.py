"""The mean image of a database of Datum records, as Caffe's compute_image_mean computes and saves it.

The mean is written as a legacy 4-D BlobProto: num 1, channels, height, width, then the float `data` (C, H, W)
(the mean_file a TransformationParameter reads). The arithmetic is Caffe's, in float32: every record is added in
key order to a float32 sum, which is divided by the record count at the end, so the saved floats match Caffe's
bit for bit. Encoded records are decoded as stored (cv::imdecode's unchanged mode: grey stays grey).
"""

import logging
from dataclasses import dataclass

import numpy as np

from caffelite.data import db
from caffelite.data.datum import datum_to_array
from caffelite.errors import CaffeliteError, FileFormatError
from caffelite.io.blob import array_to_blobproto
from caffelite.io.files import atomic_write
from caffelite.proto import caffe_pb2

log = logging.getLogger("caffelite")

# Caffe reports progress every 10000 records here.
REPORT_EVERY = 10000


@dataclass(frozen=True)
class ImageMean:
    """What compute_image_mean found: the (C, H, W) float32 mean, the per-channel means, the record count."""

    mean: np.ndarray
    channel_means: np.ndarray
    count: int

    def to_blobproto(self):
        """The mean as Caffe saves it: a BlobProto with num 1, channels, height, width and float data."""
        return mean_blobproto(self.mean)


def compute_image_mean(source, backend=db.LMDB, progress=None):
    """The mean of every record of the database at `source` (all of them must hold the same number of values).

    `progress(done)`, when given, is called with 0 once the first record has fixed the shape, then every 10000
    records, and with the final count at the end (unless just reported).
    """
    report = progress or (lambda done: None)
    with db.open_db(source, backend) as database:
        records = database.items()
        first = next(records, None)
        if first is None:
            raise FileFormatError(f"database '{source}' is empty")
        shape, total = _first_record(source, *first)
        count = 0
        report(0)
        for key, value in _chain(first, records):
            np.add(total, _values(source, key, value, total.size), out=total)
            count += 1
            if count % REPORT_EVERY == 0:
                report(count)
    if count % REPORT_EVERY:
        report(count)
    mean = (total / np.float32(count)).reshape(shape)
    return ImageMean(mean=mean, channel_means=channel_means(mean), count=count)


def channel_means(mean):
    """Each channel's average over its pixels, summed in order in float32 as Caffe's log line computes it."""
    planes = mean.reshape(mean.shape[0], -1)
    sums = np.cumsum(planes, axis=1, dtype=np.float32)[:, -1]
    return sums / np.float32(planes.shape[1])


def mean_blobproto(mean):
    """A (C, H, W) mean as a legacy 4-D BlobProto (num 1, channels, height, width, float data)."""
    mean = np.asarray(mean)
    if mean.ndim != 3:
        raise CaffeliteError(f"a mean image is (channels, height, width), got shape {mean.shape}")
    blob = array_to_blobproto(mean)
    blob.ClearField("shape")
    blob.num = 1
    blob.channels, blob.height, blob.width = mean.shape
    return blob


def write_mean(mean, path):
    """Save a (C, H, W) mean as Caffe's binaryproto mean file, atomically."""
    atomic_write(path, mean_blobproto(mean).SerializeToString())


def _first_record(source, key, value):
    """The item shape (from the first record, decoded if encoded) and a float32 zero sum of its size."""
    datum = _parse(source, key, value)
    if datum.encoded:
        log.info("Decoding Datum")
        shape = _decoded(source, key, datum).shape
    else:
        shape = (datum.channels, datum.height, datum.width)
    return shape, np.zeros(int(np.prod(shape)), dtype=np.float32)


def _values(source, key, value, size):
    """A record's values, uint8 pixels or float32 float_data, checked against the first record's size."""
    datum = _parse(source, key, value)
    if datum.encoded:
        values = _decoded(source, key, datum).ravel()
    elif len(datum.data):
        values = np.frombuffer(datum.data, dtype=np.uint8)
    else:
        values = np.array(datum.float_data, dtype=np.float32)
    if values.size != size:
        raise FileFormatError(f"record '{_name(key)}' of '{source}' holds {values.size} values, but the first "
                              f"record holds {size}")
    return values


def _parse(source, key, value):
    datum = caffe_pb2.Datum()
    try:
        datum.ParseFromString(value)
    except Exception as error:  # protobuf's DecodeError
        raise FileFormatError(f"record '{_name(key)}' of '{source}' is not a Datum ({error})") from None
    return datum


def _decoded(source, key, datum):
    try:
        return datum_to_array(datum)
    except FileFormatError as error:
        raise FileFormatError(f"record '{_name(key)}' of '{source}' is malformed: {error}") from None


def _chain(first, rest):
    yield first
    yield from rest


def _name(key):
    return key.decode(errors="replace") if isinstance(key, bytes) else key
