"""caffelite.data.datum: pycaffe's array_to_datum / datum_to_array, and encoded datums."""

import io

import numpy as np
from PIL import Image
import pytest

from caffelite.data.datum import array_to_datum, datum_to_array
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
