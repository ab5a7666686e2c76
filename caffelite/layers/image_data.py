"""ImageData: batches of image files named in a list file (`path label` per line), transformed and prefetched."""

import logging

import numpy as np

from caffelite import parallel
from caffelite.data.image import read_image
from caffelite.data.imageset import read_image_list
from caffelite.data.transformer import DataTransformer, needs_random
from caffelite.errors import FileFormatError, NetError
from caffelite.function import register_layer
from caffelite.layers._prefetching import PrefetchingData, child_generator, shuffle_generator
from caffelite.rng import rng

log = logging.getLogger("caffelite")

# The label is the last field; the path is everything before it, spaces included (Caffe splits at the last space).
# Caffe reads the label with atoi, so "3.0" means 3; a line of one word is a path with label 0.
_DEPRECATED = ("scale", "mean_file", "crop_size", "mirror")


@register_layer("ImageData")
class ImageData(PrefetchingData):
    """top[0] = transform(images of the next batch_size lines), top[1] = their labels; wraps (reshuffling) at the end.

    Images are read like cv::imread (BGR, or grey when is_color is false) and resized to new_height x new_width
    when both are set. Each batch takes the shape of its own first image, so un-resized images of different
    sizes work with batch_size 1. Training on several processes (caffelite.parallel), the TRAIN phase serves
    line i of the (shuffled) list on rank i % K only, and every rank shuffles alike.
    """

    exact_num_top = 2

    def make_loader(self, top):
        param = self.param.image_data_param
        self._check_options(param)
        entries, start, shuffler = self._entries(param)
        transform_param = self.param.transform_param
        generator = child_generator() if needs_random(transform_param, self.phase) else None
        transformer = DataTransformer(transform_param, self.phase, generator, self.dtype, where=self.describe())
        share = parallel.data_share(self.phase)
        loader = _ImageBatchLoader(entries, start, param, transformer, shuffler, share, self.describe())
        # Like Caffe, the first image to be served fixes the shape announced at setup.
        item_shape = transformer.output_shape(loader.read(entries[start]).shape)
        top[0].reshape((param.batch_size,) + item_shape)
        top[1].reshape(param.batch_size)
        return loader

    def _entries(self, param):
        """The list's entries (shuffled when asked), the index of the first to serve, and the shuffle generator."""
        entries = read_image_list(param.source, where=self.describe())
        log.info("%s: a total of %d images", self.name, len(entries))
        shuffler = shuffle_generator(self) if param.shuffle else None
        if shuffler is not None:
            entries = [entries[i] for i in shuffler.permutation(len(entries))]
        start = 0
        if param.rand_skip:
            start = int(rng().integers(param.rand_skip))
            if start >= len(entries):
                raise NetError(
                    f"{self.describe()}: rand_skip drew {start}, but '{param.source}' lists only {len(entries)} images"
                )
            log.info("%s: skipping first %d data points", self.name, start)
        return entries, start, shuffler

    def _check_options(self, param):
        if param.batch_size <= 0:
            raise NetError(f"{self.describe()}: image_data_param.batch_size must be positive, got {param.batch_size}")
        if (param.new_height > 0) != (param.new_width > 0):
            raise NetError(f"{self.describe()}: set new_height and new_width together (got "
                           f"{param.new_height} and {param.new_width})")
        ignored = [name for name in _DEPRECATED if param.HasField(name)]
        if ignored:
            log.warning("%s: image_data_param.%s ignored: set %s in transform_param", self.name,
                        "/".join(ignored), "/".join(ignored))


class _ImageBatchLoader:
    """Reads, transforms and labels one batch; runs in the prefetch thread (it holds no reference to the layer)."""

    def __init__(self, entries, start, param, transformer, shuffle_generator, share, where):
        self.entries = entries
        self.position = start
        self.offset = 0
        self.share = share
        self.batch_size = param.batch_size
        self.root = param.root_folder
        self.source = param.source
        self.size = (param.new_height, param.new_width)
        self.is_color = param.is_color
        self.transformer = transformer
        self.shuffle_generator = shuffle_generator
        self.where = where

    def __call__(self):
        batch = []
        rank, size = self.share
        while len(batch) < self.batch_size:
            if self.offset % size == rank:
                batch.append(self.entries[self.position])
            self.offset += 1
            self.position += 1
            if self.position == len(self.entries):
                self.position = 0
                if self.shuffle_generator is not None:
                    order = self.shuffle_generator.permutation(len(self.entries))
                    self.entries = [self.entries[i] for i in order]
        images = [self.read(entry) for entry in batch]
        for entry, image in zip(batch, images):
            if image.shape != images[0].shape:
                raise FileFormatError(
                    f"{self._where_line(entry)}: image has shape {image.shape}, but this batch's first image has "
                    f"shape {images[0].shape} (set new_height/new_width, or use batch_size 1)"
                )
        labels = np.array([label for _, label, _ in batch], dtype=self.transformer.dtype)
        return self.transformer.transform(np.stack(images)), labels

    def read(self, entry):
        path = self.root + entry[0]  # Caffe joins root_folder and the listed path as plain strings
        return read_image(path, *self.size, is_color=self.is_color, where=self._where_line(entry))

    def _where_line(self, entry):
        return f"{self.where}: {self.source}:{entry[2]}"
