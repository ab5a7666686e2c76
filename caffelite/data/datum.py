"""Datum <-> ndarray, under pycaffe's caffe.io names.

A Datum holds one (C, H, W) item: uint8 pixels in `data` (channels in BGR order for colour images), or floats in
`float_data`, or, when `encoded` is set, the bytes of a compressed image file in `data`.
"""

import io

import numpy as np
from PIL import Image

from caffelite.errors import CaffeliteError, FileFormatError
from caffelite.proto import caffe_pb2


def array_to_datum(arr, label=None):
    """A Datum holding the (C, H, W) array: uint8 arrays as `data` bytes, anything else as `float_data`."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise CaffeliteError(f"array_to_datum expects a (channels, height, width) array, got shape {arr.shape}")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == np.uint8:
        datum.data = np.ascontiguousarray(arr).tobytes()
    else:
        datum.float_data.extend(arr.astype(np.float32).ravel().tolist())
    if label is not None:
        datum.label = int(label)
    return datum


def datum_to_array(datum, force_color=False, force_gray=False):
    """The Datum's item as a (C, H, W) array: uint8 for `data`, float32 for `float_data`.

    Encoded datums are decoded with Pillow (BGR channel order, as OpenCV gives Caffe);
    `force_color` / `force_gray` ask for 3 / 1 channels and only matter for encoded datums.
    """
    if datum.encoded:
        return decode_image(datum.data, force_color=force_color, force_gray=force_gray)
    shape = (datum.channels, datum.height, datum.width)
    if min(shape) < 0:
        raise FileFormatError(f"datum has a negative dimension in its shape {shape}")
    size = shape[0] * shape[1] * shape[2]
    if len(datum.data):
        if len(datum.data) != size:
            raise FileFormatError(f"datum of shape {shape} holds {len(datum.data)} bytes of data, expected {size}")
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape).copy()
    if len(datum.float_data) != size:
        raise FileFormatError(
            f"datum of shape {shape} holds {len(datum.float_data)} float_data values, expected {size}"
        )
    return np.array(datum.float_data, dtype=np.float32).reshape(shape)


def decode_image(data, force_color=False, force_gray=False):
    """Compressed image bytes (JPEG, PNG, ...) -> (C, H, W) uint8 in BGR order, or (1, H, W) for grey images."""
    if force_color and force_gray:
        raise CaffeliteError("cannot set both force_color and force_gray")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as error:  # Pillow raises several unrelated types for bad bytes
        raise FileFormatError(f"cannot decode the encoded image in a datum: {error}") from None
    if force_gray:
        image = image.convert("L")
    elif force_color or image.mode not in ("L", "RGB", "RGBA"):
        # Like OpenCV's unchanged read, keep an alpha channel unless colour is forced.
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha and not force_color else "RGB")
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:
        return pixels[np.newaxis].copy()
    channels = pixels.transpose(2, 0, 1)
    # RGB(A) -> BGR(A): Caffe's colour data is in OpenCV's channel order.
    order = [2, 1, 0, 3][: channels.shape[0]]
    return np.ascontiguousarray(channels[order])
