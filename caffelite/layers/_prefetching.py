"""What Data, ImageData and WindowData share: Caffe's BasePrefetchingDataLayer on caffelite's Prefetcher thread."""

import logging
import weakref

import numpy as np

from caffelite.data.prefetch import Prefetcher
from caffelite import parallel
from caffelite.errors import NetError
from caffelite.function import Function
from caffelite.phase import TRAIN
from caffelite.rng import rng

log = logging.getLogger("caffelite")


def child_generator():
    """A generator of its own for a worker thread, seeded from caffelite's generator in the calling thread, so a
    seeded run is repeatable and the worker never touches the shared generator."""
    return np.random.default_rng(int(rng().integers(2**63)))


def shuffle_generator(layer):
    """The generator a data layer shuffles its records with: in the TRAIN phase of training on several processes,
    one that gives the same order on every rank (so the ranks' shares partition the data); else its own."""
    return (layer.phase == TRAIN and parallel.shared_generator(layer.name)) or child_generator()


class PrefetchingData(Function):
    """A data layer whose batches (data, labels) a background thread prepares.

    Subclasses implement `make_loader(top)`: read the options, give the tops their setup shapes, and return a
    callable that produces one (data, labels) batch per call. The callable runs in the worker thread and must
    hold no reference to the layer (so that garbage collection stops the thread). `close()` stops the thread,
    then closes what `worker_resources()` names.
    """

    exact_num_bottom = 0

    def setup(self, bottom, top):
        loader = self.make_loader(top)
        log.info("%s: output data size: %s", self.name, ",".join(str(d) for d in top[0].shape))
        self._prefetcher = Prefetcher(loader, depth=self.param.data_param.prefetch, name=f"caffelite-{self.name}")
        self._close = weakref.finalize(self, _shut_down, self._prefetcher, self.worker_resources())

    def make_loader(self, top):
        raise NotImplementedError(f"{type(self).__name__}.make_loader")

    def worker_resources(self):
        """What the loader reads from and the layer must close (after the worker, which may be mid-read)."""
        return ()

    def reshape(self, bottom, top):
        """Nothing: forward gives the tops the shape of the batch it delivers."""

    def forward(self, bottom, top):
        if not self._close.alive:
            raise NetError(f"{self.describe()}: the layer is closed")
        data, labels = self._prefetcher.next()
        top[0].reshape(data.shape)
        top[0].data[...] = data
        if len(top) > 1:
            top[1].reshape(labels.shape)
            top[1].data[...] = labels

    def close(self):
        """Stop the prefetch thread and close its resources (idempotent)."""
        self._close()


def _shut_down(prefetcher, resources):
    if prefetcher.close():
        for resource in resources:
            resource.close()
