"""Spatial pooling over (N, C, H, W): MAX (with an optional argmax top), AVE and STOCHASTIC."""

import itertools

import numpy as np

from caffelite.errors import NetError, ShapeError
from caffelite.function import Function, register_layer
from caffelite.layers._axis import check_image_batch
from caffelite.layers._im2col import (
    StridePhases,
    Workspace,
    add_into,
    kernel_offsets,
    offset_slices,
    workspace_of,
)
from caffelite.layers._threads import over_batch
from caffelite.phase import TRAIN
from caffelite.proto import caffe_pb2
from caffelite.rng import rng

_POOL = caffe_pb2.PoolingParameter
# Caffe starts every max at -FLT_MAX (also in double) and only a value strictly above it can win.
_LOWEST = -float(np.finfo(np.float32).max)
# Inputs from which a pooling that tiles them (see reshape) splits the batch across threads. Smaller ones run
# faster on one (in-process A/B on the 2-core AMD VM, LeNet at batch 64: pool2's 204,800 cells forward 1.23 ms on
# two threads, 0.91 on one, backward 0.81 vs 0.50; pool1's 737,280 cells forward 1.34 on two, 1.60 on one).
_TILES_THREADED = 1 << 19


@register_layer("Pooling")
class Pooling(Function):
    """y[n, c, p] = max | mean | sample of x[n, c] over the window p*stride - pad + [0, kernel), per Caffe's rules.

    MAX may write a second top: the argmax as a flat index h * W + w into the unpadded input (-1 if none).
    AVE divides by the window area clipped to H + pad (padding counts, overhang beyond it does not).
    STOCHASTIC samples a cell with probability proportional to its value in TRAIN and gives sum(x^2)/sum(x) in TEST.
    """

    exact_num_bottom = 1
    min_top = 1
    _work = property(workspace_of)

    @property
    def max_top(self):
        return 2 if self.param.pooling_param.pool == _POOL.MAX else 1

    # -- setup ------------------------------------------------------------------------------------
    def setup(self, bottom, top):
        pool = self.param.pooling_param
        self.method = pool.pool
        self.global_pooling = pool.global_pooling
        self.ceil = pool.round_mode == _POOL.CEIL
        self._check_options(pool)
        if self.global_pooling:
            self.kernel = None  # the input's (H, W), read at each reshape
        elif pool.HasField("kernel_size"):
            self.kernel = (pool.kernel_size,) * 2
        else:
            self.kernel = (pool.kernel_h, pool.kernel_w)
        self.pad = (pool.pad_h, pool.pad_w) if pool.HasField("pad_h") else (pool.pad,) * 2
        self.stride = (pool.stride_h, pool.stride_w) if pool.HasField("stride_h") else (pool.stride,) * 2
        if self.kernel is not None and min(self.kernel) <= 0:
            raise NetError(f"{self.describe()}: kernel size must be positive, got {list(self.kernel)}")
        if min(self.stride) <= 0:
            raise NetError(f"{self.describe()}: stride must be positive, got {list(self.stride)}")
        if self.global_pooling and (any(self.pad) or self.stride != (1, 1)):
            raise NetError(f"{self.describe()}: global_pooling allows only pad 0 and stride 1")
        if any(self.pad):
            if self.method not in (_POOL.MAX, _POOL.AVE):
                raise NetError(f"{self.describe()}: padding is implemented only for MAX and AVE pooling")
            if self.kernel is not None and any(p >= k for p, k in zip(self.pad, self.kernel)):
                raise NetError(f"{self.describe()}: pad {list(self.pad)} must be smaller than kernel "
                               f"{list(self.kernel)}")
        self._phases = self._phases_key = None
        self._own_work = Workspace()
        self._winner = None

    def _check_options(self, pool):
        """Caffe's rules for which of kernel_size/_h/_w, pad/_h/_w and stride/_h/_w may be combined."""
        has = pool.HasField
        if self.global_pooling:
            if has("kernel_size") or has("kernel_h") or has("kernel_w"):
                raise NetError(f"{self.describe()}: global_pooling takes its kernel from the input; "
                               "do not set kernel_size or kernel_h/kernel_w")
        elif has("kernel_size") == (has("kernel_h") and has("kernel_w")):
            raise NetError(f"{self.describe()}: give kernel_size, or both kernel_h and kernel_w (exactly one)")
        for name in ("pad", "stride"):
            h, w = has(f"{name}_h"), has(f"{name}_w")
            if (h or w) and not (h and w and not has(name)):
                raise NetError(f"{self.describe()}: give {name}, or both {name}_h and {name}_w (not both forms)")

    # -- reshape ----------------------------------------------------------------------------------
    def reshape(self, bottom, top):
        shape = bottom[0].shape
        check_image_batch(self, shape)
        self.in_shape = shape[2:]
        if self.global_pooling:
            self.kernel = self.in_shape
        self.out_shape = tuple(self._output_size(i) for i in range(2))
        # The bordered input must hold the padding and any window overhanging it (ceil rounding).
        self.padded_shape = tuple(
            max(n + 2 * p, (o - 1) * s + k)
            for n, p, o, s, k in zip(self.in_shape, self.pad, self.out_shape, self.stride, self.kernel)
        )
        out = shape[:2] + self.out_shape
        for t in top:
            t.reshape(out)
        key = (shape, self.padded_shape, self.out_shape)
        if key != self._phases_key:
            # Everything below depends only on the shapes: worked out once, not on every forward.
            # MAX pads with -inf so padding never wins; the others pad with zeros, which add nothing.
            fill = -np.inf if self.method == _POOL.MAX else 0
            self._phases = StridePhases(fill, self.pad, self.stride, self.padded_shape, self.out_shape, shape[:2],
                                        self.dtype)
            self._phases_key = key
            self._offsets = [(index, self._phases.start(k)) for index, k in enumerate(kernel_offsets(self.kernel))]
            # One window per map, inside the input (global pooling, GoogLeNet's closing 7x7 pool): its cells are read
            # straight from the input, where the phase layout would make every kernel offset a pass over a wide
            # array as large as the input. GoogLeNet's pool5 (AVE 7x7 over 7x7, batch 10) alone: 13.2 ms -> 1.3 ms.
            self._single_window = self.out_shape == (1, 1) and not any(self.pad) and all(
                k <= n for k, n in zip(self.kernel, self.in_shape))
            # Strided windows wholly inside the input (no padding, no overhang): see _forward_separable_max.
            self._separable = any(s > 1 for s in self.stride) and self.padded_shape == self.in_shape
            # The narrowest type that holds every offset: the winner search and the backward pass over it once per
            # offset (int8 instead of int16: CIFAR-10 quick's 3x3/2 pool1 winner search 16.5-19.5 -> 13.2-14.1 ms).
            self._winner_dtype = next(t for t in (np.int8, np.int16, np.int32)
                                      if len(self._offsets) <= np.iinfo(t).max)
            # The first kernel offset (in scan order) of each stride phase reads that phase from its first cell, so
            # its run covers every cell of the phase: backward stores its share there and adds the other offsets'
            # shares on top, instead of zeroing the phases first. Only phases that no offset reads (kernel < stride)
            # are zeroed. With kernel == stride every offset stores (in-process, batch 64: LeNet pool1 backward
            # 5.8 -> 2.1-3.8 ms, pool2 2.4 -> 1.1 ms); 3x3/2 windows store 4 of their 9 offsets (alone, two runs
            # each: nsfw's pool1 at batch 10, backward 25.2-27.9 -> 17.7-21.6 ms; CIFAR-10 quick's pool1 at batch
            # 100, 9.0-11.0 -> 7.5-8.4 ms).
            firsts = {}
            for index, offset in enumerate(kernel_offsets(self.kernel)):
                firsts.setdefault(tuple(k % s for k, s in zip(offset, self.stride)), index)
            self._stores = [index in firsts.values() for index in range(len(self._offsets))]
            self._unread_phases = [number for number, phase in enumerate(itertools.product(
                *(range(s) for s in self.stride))) if phase not in firsts]
            # Windows that tile the input (kernel == stride, no padding, no overhang: LeNet's and VGG's 2x2/2): each
            # kernel offset is a strided view of the blob itself, so MAX with winners reads the input and its
            # backward writes the input diff in place, with no phase layout to load and unload. In-process A/B on
            # the 2-core AMD VM, LeNet at batch 64: pool1 forward 2.16 -> 1.34 ms, backward 1.73 -> 0.90 ms; pool2
            # forward 1.66 -> 0.90 ms, backward 1.40 -> 0.49 ms.
            self._tiles = (self.method == _POOL.MAX and self.kernel == self.stride and not any(self.pad)
                           and self.padded_shape == self.in_shape)
            # Every wide position is an output: the top diff needs no copy into the wide shape.
            self._outputs_fill_wide = self._phases.size == self.out_shape
            # Caffe's divisor at each wide position; 1 where nothing is output, so that no 0/0 arises there.
            self._area = np.ones(self._phases.size, dtype=self.dtype)
            self._area[self._phases.valid] = self._window_area()

    def _output_size(self, i):
        size, pad, kernel, stride = self.in_shape[i], self.pad[i], self.kernel[i], self.stride[i]
        span = size + 2 * pad - kernel
        out = (-(-span // stride) if self.ceil else span // stride) + 1
        # With padding, a last window starting inside the bottom/right padding is dropped.
        if pad and (out - 1) * stride >= size + pad:
            out -= 1
        if out <= 0:
            raise ShapeError(f"{self.describe()}: kernel {list(self.kernel)} does not fit input {self.in_shape} "
                             f"with pad {list(self.pad)}")
        return out

    def _window_area(self):
        """Caffe's AVE divisor per output cell: the window clipped to H + pad (not to H), before clipping to 0."""
        sides = []
        for size, pad, kernel, stride, out in zip(self.in_shape, self.pad, self.kernel, self.stride, self.out_shape):
            start = np.arange(out) * stride - pad
            sides.append(np.minimum(start + kernel, size + pad) - start)
        return np.outer(sides[0], sides[1])

    # -- forward ----------------------------------------------------------------------------------
    # Every pass below works on whole "wide" arrays (see StridePhases): x[start] is one kernel offset's reads.
    # MAX and AVE split the batch across threads; each slice touches only its own images' memory.
    def forward(self, bottom, top):
        self._winner = None
        # MAX keeps the general path when its winners are wanted (backward, the mask top); AVE's backward needs
        # nothing from its forward.
        values_only = self.method == _POOL.MAX and not self.need_backward and len(top) == 1
        if self._single_window and (self.method == _POOL.AVE or values_only):
            self._forward_single_window(bottom[0].data, top[0].data)
        elif values_only and self._separable:
            self._forward_separable_max(bottom[0].data, top[0].data)
        elif self._tiles:
            self._forward_max_tiles(bottom[0].data, top)
        elif self.method == _POOL.MAX:
            self._forward_max(bottom[0].data, top)
        elif self.method == _POOL.AVE:
            self._forward_ave(bottom[0].data, top[0].data)
        elif self.phase == TRAIN:
            self._forward_sample(self._phases.load(bottom[0].data, self._input_buffer()), top[0].data)
        else:
            self._forward_weighted(self._phases.load(bottom[0].data, self._input_buffer()), top[0].data)
        if not self.need_backward:
            self._winner = None  # the shared scratch's: not to be held past this pass (see workspace_of)

    def _input_buffer(self):
        """Layers that run backward keep their input (phase layout) for it; forward-only ones use the scratch."""
        return self._phases.buffer(None if self.need_backward else self._work)

    def _read(self, x, start):
        return self._phases.run(x, start)

    def _wide(self, name, dtype=None):
        return self._work.get(name, self._phases.wide, dtype or self.dtype)

    def _forward_max(self, data, top):
        # Kept apart from top[0]: an in-place layer after this one may change the top before backward.
        best = self._wide("best")
        # Winners are found now when backward or the mask top will want them (x is at hand).
        scratch = None
        if self.need_backward or len(top) > 1:
            self._winner = self._wide("winner", self._winner_dtype)
            # Scratch of the winner search, made here: the threads below only take slices of it.
            scratch = (self._wide("hit", bool), self._wide("step", self._winner_dtype))
        valid = self._phases.valid
        x = self._input_buffer()  # got here, not in the threads
        y = top[0].data

        def pool(lo, hi):
            self._phases.load(data, x, lo, hi)
            b = best[lo:hi]
            cells = [self._read(x, start)[lo:hi] for _, start in self._offsets]
            if scratch is None:
                _start_from_lowest(cells[0], b)
                for c in cells[1:]:
                    np.fmax(b, c, out=b)  # fmax: NaN never wins, as in Caffe's `>`
            else:
                self._max_and_winners(cells, b, self._winner[lo:hi], *(a[lo:hi] for a in scratch))
            y[lo:hi] = b[valid]

        over_batch(len(best), pool, data.size)
        if len(top) > 1:
            top[1].data[...] = self._argmax_index(self._winner[valid])

    def _forward_max_tiles(self, data, top):
        """MAX with winners straight from the input when the windows tile it (see reshape)."""
        y = top[0].data
        self._winner = self._work.get("winner", y.shape, self._winner_dtype)
        hit, step = self._work.get("hit", y.shape, bool), self._work.get("step", y.shape, self._winner_dtype)
        cells = self._tile_views(data)

        def pool(lo, hi):
            self._max_and_winners([c[lo:hi] for c in cells], y[lo:hi], self._winner[lo:hi], hit[lo:hi], step[lo:hi])

        over_batch(len(y), pool, data.size, _TILES_THREADED)
        if len(top) > 1:
            top[1].data[...] = self._argmax_index(self._winner)

    def _tile_views(self, array):
        """One strided view of `array` per kernel offset (scan order): the cell each window has there."""
        return [array[(Ellipsis,) + offset_slices(offset, self.stride, (1, 1), self.out_shape)]
                for offset in kernel_offsets(self.kernel)]

    def _forward_single_window(self, x, y):
        """MAX or AVE of x[:, :, :kernel_h, :kernel_w], cell by cell in scan order (Caffe's order of the sums)."""
        total = self._work.get("single", x.shape[:2], self.dtype)
        if self.method == _POOL.MAX:
            total.fill(_LOWEST)
            for h, w in kernel_offsets(self.kernel):
                np.fmax(total, x[:, :, h, w], out=total)
            y.reshape(total.shape)[...] = total
        else:
            total.fill(0)
            for h, w in kernel_offsets(self.kernel):
                total += x[:, :, h, w]
            np.divide(total, self.kernel[0] * self.kernel[1], out=y.reshape(total.shape))

    def _backward_single_window(self, dy, dx):
        """AVE over one window per map: every cell of the window gets dy / area and the cells past it (FLOOR
        rounding) nothing, as the phase layout's per-offset passes gave, without them (nsfw's closing 7x7 pool at
        batch 10: 6.3 -> 0.3 ms)."""
        if self.kernel != self.in_shape:
            dx.fill(0)
        window = (Ellipsis,) + tuple(slice(0, k) for k in self.kernel)
        np.divide(dy, self.kernel[0] * self.kernel[1], out=dx[window])

    def _forward_separable_max(self, x, y):
        """A window's max is the max over its columns of each column's max: one pass per kernel row over the
        input (whole rows), then one per kernel column over those column maxima, instead of gathering the input
        into its stride phases and making one pass per kernel cell. The max of a set does not depend on the
        order it is taken in (fmax: NaN never wins), so the values are Caffe's. Forward-only MAX, in-place A/B
        (30 alternations, batch 10): CaffeNet pool1 9.2 -> 5.0 ms, pool5 1.9 -> 0.9 ms; LeNet's 2x2 pool1 at
        batch 64 2.5 -> 0.9 ms. Not taken with stride 1 or a border (the phase layout is as fast or faster
        there: GoogLeNet's 3x3 stride-1 pools 13.4 vs 14.4 ms, 14x14 maps with an overhang 7.9 vs 9.4 ms).
        """
        (kernel_h, kernel_w), (stride_h, stride_w), (out_h, out_w) = self.kernel, self.stride, self.out_shape
        column_max = self._work.get("column_max", x.shape[:2] + (out_h, x.shape[3]), self.dtype)

        def pool(lo, hi):
            columns, cells, out = column_max[lo:hi], x[lo:hi], y[lo:hi]
            for row in range(kernel_h):
                window = cells[:, :, offset_slices((row,), (stride_h,), (1,), (out_h,))[0]]
                if row == 0:
                    columns[...] = window
                else:
                    np.fmax(columns, window, out=columns)
            out.fill(_LOWEST)  # Caffe's starting value: a window of NaN and -inf only gives -FLT_MAX
            for column in range(kernel_w):
                np.fmax(out, columns[..., offset_slices((column,), (stride_w,), (1,), (out_w,))[0]], out=out)

        over_batch(len(x), pool, x.size)

    def _forward_ave(self, data, y):
        total = self._wide("total")
        x = self._input_buffer()

        def pool(lo, hi):
            self._phases.load(data, x, lo, hi)
            t = total[lo:hi]
            t.fill(0)
            for _, start in self._offsets:
                t += self._read(x, start)[lo:hi]
            with np.errstate(divide="ignore", invalid="ignore"):  # Caffe's 0/0 for windows wholly past the input
                y[lo:hi] = (t / self._area)[self._phases.valid]

        over_batch(len(total), pool, data.size)

    def _forward_sample(self, x, y):
        """Pick, per window, the first cell (scan order) where the running sum reaches u * window sum, u ~ U[0, 1)."""
        total = self._window_sum(x)
        threshold = self._wide("threshold")
        threshold.fill(np.inf)  # never reached where nothing is output
        valid = self._phases.valid
        threshold[valid] = total[valid] * rng().random(y.shape).astype(self.dtype)
        running = self._work.zeros("running", self._phases.wide, self.dtype)
        chosen = self._wide("chosen", self._winner_dtype)
        chosen.fill(-1)
        reached = self._wide("reached", bool)
        picked = self._work.zeros("picked", self._phases.wide, self.dtype)
        for index, start in self._offsets:
            values = self._read(x, start)
            running += values
            np.greater_equal(running, threshold, out=reached)
            reached &= chosen < 0
            np.putmask(chosen, reached, index)
            np.putmask(picked, reached, values)
        y[...] = picked[valid]
        self._winner = chosen

    def _forward_weighted(self, x, y):
        total = self._window_sum(x)
        squares = self._work.zeros("squares", self._phases.wide, self.dtype)
        for _, start in self._offsets:
            squares += np.square(self._read(x, start))
        with np.errstate(divide="ignore", invalid="ignore"):
            y[...] = np.where(total > 0, squares / total, 0)[self._phases.valid]

    def _window_sum(self, x):
        total = self._work.zeros("total", self._phases.wide, self.dtype)
        for _, start in self._offsets:
            total += self._read(x, start)
        return total

    # -- backward ---------------------------------------------------------------------------------
    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self._tiles:
            self._route_to_tiles(top[0].grad, bottom[0].grad)
            return
        if self._single_window and self.method == _POOL.AVE:
            self._backward_single_window(top[0].grad, bottom[0].grad)
            return
        if self.method == _POOL.STOCHASTIC and self.phase != TRAIN:
            dy = self._work.zeros("dy", self._phases.wide, self.dtype)
            dy[self._phases.valid] = top[0].grad
            grad = self._work.zeros("grad", (self._phases.length,), self.dtype)
            self._route_weighted(bottom[0].data, dy, grad)
            self._phases.unload(grad, bottom[0].grad)
            return
        # MAX only reads the top diff, so it can take it as it is when it fills the wide shape; AVE scales it.
        in_place = self._outputs_fill_wide and self.method == _POOL.MAX
        dy = top[0].grad if in_place else self._wide("dy")
        grad = self._work.get("grad", (self._phases.length,), self.dtype)
        if self.method != _POOL.AVE:  # MAX, and STOCHASTIC in TRAIN: the diff goes to the chosen cells
            hit = self._wide("hit", bool)
            picked = None if all(self._stores) else self._wide("picked")
        top_grad, bottom_grad = top[0].grad, bottom[0].grad

        def route(lo, hi):
            d = dy[lo:hi]
            if not in_place:
                # Zero where nothing is output, so that those positions add nothing.
                d.fill(0)
                d[self._phases.valid] = top_grad[lo:hi]
            for phase in self._unread_phases:
                self._read(grad, phase * self._phases.phase_length)[lo:hi].fill(0)
            if self.method == _POOL.AVE:
                d /= self._area
                for (_, start), store in zip(self._offsets, self._stores):
                    add_into(self._read(grad, start)[lo:hi], d, store)
            else:
                targets = [self._read(grad, start)[lo:hi] for _, start in self._offsets]
                self._route_to_winners(self._winner[lo:hi], d, targets, hit[lo:hi],
                                       None if picked is None else picked[lo:hi], self._stores)
            self._phases.unload(grad, bottom_grad, lo, hi)

        over_batch(len(top_grad), route, bottom[0].count)

    def _route_to_tiles(self, dy, dx):
        """MAX backward when the windows tile the input: each offset's share is stored into its view of the input
        diff; rows and columns past the last window (floor rounding) get zeros."""
        cells = self._tile_views(dx)
        hit = self._work.get("hit", dy.shape, bool)
        covered = tuple(o * s for o, s in zip(self.out_shape, self.stride))

        def route(lo, hi):
            self._route_to_winners(self._winner[lo:hi], dy[lo:hi], [c[lo:hi] for c in cells], hit[lo:hi], None,
                                   self._stores)
            dx[lo:hi, :, covered[0]:] = 0
            dx[lo:hi, :, :covered[0], covered[1]:] = 0

        over_batch(len(dx), route, dx.size, _TILES_THREADED)

    def _route_to_winners(self, winner, dy, targets, hit, picked, stores):
        """Each top diff goes to its window's winner: targets[i] is kernel offset i's cells, where its share is
        stored if stores[i], else added through the scratch `picked` (None when every share is stored)."""
        for index, (target, store) in enumerate(zip(targets, stores)):
            np.equal(winner, index, out=hit)
            if store:
                np.multiply(dy, hit, out=target)
            else:
                np.multiply(dy, hit, out=picked)
                target += picked

    def _route_weighted(self, data, dy, grad):
        """Gradient of sum(x^2) / sum(x): (2 x - y) / sum(x). (Caffe has no TEST backward; this is the exact one.)"""
        x = self._phases.load(data, self._input_buffer())
        total = self._window_sum(x)
        squares = sum(np.square(self._read(x, start)) for _, start in self._offsets)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.where(total > 0, squares / total, 0)
            scale = np.where(total > 0, dy / total, 0)
        for _, start in self._offsets:
            self._read(grad, start)[...] += scale * (2 * self._read(x, start) - y)

    # -- argmax -----------------------------------------------------------------------------------
    def _max_and_winners(self, cells, best, winner, hit, step):
        """Caffe's scan of each window over `cells` (one array per kernel offset, in scan order) from -FLT_MAX: a
        cell replaces the running max only when strictly greater, so the winner is the first offset holding the
        max; -1 where nothing beat -FLT_MAX (NaN and -inf only). Offsets come in increasing order, so the latest
        one to win is also the largest: winner = max(winner, index where it wins, else 0). One compare, max,
        multiply and max per offset, where finding the first offset equal to the finished max took five passes:
        in-process A/B at batch 100, CIFAR-10 quick's pool1 forward 21.5 -> 15.1 ms; LeNet's pool1 (batch 64)
        3.5 -> 3.1 ms."""
        _start_from_lowest(cells[0], best)
        winner.fill(0)
        for index, offset_cells in enumerate(cells[1:], 1):
            np.greater(offset_cells, best, out=hit)  # NaN is never greater
            np.fmax(best, offset_cells, out=best)
            np.multiply(hit.view(np.int8), step.dtype.type(index), out=step)
            np.maximum(winner, step, out=winner)
        # Where the max stayed at -FLT_MAX no offset won, so the winner is still 0: subtracting the mask makes it
        # -1 (np.putmask took 1.4 ms for 2^21 cells, nearly all False, the subtraction 0.09 ms). With the start
        # below, in-process A/B on one thread: nsfw's pool1 forward 21.7 -> 20.8 ms, CIFAR-10 quick's 8.7 -> 8.4,
        # LeNet's pool1 (tiles) 1.14 -> 1.06.
        np.equal(best, _LOWEST, out=hit)
        np.subtract(winner, hit.view(np.int8), out=winner)

    def _argmax_index(self, winner):
        """Offsets as Caffe's mask: flat index h * W + w into the unpadded input, -1 where nothing won."""
        width = self.in_shape[1]
        rows = np.arange(self.out_shape[0]) * self.stride[0] - self.pad[0]
        cols = np.arange(self.out_shape[1]) * self.stride[1] - self.pad[1]
        start = rows[:, None] * width + cols[None, :]
        kernel_w = self.kernel[1]
        winner = winner.astype(np.int64)  # the index arithmetic would overflow the winners' narrow type
        index = start + (winner // kernel_w) * width + winner % kernel_w
        return np.where(winner < 0, -1, index)


def _start_from_lowest(cells, best):
    """best = fmax(cells, -FLT_MAX): Caffe's running max starts from -FLT_MAX, so NaN and -inf give it. Taken
    against a filled array: numpy's fmax against a scalar runs its slow broadcast loop (nsfw's pool1, 2M cells:
    1587 -> 1041 us)."""
    best.fill(_LOWEST)
    np.fmax(best, cells, out=best)
