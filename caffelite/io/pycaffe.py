"""pycaffe's `caffe.io` helpers: proto <-> array conversions, image loading and resizing, 10-crop oversampling,
and the Transformer that turns (H, W, K) images into (K, H, W) net inputs.

pycaffe resizes with scikit-image and scipy; here both resamplers are re-created with numpy (see `resize_image`).
"""

import numpy as np
from PIL import Image

from caffelite.data import datum as _datum
from caffelite.errors import CaffeliteError, FileFormatError, ShapeError
from caffelite.io import blob as _blob
from caffelite.proto import caffe_pb2

# Their greyscale weights (ITU-R BT.709), which skimage's rgb2gray applies to float RGB.
_GREY_WEIGHTS = np.array([0.2125, 0.7154, 0.0721])


class ArrayShapeError(ShapeError, ValueError):
    """An array has the wrong shape for a pycaffe io call (a ValueError too, as pycaffe raises)."""


class BlobSizeError(FileFormatError, ValueError):
    """A BlobProto's values do not fill its shape (a ValueError too, as numpy's reshape raises in pycaffe)."""


# -- proto / datum / ndarray ---------------------------------------------------------------------
def blobproto_to_array(blob, return_diff=False):
    """The blob's data (or diff) shaped as its legacy 4-D num/channels/height/width when any is set, else `shape`."""
    try:
        return _blob.blobproto_to_array(blob, return_diff=return_diff)
    except FileFormatError as error:
        raise BlobSizeError(str(error)) from None


array_to_blobproto = _blob.array_to_blobproto


def arraylist_to_blobprotovector_str(arraylist):
    """A serialized BlobProtoVector holding one BlobProto per array."""
    vector = caffe_pb2.BlobProtoVector()
    vector.blobs.extend(array_to_blobproto(arr) for arr in arraylist)
    return vector.SerializeToString()


def blobprotovector_str_to_arraylist(serialized):
    """The arrays of a serialized BlobProtoVector, in order."""
    vector = caffe_pb2.BlobProtoVector()
    vector.ParseFromString(serialized)
    return [blobproto_to_array(blob) for blob in vector.blobs]


def array_to_datum(arr, label=None):
    """A Datum of a (C, H, W) array: uint8 as `data` bytes, any other dtype as `float_data`; label only if given."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ArrayShapeError(f"array_to_datum expects a (channels, height, width) array, got shape {arr.shape}")
    return _datum.array_to_datum(arr, label=label)


datum_to_array = _datum.datum_to_array


# -- images --------------------------------------------------------------------------------------
def load_image(filename, color=True):
    """An image file as float32 in [0, 1], shaped (H, W, 3) RGB when `color`, else (H, W, 1) intensity.

    Grey files are tiled to 3 channels when `color`; an alpha channel is dropped; colour files read with
    color=False are converted to grey with skimage's rgb2gray weights.
    """
    try:
        with Image.open(filename) as image:
            image.load()
            pixels = _as_float_pixels(image)
    except OSError as error:
        raise FileFormatError(f"{filename}: cannot read the image: {error}") from None
    if pixels.ndim == 3:
        pixels = pixels[:, :, :3]
        if not color:
            pixels = pixels @ _GREY_WEIGHTS
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
        if color:
            pixels = np.tile(pixels, (1, 1, 3))
    return pixels.astype(np.float32)


def _as_float_pixels(image):
    """Pillow image -> float64 array in [0, 1]: (H, W) for grey, (H, W, 3 or 4) for colour."""
    if image.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(image, dtype=np.uint16) / 65535.0
    if image.mode in ("1", "L", "LA"):
        image = image.convert("L")
    elif image.mode not in ("RGB", "RGBA"):
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
    return np.asarray(image, dtype=np.uint8) / 255.0


def resize_image(im, new_dims, interp_order=1):
    """Resize an (H, W, K) image to new_dims = (height, width), nearest (order 0) or bilinear (order 1).

    For K in {1, 3} this is pycaffe's skimage path: the image is normalized to [0, 1], resampled as
    skimage.transform.resize(mode='constant', anti_aliasing=False) does (pixel centres aligned, samples beyond an
    edge read 0, so border pixels lean towards the minimum), then mapped back. Other K follow scipy.ndimage.zoom
    (corner pixels aligned). A constant image stays that constant. Returns float32.
    """
    if interp_order not in (0, 1):
        raise CaffeliteError(f"resize_image supports interp_order 0 (nearest) or 1 (bilinear), got {interp_order}")
    im = np.asarray(im)
    if im.ndim != 3:
        raise ArrayShapeError(f"resize_image expects an (H, W, K) image, got shape {im.shape}")
    height, width = (int(dim) for dim in new_dims)
    if im.shape[-1] not in (1, 3):
        return _resample(im.astype(np.float64), height, width, interp_order, _corner_coords).astype(np.float32)
    low, high = float(im.min()), float(im.max())
    if high <= low:
        return np.full((height, width, im.shape[-1]), low, dtype=np.float32)
    normalized = (im.astype(np.float64) - low) / (high - low)
    resized = _resample(normalized, height, width, interp_order, _centre_coords)
    return (resized * (high - low) + low).astype(np.float32)


def _centre_coords(size_in, size_out):
    """Source coordinates of the output pixels when pixel centres line up (skimage's resize)."""
    return (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5


def _corner_coords(size_in, size_out):
    """Source coordinates of the output pixels when the first and last pixels line up (scipy's zoom)."""
    if size_out == 1:
        return np.zeros(1)
    return np.arange(size_out) * ((size_in - 1) / (size_out - 1))


def _interpolation_matrix(size_in, size_out, order, coords_of):
    """(size_out, size_in) weights of 1-D resampling; taps outside the input weigh nothing (a zero border)."""
    coords = coords_of(size_in, size_out)
    weights = np.zeros((size_out, size_in + 2))  # columns 0 and -1 are the out-of-range taps, dropped below
    rows = np.arange(size_out)
    if order == 0:
        taps = np.clip(np.floor(coords + 0.5).astype(int), -1, size_in)
        weights[rows, taps + 1] = 1.0
    else:
        left = np.floor(coords).astype(int)
        frac = coords - left
        np.add.at(weights, (rows, np.clip(left, -1, size_in) + 1), 1.0 - frac)
        np.add.at(weights, (rows, np.clip(left + 1, -1, size_in) + 1), frac)
    return weights[:, 1:-1]


def _resample(im, height, width, order, coords_of):
    rows = _interpolation_matrix(im.shape[0], height, order, coords_of)
    cols = _interpolation_matrix(im.shape[1], width, order, coords_of)
    return np.einsum("oh,hwk,pw->opk", rows, im, cols)


def oversample(images, crop_dims):
    """Ten crops per (H, W, K) image: the four corners (top-left, top-right, bottom-left, bottom-right), the centre,
    then the same five mirrored left-right. Returns (10 * N, crop_h, crop_w, K) float32.
    """
    images = [np.asarray(im) for im in images]
    crop_h, crop_w = (int(dim) for dim in crop_dims)
    height, width, channels = images[0].shape
    if crop_h > height or crop_w > width:
        raise ArrayShapeError(f"crop {crop_h}x{crop_w} is larger than the {height}x{width} images")
    corners = [(top, left) for top in (0, height - crop_h) for left in (0, width - crop_w)]
    # pycaffe truncates the centre window's float corner to an int.
    centre = (int(height / 2.0 - crop_h / 2.0), int(width / 2.0 - crop_w / 2.0))
    windows = corners + [centre]
    crops = np.empty((10 * len(images), crop_h, crop_w, channels), dtype=np.float32)
    for index, im in enumerate(images):
        five = np.stack([im[top : top + crop_h, left : left + crop_w] for top, left in windows])
        crops[10 * index : 10 * index + 5] = five
        crops[10 * index + 5 : 10 * index + 10] = five[:, :, ::-1]
    return crops


# -- preprocessing -------------------------------------------------------------------------------
class Transformer:
    """Turns (H', W', K) images into net inputs, per input blob, given {input name: blob shape (N, K, H, W)}.

    preprocess: float32 -> resize to (H, W) -> transpose -> channel swap -> * raw_scale -> - mean -> * input_scale;
    deprocess undoes those steps in reverse (without the resize).
    """

    def __init__(self, inputs):
        self.inputs = {name: tuple(int(dim) for dim in shape) for name, shape in inputs.items()}
        self.transpose = {}
        self.channel_swap = {}
        self.raw_scale = {}
        self.mean = {}
        self.input_scale = {}

    def _check_input(self, in_):
        if in_ not in self.inputs:
            raise CaffeliteError(f"'{in_}' is not one of the transformer's inputs: {', '.join(self.inputs)}")

    def preprocess(self, in_, data):
        """An (H', W', K) array -> a (K, H, W) float32 array ready for blob `in_` (the caller's array is untouched)."""
        self._check_input(in_)
        out = np.array(data, dtype=np.float32)  # a copy: the in-place steps below must not reach the caller's array
        spatial = self.inputs[in_][2:]
        if out.shape[:2] != spatial:
            out = resize_image(out, spatial)
        if in_ in self.transpose:
            out = out.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            out = out[list(self.channel_swap[in_])]
        if in_ in self.raw_scale:
            out *= self.raw_scale[in_]
        if in_ in self.mean:
            out -= self.mean[in_]
        if in_ in self.input_scale:
            out *= self.input_scale[in_]
        return out

    def deprocess(self, in_, data):
        """Undo preprocess (all but the resize): a (K, H, W) (or (1, K, H, W)) array -> the (H, W, K) image."""
        self._check_input(in_)
        out = np.array(data).squeeze()
        if in_ in self.input_scale:
            out /= self.input_scale[in_]
        if in_ in self.mean:
            out += self.mean[in_]
        if in_ in self.raw_scale:
            out /= self.raw_scale[in_]
        if in_ in self.channel_swap:
            out = out[np.argsort(self.channel_swap[in_])]
        if in_ in self.transpose:
            out = out.transpose(np.argsort(self.transpose[in_]))
        return out

    def set_transpose(self, in_, order):
        """Axis order taking the image to the blob's layout, e.g. (2, 0, 1) for (H, W, K) -> (K, H, W)."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ArrayShapeError(
                f"transpose order {tuple(order)} for '{in_}' must have {len(self.inputs[in_]) - 1} axes"
            )
        self.transpose[in_] = order

    def set_channel_swap(self, in_, order):
        """Channel order applied after the transpose, e.g. (2, 1, 0) for RGB -> BGR."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise ArrayShapeError(
                f"channel swap {tuple(order)} for '{in_}' must list {self.inputs[in_][1]} channels"
            )
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_, scale):
        """Factor applied before the mean subtraction (255 for models trained on [0, 255] pixels)."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """The mean to subtract: one value per channel (K,), or an image (K, H, W) / (H, W).

        A mean image of another spatial size is resized to the input's, as pycaffe does.
        """
        self._check_input(in_)
        mean = np.asarray(mean)
        channels, spatial = self.inputs[in_][1], self.inputs[in_][2:]
        if mean.ndim == 1:
            if mean.shape[0] != channels:
                raise ArrayShapeError(f"mean has {mean.shape[0]} channels, input '{in_}' has {channels}")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            if mean.ndim == 2:
                mean = mean[np.newaxis]
            if mean.ndim != 3:
                raise ArrayShapeError(f"mean must be (K,), (H, W) or (K, H, W), got shape {mean.shape}")
            if mean.shape[0] not in (1, channels):
                raise ArrayShapeError(f"mean has {mean.shape[0]} channels, input '{in_}' has {channels}")
            if mean.shape[1:] != spatial:
                mean = resize_image(mean.transpose(1, 2, 0), spatial).transpose(2, 0, 1)
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        """Factor applied last, after the mean subtraction."""
        self._check_input(in_)
        self.input_scale[in_] = scale
