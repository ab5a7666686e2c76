"""caffelite.data.image_mean: the mean image of a Datum database, saved as Caffe's legacy 4-D BlobProto."""

import io
import logging
import struct

import numpy as np
import pytest
from PIL import Image

from caffelite.data import db, image_mean
from caffelite.data.datum import array_to_datum
from caffelite.data.image_mean import channel_means, compute_image_mean, mean_blobproto, write_mean
from caffelite.errors import CaffeliteError, FileFormatError
from caffelite.io.blob import read_binaryproto
from caffelite.proto import caffe_pb2


def write_items(path, items, backend="lmdb"):
    with db.open_writer(path, backend) as writer:
        for i, item in enumerate(items):
            writer.put(b"%08d" % i, array_to_datum(item, label=i).SerializeToString())
    return path


def caffe_mean(items):
    """Caffe's arithmetic, value by value: a float32 running sum in record order, then one float32 division."""
    total = np.zeros(items[0].size, dtype=np.float32)
    for item in items:
        for i, value in enumerate(np.asarray(item).ravel()):
            total[i] = np.float32(total[i] + np.float32(value))
    return (total / np.float32(len(items))).reshape(np.shape(items[0]))


@pytest.mark.parametrize("backend", ["lmdb", "leveldb"])
def test_mean_of_uint8_records_matches_numpy_and_caffes_float32_sums(tmp_path, backend):
    items = np.random.default_rng(0).integers(0, 256, size=(7, 3, 4, 5), dtype=np.uint8)
    result = compute_image_mean(write_items(tmp_path / "x_db", items, backend), backend)
    assert result.count == 7 and result.mean.dtype == np.float32 and result.mean.shape == (3, 4, 5)
    np.testing.assert_allclose(result.mean, items.mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(result.mean, caffe_mean(items))
    np.testing.assert_allclose(result.channel_means, items.mean(axis=(0, 2, 3)), rtol=1e-6)


def test_float_records_and_mixed_records_are_summed_alike(tmp_path):
    rng = np.random.default_rng(1)
    items = [rng.standard_normal((2, 3, 3)).astype(np.float32) for _ in range(3)]
    items.append(rng.integers(0, 256, size=(2, 3, 3), dtype=np.uint8))
    result = compute_image_mean(write_items(tmp_path / "x_lmdb", items))
    np.testing.assert_array_equal(result.mean, caffe_mean(items))


def test_the_mean_file_is_a_legacy_4d_blobproto_byte_for_byte(tmp_path):
    items = [np.array([[[1, 2]]], np.uint8), np.array([[[2, 4]]], np.uint8)]
    result = compute_image_mean(write_items(tmp_path / "x_lmdb", items))
    write_mean(result.mean, tmp_path / "mean.binaryproto")
    expected = (
        bytes([0x08, 1])  # num 1
        + bytes([0x10, 1])  # channels 1
        + bytes([0x18, 1])  # height 1
        + bytes([0x20, 2])  # width 2
        + bytes([0x2A, 8])  # data: packed floats, 8 bytes
        + struct.pack("<ff", 1.5, 3.0)
    )
    assert (tmp_path / "mean.binaryproto").read_bytes() == expected
    assert result.to_blobproto().SerializeToString() == expected


def test_the_mean_file_reads_back_as_num_channels_height_width(tmp_path):
    items = np.random.default_rng(2).integers(0, 256, size=(4, 3, 2, 5), dtype=np.uint8)
    result = compute_image_mean(write_items(tmp_path / "x_lmdb", items))
    write_mean(result.mean, tmp_path / "mean.binaryproto")
    blob = caffe_pb2.BlobProto.FromString((tmp_path / "mean.binaryproto").read_bytes())
    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 3, 2, 5) and not blob.HasField("shape")
    np.testing.assert_array_equal(read_binaryproto(tmp_path / "mean.binaryproto"), result.mean[np.newaxis])
    with pytest.raises(CaffeliteError, match=r"\(channels, height, width\), got shape \(2, 2\)"):
        mean_blobproto(np.zeros((2, 2)))


def test_encoded_records_are_decoded_as_stored(tmp_path, caplog):
    rng = np.random.default_rng(3)
    pixels = [rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8) for _ in range(3)]
    with db.open_writer(tmp_path / "x_lmdb") as writer:
        for i, rgb in enumerate(pixels):
            buffer = io.BytesIO()
            Image.fromarray(rgb).save(buffer, format="PNG")
            writer.put(b"%08d" % i, caffe_pb2.Datum(data=buffer.getvalue(), label=i, encoded=True).SerializeToString())
    with caplog.at_level(logging.INFO, logger="caffelite"):
        result = compute_image_mean(tmp_path / "x_lmdb")
    assert "Decoding Datum" in caplog.text
    bgr = [rgb[:, :, ::-1].transpose(2, 0, 1) for rgb in pixels]
    np.testing.assert_array_equal(result.mean, caffe_mean(bgr))


def test_channel_means_sum_each_plane_in_order_in_float32():
    mean = np.random.default_rng(4).uniform(0, 255, size=(3, 7, 9)).astype(np.float32)
    expected = []
    for plane in mean:
        total = np.float32(0)
        for value in plane.ravel():
            total = np.float32(total + value)
        expected.append(total / np.float32(plane.size))
    np.testing.assert_array_equal(channel_means(mean), np.array(expected, np.float32))


def test_progress_is_reported_every_report_every_records_and_at_the_end(tmp_path, monkeypatch):
    monkeypatch.setattr(image_mean, "REPORT_EVERY", 3)
    items = np.zeros((7, 1, 1, 1), np.uint8)
    calls = []
    compute_image_mean(write_items(tmp_path / "x_lmdb", items), progress=calls.append)
    assert calls == [0, 3, 6, 7]
    calls.clear()
    compute_image_mean(write_items(tmp_path / "y_lmdb", items[:6]), progress=calls.append)
    assert calls == [0, 3, 6]


def test_records_of_another_size_and_empty_databases_are_errors(tmp_path):
    items = [np.zeros((1, 2, 2), np.uint8), np.zeros((1, 2, 3), np.uint8)]
    with pytest.raises(FileFormatError, match=r"record '00000001' of .*x_lmdb' holds 6 values, but the first "
                                              r"record holds 4"):
        compute_image_mean(write_items(tmp_path / "x_lmdb", items))
    with db.open_writer(tmp_path / "empty_lmdb"):
        pass
    with pytest.raises(FileFormatError, match="is empty"):
        compute_image_mean(tmp_path / "empty_lmdb")
    with db.open_writer(tmp_path / "junk_lmdb") as writer:
        writer.put(b"k", b"\xff\xff\xff")
    with pytest.raises(FileFormatError, match=r"record 'k' of .*junk_lmdb' is not a Datum"):
        compute_image_mean(tmp_path / "junk_lmdb")
