"""pycaffe's Classifier: a TEST-phase Net that preprocesses (H, W, K) images and predicts class scores,
averaging over ten crops (corners, centre, mirrors) or taking the centre crop only."""

import numpy as np

from caffelite.io.pycaffe import Transformer, oversample, resize_image
from caffelite.net import Net
from caffelite.phase import TEST


def configure_transformer(net, mean=None, input_scale=None, raw_scale=None, channel_swap=None):
    """A Transformer for the net's first input: (H, W, K) images -> (K, H, W), plus the optional steps."""
    in_ = net.inputs[0]
    transformer = Transformer({in_: net.blobs[in_].data.shape})
    transformer.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        transformer.set_mean(in_, mean)
    if input_scale is not None:
        transformer.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        transformer.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        transformer.set_channel_swap(in_, channel_swap)
    return transformer


class Classifier(Net):
    """Net(model_file, TEST, weights=pretrained_file) configured for image classification.

    image_dims: the (height, width) images are resized to before cropping (default: the net's input size).
    mean, input_scale, raw_scale, channel_swap: the Transformer's optional steps.
    """

    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None, input_scale=None, raw_scale=None,
                 channel_swap=None):
        super().__init__(model_file, TEST, weights=pretrained_file)
        self.transformer = configure_transformer(self, mean, input_scale, raw_scale, channel_swap)
        self.crop_dims = np.array(self.blobs[self.inputs[0]].data.shape[2:])
        self.image_dims = self.crop_dims if image_dims is None or len(image_dims) == 0 else image_dims

    def predict(self, inputs, oversample=True):
        """(N, classes) scores of the (H, W, K) images: the mean over ten crops, or the centre crop's."""
        in_ = self.inputs[0]
        height, width = (int(dim) for dim in self.image_dims)
        images = np.stack([resize_image(im, (height, width)) for im in inputs])
        if oversample:
            crops = _ten_crops(images, self.crop_dims)
        else:
            crops = self._centre_crops(images)
        items = np.stack([self.transformer.preprocess(in_, crop) for crop in crops])
        predictions = self.forward_all(**{in_: items})[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape(len(predictions) // 10, 10, -1).mean(axis=1)
        return predictions

    def _centre_crops(self, images):
        centre = np.array(self.image_dims, dtype=float) / 2.0
        top, left = (centre - self.crop_dims / 2.0).astype(int)
        crop_h, crop_w = self.crop_dims
        return images[:, top : top + crop_h, left : left + crop_w]


# `predict`'s argument named `oversample` hides the module function inside the method.
_ten_crops = oversample
