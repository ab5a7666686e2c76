"""WindowData: R-CNN style batches of image windows, a fixed fraction foreground, warped to crop_size x crop_size."""

import logging
import math
from collections import Counter
from pathlib import Path

import numpy as np

from caffelite.data.image import decode_file_bytes, read_image, resize_linear
from caffelite.data.transformer import load_mean
from caffelite.errors import CaffeliteError, FileFormatError, NetError
from caffelite.function import register_layer
from caffelite.io.files import read_text_file
from caffelite.layers._prefetching import PrefetchingData, child_generator

log = logging.getLogger("caffelite")

# Columns of a window row.
IMAGE, LABEL, X1, Y1, X2, Y2, LINE = range(7)
# cv::imread(..., IMREAD_COLOR) always yields three channels.
CHANNELS = 3


@register_layer("WindowData")
class WindowData(PrefetchingData):
    """top[0][i] = (warp(window_i of its image) - mean) * scale, top[1][i] = its label (0 for background).

    Each batch draws batch_size - floor(batch_size * fg_fraction) background windows (overlap < bg_threshold,
    label forced to 0) then the foreground ones (overlap >= fg_threshold), uniformly with replacement, in every
    phase, as Caffe does. A window is enlarged by context_pad pixels of context on each side of the warped crop
    (crop_mode "square" first makes it square); the part beyond the image stays 0. With `mirror`, each window is
    flipped left-right with probability 1/2.
    """

    exact_num_top = 2

    def make_loader(self, top):
        param = self.param.window_data_param
        transform = self.param.transform_param
        self._check_options(param, transform)
        images, foreground, background = read_window_file(
            param.source, param.root_folder, param.fg_threshold, param.bg_threshold, self.describe()
        )
        self._log_counts(param, foreground, background, len(images))
        cache = [self._read_bytes(path, line) for path, line in images] if param.cache_images else None
        mean, mean_values = self._mean(transform)
        loader = _WindowBatchLoader(
            images=images,
            cache=cache,
            windows=(background, foreground),
            param=param,
            crop_size=transform.crop_size,
            mirror=transform.mirror,
            mean=mean,
            mean_values=mean_values,
            generator=child_generator(),
            dtype=self.dtype,
            where=self.describe(),
        )
        top[0].reshape(param.batch_size, CHANNELS, transform.crop_size, transform.crop_size)
        top[1].reshape(param.batch_size)
        return loader

    def _check_options(self, param, transform):
        if param.batch_size <= 0:
            raise NetError(f"{self.describe()}: window_data_param.batch_size must be positive, got {param.batch_size}")
        if transform.crop_size <= 0:
            hint = " (window_data_param.crop_size is deprecated: move it there)" if param.crop_size else ""
            raise NetError(f"{self.describe()}: WindowData needs transform_param.crop_size > 0{hint}")
        if 2 * param.context_pad >= transform.crop_size:
            raise NetError(f"{self.describe()}: context_pad {param.context_pad} leaves nothing of a "
                           f"{transform.crop_size}-pixel crop")
        if param.crop_mode not in ("warp", "square"):
            raise NetError(f"{self.describe()}: crop_mode must be \"warp\" or \"square\", got {param.crop_mode!r}")
        if not 0 <= param.fg_fraction <= 1:
            raise NetError(f"{self.describe()}: fg_fraction must lie in [0, 1], got {param.fg_fraction}")
        ignored = [name for name in ("mean_file", "mirror") if param.HasField(name)]
        if ignored:
            log.warning("%s: window_data_param.%s ignored: set it in transform_param", self.name, "/".join(ignored))
        if transform.scale != 1:
            log.warning("%s: transform_param.scale ignored: WindowData scales by window_data_param.scale", self.name)

    def _log_counts(self, param, foreground, background, num_images):
        log.info("%s: %d images; foreground overlap >= %g, background overlap < %g, foreground fraction %g, "
                 "context_pad %d, crop_mode %s", self.name, num_images, param.fg_threshold, param.bg_threshold,
                 param.fg_fraction, param.context_pad, param.crop_mode)
        counts = Counter(foreground[:, LABEL].tolist())
        counts[0] = len(background)
        for label in sorted(counts):
            log.info("%s: class %d has %d samples", self.name, label, counts[label])
        if not len(foreground) or not len(background):
            raise NetError(f"{self.describe()}: '{param.source}' yields {len(foreground)} foreground and "
                           f"{len(background)} background windows; both kinds are needed")

    def _read_bytes(self, path, line):
        try:
            return Path(path).read_bytes()
        except OSError as error:
            raise CaffeliteError(f"{self.describe()}: {self.param.window_data_param.source}:{line}: cannot read "
                                 f"image file '{path}': {error.strerror or error}") from None

    def _mean(self, transform):
        """The (3, crop, crop) mean window Caffe subtracts (taken at the mean image's centre), or the per-channel
        mean values (3,), or neither."""
        crop = transform.crop_size
        if transform.HasField("mean_file") and len(transform.mean_value):
            raise NetError(f"{self.describe()}: cannot specify mean_file and mean_value at the same time")
        if transform.HasField("mean_file"):
            mean = load_mean(transform.mean_file, f"{self.describe()}: ")
            # Caffe centres the crop with the mean's width for both axes.
            offset = (mean.shape[2] - crop) // 2
            if mean.shape[0] != CHANNELS or offset < 0 or mean.shape[1] < offset + crop:
                raise FileFormatError(f"{self.describe()}: mean_file '{transform.mean_file}' has shape {mean.shape}; "
                                      f"WindowData needs ({CHANNELS}, H, W) with a centred {crop}x{crop} window")
            return mean[:, offset : offset + crop, offset : offset + crop].astype(self.dtype), None
        if len(transform.mean_value):
            if len(transform.mean_value) not in (1, CHANNELS):
                raise NetError(f"{self.describe()}: give either 1 mean_value or {CHANNELS}, "
                               f"got {len(transform.mean_value)}")
            values = np.broadcast_to(np.array(transform.mean_value, dtype=self.dtype), (CHANNELS,))
            return None, values.copy()
        return None, None


def read_window_file(source, root_folder, fg_threshold, bg_threshold, where):
    """Parse a window file: ([(image path, line)], foreground rows, background rows).

    The file repeats `# image_index`, the image path, channels, height, width, the number of windows, then one
    `class overlap x1 y1 x2 y2` line per window (inclusive pixel coordinates). Windows with overlap >=
    fg_threshold are foreground, those below bg_threshold background (label 0), the rest unused. Rows are int64
    arrays with the columns IMAGE, LABEL, X1, Y1, X2, Y2, LINE.
    """
    text = read_text_file(source, "window file", where)
    reader = _Tokens(text, source, where)
    if reader.done():
        raise FileFormatError(f"{where}: window file '{source}' is empty")
    images, foreground, background = [], [], []
    fg_threshold, bg_threshold = np.float32(fg_threshold), np.float32(bg_threshold)
    while not reader.done():
        reader.expect("#")
        index, line = reader.integer("image index")
        if index != len(images):
            raise FileFormatError(f"{where}: {source}:{line}: image index {index}, expected {len(images)} "
                                  "(images are numbered from 0 in file order)")
        path, line = reader.word("image path")
        images.append((root_folder + path, line))
        channels, line = reader.integer("channels")
        if channels != CHANNELS:
            raise FileFormatError(f"{where}: {source}:{line}: WindowData reads images in colour ({CHANNELS} "
                                  f"channels), but the file gives {channels}")
        reader.integer("height")
        reader.integer("width")
        count, _ = reader.integer("number of windows")
        for _ in range(count):
            label, line = reader.integer("class")
            overlap = np.float32(reader.number("overlap"))
            x1, y1, x2, y2 = (reader.integer(name)[0] for name in ("x1", "y1", "x2", "y2"))
            if overlap >= fg_threshold:
                if label <= 0:
                    raise FileFormatError(f"{where}: {source}:{line}: a foreground window needs a class > 0, "
                                          f"got {label}")
                foreground.append((index, label, x1, y1, x2, y2, line))
            elif overlap < bg_threshold:
                background.append((index, 0, x1, y1, x2, y2, line))
    return images, _rows(foreground), _rows(background)


def _rows(windows):
    return np.array(windows, dtype=np.int64).reshape(-1, LINE + 1)


class _Tokens:
    """Whitespace-separated words of a text file with their line numbers (Caffe reads the file with >>)."""

    def __init__(self, text, source, where):
        self.words = [(word, number) for number, line in enumerate(text.splitlines(), 1) for word in line.split()]
        self.position = 0
        self.source = source
        self.where = where

    def done(self):
        return self.position == len(self.words)

    def word(self, what):
        if self.done():
            last = self.words[-1][1] if self.words else 1
            raise FileFormatError(f"{self.where}: {self.source}:{last}: the file ends where the {what} should be")
        self.position += 1
        return self.words[self.position - 1]

    def expect(self, token):
        word, line = self.word(f"'{token}'")
        if word != token:
            raise FileFormatError(f"{self.where}: {self.source}:{line}: expected '{token}', got {word!r}")

    def integer(self, what):
        word, line = self.word(what)
        try:
            return int(word), line
        except ValueError:
            raise FileFormatError(f"{self.where}: {self.source}:{line}: the {what} must be an integer, "
                                  f"got {word!r}") from None

    def number(self, what):
        word, line = self.word(what)
        try:
            return float(word)
        except ValueError:
            raise FileFormatError(f"{self.where}: {self.source}:{line}: the {what} must be a number, "
                                  f"got {word!r}") from None


class _WindowBatchLoader:
    """Samples and warps one batch of windows; runs in the prefetch thread (no reference to the layer)."""

    def __init__(self, images, cache, windows, param, crop_size, mirror, mean, mean_values, generator, dtype, where):
        self.images = images
        self.cache = cache
        self.background, self.foreground = windows
        self.batch_size = param.batch_size
        self.num_foreground = int(np.float32(param.batch_size) * np.float32(param.fg_fraction))
        self.context_pad = param.context_pad
        self.square = param.crop_mode == "square"
        self.scale = np.dtype(dtype).type(param.scale)
        self.source = param.source
        self.crop_size = crop_size
        self.mirror = mirror
        self.mean = mean
        self.mean_values = mean_values
        self.generator = generator
        self.dtype = np.dtype(dtype)
        self.where = where

    def __call__(self):
        num_background = self.batch_size - self.num_foreground
        picks = np.concatenate([
            self.background[self.generator.integers(len(self.background), size=num_background)],
            self.foreground[self.generator.integers(len(self.foreground), size=self.num_foreground)],
        ])
        flips = np.zeros(self.batch_size, dtype=bool)
        if self.mirror:
            flips = self.generator.integers(2, size=self.batch_size).astype(bool)
        data = np.zeros((self.batch_size, CHANNELS, self.crop_size, self.crop_size), dtype=self.dtype)
        decoded = {}  # a batch often draws several windows of one image: decode it once
        for item, (window, flip) in enumerate(zip(picks, flips)):
            index = int(window[IMAGE])
            if index not in decoded:
                decoded[index] = self._image(index)
            self._paste(decoded[index], window, flip, data[item])
        return data, picks[:, LABEL].astype(self.dtype)

    def _image(self, index):
        path, line = self.images[index]
        where = f"{self.where}: {self.source}:{line}"
        if self.cache is not None:
            return decode_file_bytes(self.cache[index], path, where=where)
        return read_image(path, where=where)

    def _paste(self, image, window, flip, out):
        """Warp the window into `out` (C, crop, crop), which holds zeros."""
        region, size, offset = self._geometry(image.shape[1:], window, flip)
        (y1, y2, x1, x2), (height, width), (pad_h, pad_w) = region, size, offset
        warped = resize_linear(image[:, y1 : y2 + 1, x1 : x2 + 1], height, width)
        if flip:
            warped = warped[:, :, ::-1]
        values = warped.astype(self.dtype)
        if self.mean is not None:
            values -= self.mean[:, pad_h : pad_h + height, pad_w : pad_w + width]
        elif self.mean_values is not None:
            values -= self.mean_values[:, np.newaxis, np.newaxis]
        out[:, pad_h : pad_h + height, pad_w : pad_w + width] = values * self.scale

    def _geometry(self, image_size, window, flip):
        """((y1, y2, x1, x2) source region, (height, width) it is warped to, (top, left) where it goes).

        Caffe's arithmetic, in the layer's float type, with C's round (half away from zero).
        """
        rows, cols = image_size
        x1, y1, x2, y2 = (int(v) for v in window[[X1, Y1, X2, Y2]])
        crop = self.crop_size
        height = width = crop
        pad_h = pad_w = 0
        if self.context_pad > 0 or self.square:
            real = self.dtype.type
            context_scale = real(crop) / real(crop - 2 * self.context_pad)
            half_height, half_width = real(y2 - y1 + 1) / real(2), real(x2 - x1 + 1) / real(2)
            center_x, center_y = real(x1) + half_width, real(y1) + half_height
            if self.square:
                half_height = half_width = max(half_height, half_width)
            x1, x2 = _c_round(center_x - half_width * context_scale), _c_round(center_x + half_width * context_scale)
            y1, y2 = _c_round(center_y - half_height * context_scale), _c_round(center_y + half_height * context_scale)
            unclipped_height, unclipped_width = y2 - y1 + 1, x2 - x1 + 1
            pad_x1, pad_y1 = max(0, -x1), max(0, -y1)
            pad_x2, pad_y2 = max(0, x2 - cols + 1), max(0, y2 - rows + 1)
            x1, x2, y1, y2 = x1 + pad_x1, x2 - pad_x2, y1 + pad_y1, y2 - pad_y2
            scale_x, scale_y = real(crop) / real(unclipped_width), real(crop) / real(unclipped_height)
            width, height = _c_round(real(x2 - x1 + 1) * scale_x), _c_round(real(y2 - y1 + 1) * scale_y)
            pad_x1, pad_x2 = _c_round(real(pad_x1) * scale_x), _c_round(real(pad_x2) * scale_x)
            pad_h = _c_round(real(pad_y1) * scale_y)
            # A mirrored window is mirrored with its padding.
            pad_w = pad_x2 if flip else pad_x1
            # Rounding may push the warped region past the crop.
            height, width = min(height, crop - pad_h), min(width, crop - pad_w)
        if not (0 <= x1 <= x2 < cols and 0 <= y1 <= y2 < rows) or height <= 0 or width <= 0:
            raise FileFormatError(
                f"{self.where}: {self.source}:{int(window[LINE])}: window ({', '.join(map(str, window[X1:Y2 + 1]))}) "
                f"does not fit the {rows}x{cols} image '{self.images[int(window[IMAGE])][0]}'"
            )
        return (y1, y2, x1, x2), (height, width), (pad_h, pad_w)


def _c_round(value):
    """C's round(): to the nearest integer, halves away from zero (computed in double, as C promotes)."""
    value = float(value)
    magnitude = math.floor(abs(value))
    if abs(value) - magnitude >= 0.5:
        magnitude += 1
    return int(math.copysign(magnitude, value))
