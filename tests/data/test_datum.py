"""caffelite.data.datum: array_to_datum / datum_to_array, encoded datums, and Caffe's bytes for image datums."""

import io

import lmdb
import numpy as np
from PIL import Image
import pytest

from caffelite.data.datum import array_to_datum, datum_to_array
from caffelite.data.imageset import convert_imageset, read_image_to_datum
from caffelite.errors import CaffeliteError, FileFormatError
from caffelite.proto import caffe_pb2


def test_uint8_round_trip_keeps_bytes_shape_and_label():
    arr = np.random.default_rng(0).integers(0, 256, size=(3, 4, 5), dtype=np.uint8)
    datum = array_to_datum(arr, label=7)
    assert (datum.channels, datum.height, datum.width, datum.label) == (3, 4, 5, 7)
    assert datum.data == arr.tobytes() and len(datum.float_data) == 0
    parsed = caffe_pb2.Datum.FromString(datum.SerializeToString())
    back = datum_to_array(parsed)
    assert back.dtype == np.uint8 and back.shape == (3, 4, 5)
    np.testing.assert_array_equal(back, arr)
    back[0, 0, 0] ^= 1  # a writable copy, as pycaffe's


def test_float_round_trip_uses_float_data():
    arr = np.random.default_rng(1).standard_normal((2, 3, 3)).astype(np.float32)
    datum = array_to_datum(arr)
    assert not datum.data and len(datum.float_data) == arr.size and not datum.HasField("label")
    back = datum_to_array(caffe_pb2.Datum.FromString(datum.SerializeToString()))
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, arr)
    np.testing.assert_array_equal(datum_to_array(array_to_datum(arr.astype(np.float64))), arr)


def test_serialized_form_is_caffes_wire_format():
    datum = array_to_datum(np.array([[[1, 2], [3, 4]]], dtype=np.uint8), label=3)
    # channels=1, height=2, width=2, data (4 bytes), label=3: tags 0x08 0x10 0x18 0x22 0x28, in field order.
    assert datum.SerializeToString() == bytes([0x08, 1, 0x10, 2, 0x18, 2, 0x22, 4, 1, 2, 3, 4, 0x28, 3])


def test_array_to_datum_needs_three_axes():
    with pytest.raises(CaffeliteError, match=r"got shape \(4, 5\)"):
        array_to_datum(np.zeros((4, 5), np.uint8))


def test_inconsistent_datum_is_a_file_format_error():
    datum = caffe_pb2.Datum(channels=1, height=2, width=2, data=b"abc")
    with pytest.raises(FileFormatError, match=r"holds 3 bytes of data, expected 4"):
        datum_to_array(datum)
    datum = caffe_pb2.Datum(channels=1, height=2, width=2)
    datum.float_data.extend([1.0])
    with pytest.raises(FileFormatError, match=r"holds 1 float_data values, expected 4"):
        datum_to_array(datum)


def test_an_encoded_datum_with_corrupt_bytes_is_a_clear_error():
    datum = caffe_pb2.Datum(encoded=True, data=b"\x89PNG....")
    with pytest.raises(FileFormatError, match="cannot decode the encoded image"):
        datum_to_array(datum)


def test_encoded_datum_decodes_to_bgr_with_pillow():
    rgb = np.random.default_rng(2).integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    datum = caffe_pb2.Datum(encoded=True, data=buffer.getvalue(), label=1)
    bgr = datum_to_array(datum)
    np.testing.assert_array_equal(bgr, rgb[:, :, ::-1].transpose(2, 0, 1))
    assert datum_to_array(datum, force_gray=True).shape == (1, 4, 5)
    with pytest.raises(CaffeliteError, match="both force_color and force_gray"):
        datum_to_array(datum, force_color=True, force_gray=True)


def _known_image(path):
    """A 2 x 3 RGB PNG whose pixel (r, c) is (R, G, B) = (3r + c, 100 + 3r + c, 200 + 3r + c)."""
    ramp = np.arange(6, dtype=np.uint8).reshape(2, 3)
    Image.fromarray(np.stack([ramp, ramp + 100, ramp + 200], axis=-1)).save(path, format="PNG")
    return path


def _datum_values_written_by_convert_imageset(tmp_path, image, label, **options):
    (tmp_path / "list.txt").write_text(f"{image.name} {label}\n")
    convert_imageset(f"{image.parent}/", tmp_path / "list.txt", tmp_path / "out_lmdb", **options)
    env = lmdb.open(str(tmp_path / "out_lmdb"), readonly=True, lock=False)
    with env.begin() as txn:
        records = list(txn.cursor())
    env.close()
    assert [key for key, _ in records] == [b"00000000_" + image.name.encode()]
    return records[0][1]


def test_an_image_datum_is_byte_for_byte_what_caffe_writes(tmp_path):
    image = _known_image(tmp_path / "known.png")
    expected = (
        bytes([0x08, 3])  # field 1 channels, varint 3
        + bytes([0x10, 2])  # field 2 height, varint 2
        + bytes([0x18, 3])  # field 3 width, varint 3
        + bytes([0x22, 18])  # field 4 data, length-delimited, 18 bytes: planes B, G, R, each row by row
        + bytes([200, 201, 202, 203, 204, 205])
        + bytes([100, 101, 102, 103, 104, 105])
        + bytes([0, 1, 2, 3, 4, 5])
        + bytes([0x28, 0xAC, 0x02])  # field 5 label, varint 300 = 0b10_0101100 -> 0xAC 0x02
        + bytes([0x38, 0])  # field 7 encoded: false, written because Caffe sets it explicitly
    )
    assert read_image_to_datum(image, 300).SerializeToString() == expected
    assert _datum_values_written_by_convert_imageset(tmp_path, image, 300) == expected


def test_an_encoded_image_datum_is_byte_for_byte_what_caffe_writes(tmp_path):
    image = tmp_path / "noise.png"
    noise = np.random.default_rng(3).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    Image.fromarray(noise).save(image, format="PNG")
    file_bytes = image.read_bytes()
    size = len(file_bytes)
    assert 128 <= size < 16384  # a two-byte varint length: low 7 bits with the continuation bit, then the rest
    expected = (
        bytes([0x22, 0x80 | (size & 0x7F), size >> 7])  # field 4 data, length-delimited: the file's own bytes
        + file_bytes
        + bytes([0x28, 0])  # field 5 label 0, written because Caffe sets it explicitly
        + bytes([0x38, 1])  # field 7 encoded: true; no channels, height, width
    )
    assert read_image_to_datum(image, 0, encoding="png").SerializeToString() == expected
    assert _datum_values_written_by_convert_imageset(tmp_path, image, 0, encoded=True) == expected
