"""Caffe's DataTransformer, applied to a whole batch at once.

Per item, Caffe computes  out = (x - mean) * scale  where the mean is a mean_file image (taken at the same source
pixel as x, so a crop takes the mean at the crop's offset) or one mean_value per channel; the item is cropped to
crop_size (a random window in TRAIN, the centre window in TEST) and, when `mirror` is set, flipped left-right with
probability 1/2. Note that Caffe draws the flip in every phase: `mirror: true` in a TEST-phase layer mirrors too.
"""

from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from caffelite.errors import CaffeliteError, FileFormatError
from caffelite.io.blob import read_binaryproto
from caffelite.phase import TEST, TRAIN


def needs_random(param, phase):
    """Whether a TransformationParameter draws random numbers in `phase` (mirror flips, TRAIN crops)."""
    return bool(param.mirror) or (phase == TRAIN and param.crop_size > 0)


class DataTransformer:
    """Transforms (N, C, H, W) batches of uint8 or float items into (N, C, H', W') arrays of `dtype`.

    `generator` (a numpy Generator) supplies the random crops and flips; it is needed only when `needs_random`.
    `where` (e.g. "layer 'data' (Data)") prefixes error messages.
    """

    def __init__(self, param, phase=TEST, generator=None, dtype=np.float32, where=""):
        self.dtype = np.dtype(dtype)
        self.phase = phase
        self.scale = self.dtype.type(param.scale)
        self.crop_size = int(param.crop_size)
        self.mirror = bool(param.mirror)
        self.force_color = bool(param.force_color)
        self.force_gray = bool(param.force_gray)
        self.generator = generator
        self._where = f"{where}: " if where else ""
        if param.HasField("mean_file") and len(param.mean_value):
            raise CaffeliteError(f"{self._where}cannot specify mean_file and mean_value at the same time")
        self.mean_file = param.mean_file if param.HasField("mean_file") else None
        self.mean = load_mean(self.mean_file, self._where).astype(self.dtype) if self.mean_file else None
        self.mean_values = np.array(param.mean_value, dtype=self.dtype) if len(param.mean_value) else None
        if self.needs_random and generator is None:
            raise CaffeliteError(f"{self._where}random crops/mirrors need a random generator")

    @property
    def needs_random(self):
        return needs_random(self, self.phase)

    def output_shape(self, item_shape):
        """(C, H', W') of a transformed (C, H, W) item (Caffe's InferBlobShape without the batch axis)."""
        channels, height, width = self._check_item(item_shape)
        if self.crop_size:
            return channels, self.crop_size, self.crop_size
        return channels, height, width

    def transform(self, batch, out=None):
        """Transform an (N, C, H, W) batch; writes into `out` when given, and returns the result."""
        batch = np.asarray(batch)
        num = batch.shape[0]
        self._check_item(batch.shape[1:])
        flips = self._draw_flips(num)
        pixels, mean = self._crop(batch, num)
        result = pixels.astype(self.dtype)
        if mean is not None:
            result -= mean
        if self.scale != 1:
            result *= self.scale
        if flips.any():
            # The mean was taken at each source pixel before the flip, exactly as Caffe indexes it.
            result[flips] = result[flips][..., ::-1]
        if out is None:
            return result
        out[...] = result
        return out

    # -- steps ----------------------------------------------------------------------------------
    def _draw_flips(self, num):
        if not self.mirror:
            return np.zeros(num, dtype=bool)
        return self.generator.integers(2, size=num).astype(bool)

    def _crop(self, batch, num):
        """The (cropped) pixels and the mean to subtract from them (broadcastable; None when there is none)."""
        height, width = batch.shape[2:]
        crop = self.crop_size
        if not crop:
            return batch, self._mean_window(slice(None), slice(None))
        if self.phase != TRAIN:
            rows = slice((height - crop) // 2, (height - crop) // 2 + crop)
            cols = slice((width - crop) // 2, (width - crop) // 2 + crop)
            return batch[:, :, rows, cols], self._mean_window(rows, cols)
        top = self.generator.integers(height - crop + 1, size=num)
        left = self.generator.integers(width - crop + 1, size=num)
        # A view of every crop window; picking one window per item gathers the batch in a single indexing step.
        windows = sliding_window_view(batch, (crop, crop), axis=(2, 3))  # (N, C, H-c+1, W-c+1, c, c)
        pixels = windows[np.arange(num), :, top, left]  # (N, C, c, c)
        if self.mean is not None:
            mean_windows = sliding_window_view(self.mean, (crop, crop), axis=(1, 2))  # (C, H-c+1, W-c+1, c, c)
            return pixels, mean_windows[:, top, left].transpose(1, 0, 2, 3)
        return pixels, self._mean_window(slice(None), slice(None))

    def _mean_window(self, rows, cols):
        if self.mean is not None:
            return self.mean[:, rows, cols]
        if self.mean_values is not None:
            return self.mean_values[:, np.newaxis, np.newaxis]  # one value per channel, or one for all
        return None

    def _check_item(self, item_shape):
        if len(item_shape) != 3:
            raise CaffeliteError(f"{self._where}expects (channels, height, width) items, got shape {tuple(item_shape)}")
        channels, height, width = (int(d) for d in item_shape)
        if channels <= 0:
            raise FileFormatError(f"{self._where}items have {channels} channels")
        if self.crop_size > height or self.crop_size > width:
            raise CaffeliteError(
                f"{self._where}crop_size {self.crop_size} is larger than the {height}x{width} items"
            )
        if self.mean is not None and self.mean.shape != (channels, height, width):
            raise CaffeliteError(
                f"{self._where}mean_file '{self.mean_file}' has shape {self.mean.shape}, "
                f"but the items have shape {(channels, height, width)}"
            )
        if self.mean_values is not None and len(self.mean_values) not in (1, channels):
            raise CaffeliteError(
                f"{self._where}give either 1 mean_value or one per channel ({channels}), "
                f"got {len(self.mean_values)}"
            )
        return channels, height, width


def load_mean(path, where=""):
    """The mean image (C, H, W) of a .binaryproto file (compute_image_mean writes it as 1 x C x H x W).

    `where` (e.g. "layer 'data' (Data): ") starts any error message.
    """
    if not Path(path).is_file():
        raise CaffeliteError(f"{where}mean_file '{path}' does not exist")
    mean = read_binaryproto(path)
    while mean.ndim > 3 and mean.shape[0] == 1:
        mean = mean[0]
    if mean.ndim != 3:
        raise FileFormatError(f"{where}mean_file '{path}' holds a blob of shape {mean.shape}, expected 1xCxHxW")
    return mean
