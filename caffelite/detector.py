"""pycaffe's Detector: a TEST-phase Net that classifies windows cropped from images (R-CNN style), optionally
padding each window with surrounding context."""

import os

import numpy as np

from caffelite.classifier import configure_transformer
from caffelite.errors import CaffeliteError
from caffelite.io.pycaffe import load_image, resize_image
from caffelite.net import Net
from caffelite.phase import TEST


class Detector(Net):
    """Net(model_file, TEST, weights=pretrained_file) configured for windowed detection.

    mean, input_scale, raw_scale, channel_swap: the Transformer's optional steps.
    context_pad: pixels of the (square) net input that show context around the window, as in R-CNN.
    """

    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None, channel_swap=None,
                 context_pad=None):
        super().__init__(model_file, TEST, weights=pretrained_file)
        self.transformer = configure_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """Classify windows (ymin, xmin, ymax, xmax) of image files, each warped to the net's input size.

        images_windows: iterable of (image filename, list of windows). Returns one dict per window, in order:
        {'window': the window, 'prediction': the net's first output for it, 'filename': the image}.
        """
        images_windows = [(filename, list(windows)) for filename, windows in images_windows]
        in_ = self.inputs[0]
        crops = [
            self.crop(load_image(filename), window) for filename, windows in images_windows for window in windows
        ]
        if not crops:
            return []
        items = np.stack([self.transformer.preprocess(in_, crop) for crop in crops])
        predictions = self.forward_all(**{in_: items})[self.outputs[0]]
        found = [(filename, window) for filename, windows in images_windows for window in windows]
        return [
            {"window": window, "prediction": prediction, "filename": filename}
            for (filename, window), prediction in zip(found, predictions)
        ]

    def detect_selective_search(self, image_fnames):
        """detect_windows over Selective Search proposals (needs the selective_search_ijcv_with_python package)."""
        try:
            import selective_search_ijcv_with_python as selective_search
        except ImportError:
            raise CaffeliteError(
                "detect_selective_search needs the selective_search_ijcv_with_python package (and MATLAB)"
            ) from None
        image_fnames = [os.path.abspath(name) for name in image_fnames]  # MATLAB resolves paths on its own
        windows_list = selective_search.get_windows(image_fnames, cmd="selective_search_rcnn")
        return self.detect_windows(zip(image_fnames, windows_list))

    def crop(self, im, window):
        """The (H, W, K) image's window (ymin, xmin, ymax, xmax), with context when context_pad is set.

        With context, the box is enlarged so that after warping to the input size the window fills all but a
        context_pad border; parts of the enlarged box beyond the image are filled with the mean (in raw image
        terms), the rest is the image resized into place.
        """
        window = np.asarray(window)
        ymin, xmin, ymax, xmax = (int(value) for value in window[:4])
        if not self.context_pad:
            return im[ymin:ymax, xmin:xmax]
        crop_size = self.blobs[self.inputs[0]].width  # assumes a square input
        box, pad_y, pad_x, scale_h, scale_w = self._context_box(window, crop_size)
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
        clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        if clip_h <= 0 or clip_w <= 0:
            raise CaffeliteError(f"window {window.tolist()} lies outside the {im_h}x{im_w} image")
        crop_h = min(int(round(clip_h * scale_h)), crop_size - pad_y)
        crop_w = min(int(round(clip_w * scale_w)), crop_size - pad_x)
        top, left, bottom, right = (int(value) for value in box)
        context = resize_image(im[top:bottom, left:right], (crop_h, crop_w))
        crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        crop[pad_y : pad_y + crop_h, pad_x : pad_x + crop_w] = context
        return crop

    def _context_box(self, window, crop_size):
        """The window grown by the context scale, and how far (in input pixels) it sticks out above and left."""
        scale = crop_size / (1.0 * crop_size - self.context_pad * 2)
        half_h = (window[2] - window[0] + 1) / 2.0
        half_w = (window[3] - window[1] + 1) / 2.0
        centre = (window[0] + half_h, window[1] + half_w)
        box = np.round(np.tile(centre, 2) + scale * np.array((-half_h, -half_w, half_h, half_w)))
        scale_h = crop_size / (box[2] - box[0] + 1)
        scale_w = crop_size / (box[3] - box[1] + 1)
        pad_y = int(round(max(0, -box[0]) * scale_h))
        pad_x = int(round(max(0, -box[1]) * scale_w))
        return box, pad_y, pad_x, scale_h, scale_w

    def configure_crop(self, context_pad):
        """Set crop_dims (the input's (H, W, K)) and, with context, crop_mean: the mean as a raw image pixel."""
        in_ = self.inputs[0]
        transpose = self.transformer.transpose[in_]
        to_image = np.argsort(transpose)
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[to_image]
        self.context_pad = context_pad
        if not context_pad:
            return
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = np.array(mean, dtype=np.float64).transpose(to_image)
        channel_swap = self.transformer.channel_swap.get(in_)
        if channel_swap is not None:
            crop_mean = crop_mean[:, :, np.argsort(channel_swap)]
        raw_scale = self.transformer.raw_scale.get(in_)
        if raw_scale is not None:
            crop_mean = crop_mean / raw_scale
        self.crop_mean = crop_mean
