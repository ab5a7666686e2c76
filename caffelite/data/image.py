"""Image files as Caffe reads them with OpenCV: uint8 (C, H, W) arrays in BGR order, resized with INTER_LINEAR.

Decoding goes through Pillow (caffelite.data.datum.decode_image); `resize_linear` reproduces the sampling of
OpenCV's bilinear resize (pixel centres aligned, edges clamped, no anti-aliasing), which is what Caffe's
ReadImageToCVMat and WindowData use.
"""

import numpy as np

from caffelite.data.datum import decode_image
from caffelite.errors import CaffeliteError, FileFormatError
from caffelite.io.files import read_data_file

# OpenCV interpolates uint8 images in fixed point: weights are multiples of 1/2048 (INTER_RESIZE_COEF_BITS = 11).
_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


def read_image(path, height=0, width=0, is_color=True, where=""):
    """The image file at `path` as (3, H, W) BGR (or (1, H, W) grey when not `is_color`), like cv::imread;
    resized to height x width when both are positive (Caffe's ReadImageToCVMat)."""
    data = read_data_file(path, "image file", where)
    return decode_file_bytes(data, path, height, width, is_color, where)


def decode_file_bytes(data, path, height=0, width=0, is_color=True, where=""):
    """`read_image` for bytes already read from `path` (the name only serves error messages)."""
    prefix = f"{where}: " if where else ""
    try:
        image = decode_image(data, force_color=is_color, force_gray=not is_color)
    except FileFormatError as error:
        raise FileFormatError(f"{prefix}cannot decode image file '{path}': {error}") from None
    if height > 0 and width > 0:
        image = resize_linear(image, height, width)
    return image


def resize_linear(image, height, width):
    """Resize a (C, H, W) uint8 image to (C, height, width) with OpenCV's INTER_LINEAR arithmetic."""
    image = np.asarray(image)
    channels, src_height, src_width = image.shape
    if (src_height, src_width) == (height, width):
        return image.copy()
    if height <= 0 or width <= 0 or src_height <= 0 or src_width <= 0:
        raise CaffeliteError(f"cannot resize a {src_height}x{src_width} image to {height}x{width}")
    rows0, rows1, row_weights = _taps(src_height, height)
    cols0, cols1, col_weights = _taps(src_width, width)
    pixels = image.astype(np.int64)
    # Horizontal pass, then vertical, each with integer weights summing to 2048; one rounding shift at the end.
    across = pixels[:, :, cols0] * col_weights[0] + pixels[:, :, cols1] * col_weights[1]
    both = across[:, rows0, :] * row_weights[0][:, None] + across[:, rows1, :] * row_weights[1][:, None]
    shift = 2 * _COEF_BITS
    return np.clip((both + (1 << (shift - 1))) >> shift, 0, 255).astype(np.uint8)


def _taps(src, dst):
    """For each output index: the two source indices and their fixed-point weights (OpenCV's coefficient rule)."""
    position = ((np.arange(dst) + 0.5) * (src / dst) - 0.5).astype(np.float32)
    first = np.floor(position).astype(np.int64)
    fraction = position - first
    below = first < 0
    fraction[below], first[below] = 0, 0
    beyond = first >= src - 1
    fraction[beyond], first[beyond] = 0, src - 1
    second = np.minimum(first + 1, src - 1)
    # cvRound of the float weights: round half to even, as np.rint does.
    weight_second = np.rint(fraction * _COEF_SCALE).astype(np.int64)
    weight_first = np.rint((1 - fraction) * _COEF_SCALE).astype(np.int64)
    return first, second, (weight_first, weight_second)
