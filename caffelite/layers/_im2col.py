"""Sliding-window helpers shared by Convolution and Pooling.

Windows are read through strided views (no index arrays) of an input kept inside a constant border, and gradients
are scattered back by looping over kernel offsets: for one offset, the cells its windows touch are a strided slice
with no repeats, so a plain `+=` on that slice is exact and needs no np.add.at.
"""

import itertools
import threading

import numpy as np
from numpy.lib.stride_tricks import as_strided

from caffelite.layers._threads import copy_split


def kernel_offsets(kernel):
    """Every position inside a kernel, in Caffe's scan order (last axis fastest)."""
    return itertools.product(*(range(k) for k in kernel))


def offset_slices(offset, stride, dilation, out_shape):
    """Spatial index of the cells that kernel position `offset` reads, one cell per output position."""
    return tuple(
        slice(k * d, k * d + s * (o - 1) + 1, s) for k, s, d, o in zip(offset, stride, dilation, out_shape)
    )


def add_into(target, values, disjoint):
    """target += values, for a slice of a zeroed buffer; when no other kernel offset touches the same cells
    (stride >= kernel on every axis), a plain store does the same and is about twice as fast."""
    if disjoint:
        target[...] = values
    else:
        target += values


def interior(before, size):
    """Spatial index of an input of spatial shape `size` placed `before` cells into a bordered buffer."""
    return tuple(slice(b, b + n) for b, n in zip(before, size))


def window_view(array, kernel, stride, dilation, out_shape):
    """Read-only view of shape lead + kernel + out_shape over the trailing len(kernel) axes of `array`:
    view[..., k_0, .., k_m, o_0, .., o_m] = array[..., o_i * stride_i + k_i * dilation_i, ..]."""
    lead = array.ndim - len(kernel)
    lead_shape, lead_strides = array.shape[:lead], array.strides[:lead]
    axis_strides = array.strides[lead:]
    kernel_strides = tuple(d * st for d, st in zip(dilation, axis_strides))
    out_strides = tuple(s * st for s, st in zip(stride, axis_strides))
    return as_strided(
        array,
        shape=lead_shape + tuple(kernel) + tuple(out_shape),
        strides=lead_strides + kernel_strides + out_strides,
        writeable=False,
    )


class BorderedInput:
    """A reusable copy of an input inside a constant border (`fill`), so every window stays in range.

    `load(x, before, size)` returns an array whose trailing axes have shape `size`, holding x at offset `before`.
    Only the interior is rewritten on each call; the buffer is rebuilt when the input shape or layout changes.
    Given a Workspace (`scratch`), the buffer comes from it instead and is bordered anew on every call (a
    forward-only layer keeps nothing). With no border at all, x itself is returned. `load_flat(x, before, size,
    tail)` gives the same values as one flat array followed by `tail` more fill values, for readers that run past
    the last cell.
    """

    def __init__(self, fill):
        self.fill = fill
        self._flat = None
        self._key = None

    def load(self, x, before, size, scratch=None):
        lead = x.ndim - len(size)
        if not any(before) and tuple(size) == x.shape[lead:]:
            return x
        shape = x.shape[:lead] + tuple(size)
        return self._fill_buffer(x, before, shape, 0, scratch)[:int(np.prod(shape, dtype=np.int64))].reshape(shape)

    def load_flat(self, x, before, size, tail=0):
        lead = x.ndim - len(size)
        if not any(before) and tuple(size) == x.shape[lead:] and not tail:
            return x.reshape(-1)
        return self._fill_buffer(x, before, x.shape[:lead] + tuple(size), tail)

    def _fill_buffer(self, x, before, shape, tail, scratch=None):
        size = int(np.prod(shape, dtype=np.int64))
        lead = len(shape) - len(before)
        if scratch is not None:
            # Only the border and the tail: the interior is written below.
            flat = scratch.get("bordered", (size + tail,), x.dtype)
            flat[size:].fill(self.fill)
            bordered = flat[:size].reshape(shape)
            for axis, (b, n) in enumerate(zip(before, x.shape[lead:]), start=lead):
                bordered[(slice(None),) * axis + (slice(0, b),)] = self.fill
                bordered[(slice(None),) * axis + (slice(b + n, None),)] = self.fill
        else:
            key = (x.shape, x.dtype, tuple(before), shape, tail)
            if key != self._key:
                self._flat = np.full(size + tail, self.fill, dtype=x.dtype)
                self._key = key
            flat = self._flat
        copy_split(flat[:size].reshape(shape)[(Ellipsis,) + interior(before, x.shape[lead:])], x)
        return flat


_shared = threading.local()


def workspace_of(layer):
    """The scratch a layer uses: its own when it runs backward (forward leaves state there for backward), else
    its thread's SharedWorkspace, lent to every forward-only layer in turn, so that a deploy net's scratch is the
    most that one layer needs at a time. Use as `_work = property(workspace_of)` with `self._own_work` set in
    setup; a forward-only layer must not keep what it takes from the scratch past its own pass."""
    if layer.need_backward:
        return layer._own_work
    if not hasattr(_shared, "work"):
        _shared.work = SharedWorkspace()
    return _shared.work.lend_to(layer)


def release_shared_workspace():
    """Free this thread's shared scratch (the next forward-only layer starts a new one): after dropping a net, or
    to measure a net's memory from a clean start."""
    _shared.__dict__.pop("work", None)


class Workspace:
    """Scratch arrays a layer keeps between iterations, reallocated only when more room or another dtype is needed."""

    def __init__(self):
        self._flat = {}

    def get(self, name, shape, dtype):
        """A C-contiguous array of `shape` (contents undefined), carved from a reusable flat buffer."""
        shape, size, dtype = _sized(shape, dtype)
        flat = self._flat.get(name)
        if flat is None or flat.dtype != dtype or flat.size < size:
            flat = np.empty(size, dtype=dtype)
            self._flat[name] = flat
        return flat[:size].reshape(shape)

    def zeros(self, name, shape, dtype):
        array = self.get(name, shape, dtype)
        array.fill(0)
        return array


def _sized(shape, dtype):
    shape = tuple(int(d) for d in shape)
    return shape, int(np.prod(shape, dtype=np.int64)), np.dtype(dtype)


class SharedWorkspace(Workspace):
    """One scratch lent to one layer at a time (`lend_to`): what a layer takes stays valid until another layer
    takes from it. The arrays the current layer holds under different names sit side by side in one buffer, and
    the next layer gets the same buffer again. So the scratch is the most that one layer holds at once, where a
    buffer per name would keep the largest of every name (GoogLeNet at batch 10: conv1 takes 47 MB for its
    bordered input, columns and products, pool1 40 MB for its stride phases and running max; 47 MB in all instead
    of 87). A layer that takes more than the buffer holds gets extra blocks for the rest of its turn; the next
    turn merges them into one buffer of what that layer took, once the old blocks are let go."""

    _ALIGN = 64  # bytes: every array starts on a cache line

    def __init__(self):
        super().__init__()
        self._owner = None  # id() of the layer the scratch is lent to
        self._blocks = []  # the buffer, then any blocks the current layer outgrew it by
        self._taken = {}  # name -> the bytes lent under it to the current layer
        self._used = 0  # bytes lent from the last block
        self._total = 0  # bytes lent to the current layer, alignment included

    def lend_to(self, owner):
        """This scratch, now for `owner`: what earlier layers took from it is overwritten from here on."""
        if id(owner) != self._owner:
            # Its id, not the layer: the scratch must not keep a dropped net's last layer alive. An id is reused
            # only once its layer is gone, and a new layer that gets it only takes disjoint names over again.
            self._owner, self._taken = id(owner), {}
            if len(self._blocks) > 1:
                size = max(self._blocks[0].size, self._total)
                self._blocks = []  # let go first, so that the old blocks and the new buffer never coexist
                self._blocks = [np.empty(size, dtype=np.uint8)]
            self._used = self._total = 0
        return self

    def get(self, name, shape, dtype):
        shape, size, dtype = _sized(shape, dtype)
        nbytes = size * dtype.itemsize
        taken = self._taken.get(name)
        if taken is None or taken.size < nbytes:
            taken = self._taken[name] = self._take(nbytes)
        return taken[:nbytes].view(dtype).reshape(shape)

    def _take(self, nbytes):
        start = -(-self._used // self._ALIGN) * self._ALIGN
        if not self._blocks or start + nbytes > self._blocks[-1].size:
            self._blocks.append(np.empty(nbytes, dtype=np.uint8))
            start = 0
        self._used = start + nbytes
        self._total = -(-self._total // self._ALIGN) * self._ALIGN + nbytes
        return self._blocks[-1][start:start + nbytes]


class StridePhases:
    """Images inside a constant border, laid out so that every kernel offset reads ONE long run per image.

    With stride s on an axis, the windows of kernel offset k read padded cells k, k + s, k + 2s, ...: strided and
    short, which numpy runs slowly. Here padded cell (h, w) of channel c of image n is stored in phase
    (h % s_h, w % s_w), phase-major: phase, image, channel, h // s_h, w // s_w. Kernel offset k then reads one
    phase from (k_h // s_h, k_w // s_w) on, and the reads of all channels of an image together are one run of
    C * H' * W' cells, viewed as the "wide" shape (N, C, H', W'): output (o_h, o_w) sits at [..., o_h, o_w], and
    `valid` crops the positions past the output (their values are meaningless: runs cross row and channel ends).
    Each image's block ends with a gap as long as the farthest start, so a run never reaches the next image:
    slices of the batch touch disjoint memory (threads may share the work). A gradient buffer of the same layout
    (`length` cells of zeros) takes per-offset sums, as long as the meaningless positions add zeros, and `unload`
    returns it to the input's layout. For stride 1 there is a single phase.
    """

    def __init__(self, fill, before, stride, padded_shape, out_shape, lead, dtype):
        self.fill, self.dtype = fill, np.dtype(dtype)
        self.before, self.stride = tuple(before), tuple(stride)
        self.size = tuple(-(-n // s) for n, s in zip(padded_shape, stride))
        self.wide = tuple(lead) + self.size
        self.valid = (Ellipsis,) + tuple(slice(0, o) for o in out_shape)
        plane = self.size[0] * self.size[1]
        # The farthest start any offset can have inside a phase (an upper bound: the whole padded extent).
        gap = self.size[1] * (padded_shape[0] // stride[0]) + padded_shape[1] // stride[1]
        self._image = lead[1] * plane + gap
        self._strides = tuple(n * self.dtype.itemsize for n in (self._image, plane, self.size[1], 1))
        self.phase_length = lead[0] * self._image
        self.length = int(np.prod(self.stride)) * self.phase_length
        self._buffer = None

    def start(self, offset):
        """Where kernel `offset`'s run begins."""
        phase = (offset[0] % self.stride[0]) * self.stride[1] + offset[1] % self.stride[1]
        return phase * self.phase_length + (offset[0] // self.stride[0]) * self.size[1] + offset[1] // self.stride[1]

    def run(self, flat, start):
        """The wide (N, C, H', W') view of `flat` (a buffer of this layout) read from `start`. Made by the ndarray
        constructor, which checks the view against the buffer's end and costs a seventh of as_strided (~1 us
        against ~7 us: pooling makes a few dozen of these per pass)."""
        return np.ndarray(self.wide, self.dtype, flat, start * self.dtype.itemsize, self._strides)

    def buffer(self, scratch=None):
        """The flat buffer: this object's own (its border laid once), or, given a Workspace, one taken from it
        and bordered anew (its contents are unknown). Get it before handing slices to threads."""
        if scratch is not None:
            flat = scratch.get("phases", (self.length,), self.dtype)
            flat.fill(self.fill)
            return flat
        if self._buffer is None:
            self._buffer = np.full(self.length, self.fill, dtype=self.dtype)
        return self._buffer

    def load(self, x, buffer, lo=0, hi=None):
        """Write images lo:hi of x into `buffer` (from `buffer()`); returns it."""
        for phase, target, source in self._pairs(x.shape[-2:]):
            self.run(buffer, phase * self.phase_length)[lo:hi][target] = x[lo:hi][source]
        return buffer

    def unload(self, flat, out, lo=0, hi=None):
        """out[lo:hi] = the cells of `flat` (this layout) that hold the input, i.e. without the border."""
        for phase, target, source in self._pairs(out.shape[-2:]):
            out[lo:hi][source] = self.run(flat, phase * self.phase_length)[lo:hi][target]

    def _pairs(self, spatial):
        """(phase number, index into its wide view, index into the input) for each phase holding input cells."""
        for number, phase in enumerate(itertools.product(*(range(s) for s in self.stride))):
            source, target = [], []
            for r, s, b, n in zip(phase, self.stride, self.before, spatial):
                first = (r - b) % s  # first input cell whose padded position is in phase r
                count = len(range(first, n, s))
                source.append(slice(first, n, s))
                target.append(slice((first + b) // s, (first + b) // s + count))
            if all(t.stop > t.start for t in target):
                yield number, (Ellipsis,) + tuple(target), (Ellipsis,) + tuple(source)
