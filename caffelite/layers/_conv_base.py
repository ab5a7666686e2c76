"""What Convolution and Deconvolution share: options, geometry and the three products of one convolution.

Both layers run the same underlying convolution (Caffe's BaseConvolutionLayer). Its "column side" is the blob that
gets unfolded into columns (Caffe's conv_in_channels), its "output side" the other one (conv_out_channels):
Convolution maps its bottom (column side) to its top, Deconvolution runs the same convolution transposed, from its
bottom (output side) to its top. Three products cover every forward and backward of both layers:
    apply       y = W * x            column side -> output side: im2col, then one matrix product per group
    transpose   x = W^T * y          output side -> column side: one matrix product per group, then col2im
    weight      W.grad += y (*) x    correlation of an output-side blob with a column-side blob
When each group reads a single column-side channel (group == conv_in_channels: depthwise), they are computed
without columns, as a sum over kernel offsets of shifted slices times per-channel weights.
"""

import numpy as np

from caffelite.errors import NetError, ShapeError
from caffelite.fillers import fill
from caffelite.function import Function
from caffelite.layers._axis import canonical_axis, count
from caffelite.layers._conv_geometry import check_num_axes, read_geometry, windows_are_disjoint
from caffelite.layers._im2col import (
    BorderedInput,
    Workspace,
    add_into,
    interior,
    kernel_offsets,
    offset_slices,
    window_view,
    workspace_of,
)
from caffelite.layers._in_place import refuse_in_place
from caffelite.layers._threads import copy_split, over_batch

# Upper bound on the column matrix (bytes). Bigger batches are processed in blocks of whole images so that
# memory stays bounded; below the bound the whole batch is one matrix product. A layer that runs backward may
# use more: one block lets backward reuse its forward's columns (each such layer keeps its own, as Caffe does);
# forward-only layers share one scratch, and a smaller bound keeps a deploy net's peak memory near its size.
COLUMN_BUDGET = 1 << 27
FORWARD_COLUMN_BUDGET = 1 << 25
# Elements per block of the depthwise path: about an L2 cache, so every kernel offset finds its block in cache.
DEPTHWISE_BLOCK = 1 << 16
# Widest output rows for which col2im works with images last (see `reshape`).
BATCH_LAST_MAX_WIDTH = 27
# Largest weight matrix (O x C x K, one group), and largest product per image (multiply-adds), of layers whose
# products run image by image (see `reshape`).
IMAGE_PRODUCTS_MAX_WEIGHTS = 4096
IMAGE_PRODUCT_MAX_SIZE = 1 << 19


class ConvolutionBase(Function):
    """Options and products of a convolution; `transposed` says whether the bottom is the output side."""

    min_bottom = 1
    min_top = 1
    transposed = False
    _work = property(workspace_of)

    def check_blob_counts(self, num_bottom, num_top):
        super().check_blob_counts(num_bottom, num_top)
        if num_bottom != num_top:
            raise NetError(
                f"{self.describe()}: expects as many tops as bottoms, got {num_bottom} bottoms and {num_top} tops"
            )

    # -- setup ------------------------------------------------------------------------------------
    def setup(self, bottom, top):
        refuse_in_place(self, bottom, top)
        conv = self.param.convolution_param
        self.axis = canonical_axis(self, conv.axis, bottom[0].num_axes)
        self.num_spatial = bottom[0].num_axes - self.axis - 1
        self.geometry = read_geometry(self, conv, self.num_spatial)
        self.kernel, self.stride, self.pad, self.dilation = self.geometry
        # Windows that cannot overlap let col2im store instead of add.
        self._disjoint = windows_are_disjoint(self.geometry)
        self.channels = bottom[0].shape[self.axis]
        self.num_output = conv.num_output
        self.group = conv.group
        self._check_channels()
        if self.transposed:
            self.col_channels, self.out_channels = self.num_output, self.channels
        else:
            self.col_channels, self.out_channels = self.channels, self.num_output
        self.bias_term = conv.bias_term
        weight_shape = (self.out_channels, self.col_channels // self.group) + self.kernel
        fill(self.new_param(weight_shape).data, conv.weight_filler)
        if self.bias_term:
            fill(self.new_param((self.num_output,)).data, conv.bias_filler)
        self.depthwise = self.group > 1 and self.group == self.col_channels
        self.multiplier = self.out_channels // self.group
        self._bordered = BorderedInput(fill=0)
        self._own_work = Workspace()
        self._kept = None  # which input the columns in the workspace were made from, for backward to reuse
        self._planned_for = None  # the input shapes and need_backward of the last plan (see reshape)

    def _check_channels(self):
        if self.num_output <= 0:
            raise NetError(f"{self.describe()}: num_output must be positive, got {self.num_output}")
        if self.group <= 0:
            raise NetError(f"{self.describe()}: group must be positive, got {self.group}")
        if self.channels % self.group:
            raise NetError(f"{self.describe()}: {self.channels} input channels do not split into {self.group} groups")
        if self.num_output % self.group:
            raise NetError(f"{self.describe()}: num_output {self.num_output} does not split into {self.group} groups")

    # -- reshape ----------------------------------------------------------------------------------
    def reshape(self, bottom, top):
        # The net reshapes every layer before each forward; the plan depends only on the input shapes and on
        # need_backward, and working it out takes ~0.2 ms (LeNet's conv1 and conv2 at batch 64), so it is redone
        # only when they change.
        key = (tuple(b.shape for b in bottom), self.need_backward)
        if key != self._planned_for:
            self._plan(bottom)
            self._planned_for = key
        for t in top:
            t.reshape(self._top_shape)

    def _plan(self, bottom):
        """Check the inputs and work out the output shape, the column blocks and which paths the products take."""
        shape = bottom[0].shape
        check_num_axes(self, shape, self.axis, self.num_spatial)
        if shape[self.axis] != self.channels:
            raise ShapeError(f"{self.describe()}: input has {shape[self.axis]} channels, the weights expect "
                             f"{self.channels}")
        for i, b in enumerate(bottom[1:], start=1):
            if b.shape != shape:
                raise ShapeError(f"{self.describe()}: bottom[{i}] has shape {b.shape}, bottom[0] has {shape}")
        self.batch = count(shape, 0, self.axis)
        self.in_shape = shape[self.axis + 1:]
        self.out_shape = self._output_shape()
        self._top_shape = shape[: self.axis] + (self.num_output,) + self.out_shape
        # The underlying convolution's two sides, whichever of bottom and top they are.
        if self.transposed:
            self.col_shape, self.conv_shape = self.out_shape, self.in_shape
        else:
            self.col_shape, self.conv_shape = self.in_shape, self.out_shape
        self.padded_shape = tuple(n + 2 * p for n, p in zip(self.col_shape, self.pad))
        # Per kernel offset, the padded cells its windows read (one per output position).
        self._cells = [offset_slices(offset, self.stride, self.dilation, self.conv_shape)
                       for offset in kernel_offsets(self.kernel)]
        column_bytes = (self.col_channels * count(self.kernel) * count(self.conv_shape)) * self.dtype.itemsize
        budget = COLUMN_BUDGET if self.need_backward else min(COLUMN_BUDGET, FORWARD_COLUMN_BUDGET)
        self.block = max(1, min(self.batch, budget // max(1, column_bytes)))
        # im2col and col2im copy or add each kernel offset's cells in runs as long as an output row: short runs
        # (small maps) cost numpy more per call than per cell. With images as the last axis of the columns (and of
        # col2im's sum), a stride-1 offset's cells of all images form runs of row x images. That layout costs
        # transposes in and out (the input, the output, the top diff: ~(C + 2 O) x positions x images cells)
        # where the columns hold C/g x K x positions x images; it is taken with one block, stride and dilation 1,
        # output rows of up to BATCH_LAST_MAX_WIDTH cells and columns at least twice what the transposes move.
        # In-process A/B: LeNet conv2 forward+backward 20.2 -> 16.4 ms (its conv1, C x K = 25 for 20 outputs,
        # loses 4.8 -> 8.6 ms), CIFAR-10 quick iteration 270 -> 241 ms, CaffeNet (batch 10) conv3 backward 59 -> 43;
        # GoogLeNet's 56x56 conv2 and the stride-2/4 layers lose.
        per_group = (self.col_channels // self.group, self.out_channels // self.group)
        self._batch_last = (self.block >= self.batch and count(self.conv_shape[-1:]) <= BATCH_LAST_MAX_WIDTH
                            and all(s == 1 for s in self.stride) and all(d == 1 for d in self.dilation)
                            and per_group[0] * count(self.kernel) >= 2 * sum(per_group))
        # With a small weight matrix (LeNet's first layer) the products are streams over the columns, and the
        # transposes of the output and of the top diff to and from the columns' (O, n, P) order cost as much as
        # they do: one product per image instead reads and writes those blobs as they are, (n, O, P), and the
        # weight gradient sums the images' products. Our threads split the images, which pays only while each
        # product is small (larger ones get BLAS threads of their own, and the two contend): CIFAR-10's conv1
        # (2.5 M multiply-adds per image) is twice as slow that way. In-process A/B at batch 64, LeNet conv1:
        # forward 3.0 -> 1.9 ms, backward 3.1 -> 1.7 ms; the whole LeNet iteration 40.9 -> 36.1 ms.
        weights = self.out_channels * self.col_channels * count(self.kernel)
        self._image_products = (self.group == 1 and not self._batch_last and weights <= IMAGE_PRODUCTS_MAX_WEIGHTS
                                and weights * count(self.conv_shape) <= IMAGE_PRODUCT_MAX_SIZE)
        if self.depthwise:
            self._plan_depthwise()

    def _output_shape(self):
        raise NotImplementedError(f"{type(self).__name__}._output_shape")

    # -- the two sides as arrays ------------------------------------------------------------------
    def _col_side(self, array):
        """(batch, col_channels, *col_shape) view of a column-side blob."""
        return array.reshape((self.batch, self.col_channels) + self.col_shape)

    def _conv_side(self, array):
        """(batch, out_channels, *conv_shape) view of an output-side blob."""
        return array.reshape((self.batch, self.out_channels) + self.conv_shape)

    def _add_bias_grad(self, top_grad):
        """b.grad += the top grad summed over images and positions: a matrix-vector product with ones per image, as
        Caffe's, then a sum over images (2.5-3.5x faster than numpy's sum over the two axes, e.g. 0.22 -> 0.09 ms
        for LeNet's conv1 at batch 64)."""
        per_image = top_grad.reshape(self.batch, self.num_output, -1)
        self.params[1].grad += np.matmul(per_image, np.ones(per_image.shape[2], self.dtype)).sum(axis=0)

    # -- the products -----------------------------------------------------------------------------
    def _col_pass(self, x, apply_to=None, bias=None, weight_grad_with=None, transpose_into=None, keep=False,
                  reuse=False):
        """One pass over the column-side `x`: apply_to = W * x (+ bias); W.grad += weight_grad_with (*) x; and
        transpose_into = W^T * weight_grad_with (a convolution's backward: the columns of x are spent by then).
        `keep`: leave x's columns for a following pass with `reuse` (a forward's for its backward) to skip im2col."""
        if self.depthwise:
            self._depthwise_col_pass(x, apply_to, bias, weight_grad_with)
            if transpose_into is not None:
                self._depthwise_transpose_pass(weight_grad_with, transpose_into)
            return
        weight = self._grouped(self.params[0].data)
        positions = count(self.conv_shape)
        x_sum = self._column_sum() if transpose_into is not None else None
        for start, cols in self._column_blocks(x, keep, reuse):
            n = min(self.block, self.batch - start)
            columns = cols.reshape(self.group, weight.shape[2], n * positions)
            if x_sum is not None or (weight_grad_with is not None and not self._image_products):
                y = self._grouped_block(weight_grad_with, start, n)
            if weight_grad_with is not None and self._image_products:
                self._image_weight_grad(weight_grad_with, columns[0], start, n)
            elif weight_grad_with is not None:
                self._grouped(self.params[0].grad)[...] += np.matmul(y, columns.swapaxes(1, 2))
            if apply_to is not None and self._image_products:
                self._image_apply(weight[0], columns[0], apply_to, bias, start, n)
            elif apply_to is not None:
                out = self._work.get("out", (self.group, weight.shape[1], columns.shape[2]), self.dtype)
                np.matmul(weight, columns, out=out)
                # (O, n, P) or (O, P, n) back to (n, O, P), adding the bias in the same pass.
                if self._batch_last:
                    out = out.reshape(self.out_channels, positions, n).transpose(2, 0, 1)
                else:
                    out = out.reshape(self.out_channels, n, positions).swapaxes(0, 1)
                target = apply_to.reshape(self.batch, self.out_channels, positions)[start:start + n]
                if bias is None:
                    copy_split(target, out)
                else:
                    over_batch(n, lambda lo, hi: np.add(out[lo:hi], bias[:, None], out=target[lo:hi]), out.size)
            if x_sum is not None:
                self._transpose_block(y, cols, self._column_sum_block(x_sum, start, n))
        if x_sum is not None:
            self._store_column_sum(x_sum, transpose_into)

    def _image_apply(self, weight, columns, apply_to, bias, start, n):
        """apply_to[start:start + n] = W x (+ bias), one product per image: columns (C x K, n x P) as n matrices
        (C x K, P), each written straight into its image's (O, P) of the output."""
        target = apply_to.reshape(self.batch, self.out_channels, -1)[start:start + n]
        per_image = columns.reshape(columns.shape[0], n, -1).swapaxes(0, 1)

        def product(lo, hi):
            np.matmul(weight, per_image[lo:hi], out=target[lo:hi])
            if bias is not None:
                np.add(target[lo:hi], bias[:, None], out=target[lo:hi])

        over_batch(n, product, target.size)

    def _image_weight_grad(self, y, columns, start, n):
        """W.grad += sum over images [start, start + n) of y_i (O, P) x columns_i^T (P, C x K)."""
        dy = y.reshape(self.batch, self.out_channels, -1)[start:start + n]
        per_image = columns.reshape(columns.shape[0], n, -1).transpose(1, 2, 0)
        parts = self._work.get("weight_parts", (n, self.out_channels, columns.shape[0]), self.dtype)
        over_batch(n, lambda lo, hi: np.matmul(dy[lo:hi], per_image[lo:hi], out=parts[lo:hi]), dy.size)
        self.params[0].grad.reshape(parts.shape[1:])[...] += parts.sum(axis=0)

    def _transpose_pass(self, y, x_out):
        """x_out (column side) = W^T * y (output side)."""
        if self.depthwise:
            self._depthwise_transpose_pass(y, x_out)
            return
        x_sum = self._column_sum()
        for start in range(0, self.batch, self.block):
            n = min(self.block, self.batch - start)
            cols = self._work.get("cols", (self.col_channels,) + self.kernel + (n,) + self.conv_shape, self.dtype)
            self._transpose_block(self._grouped_block(y, start, n), cols, self._column_sum_block(x_sum, start, n))
        self._store_column_sum(x_sum, x_out)

    def _transpose_block(self, y, cols, x_sum):
        """x_sum += col2im(W^T y) for one block of images, y as (g, O/g, n * P); `cols` is the scratch."""
        weight_t = self._grouped(self.params[0].data).swapaxes(1, 2)
        if self._batch_last:
            cols = cols.reshape((self.col_channels,) + self.kernel + self.conv_shape + (self.batch,))
        np.matmul(weight_t, y, out=cols.reshape(self.group, weight_t.shape[1], y.shape[2]))
        self._add_columns(cols, x_sum)

    def _column_sum(self):
        """Where col2im sums: channels first (the column layout), with the padding border; images last (after the
        spatial axes) when `_batch_last`."""
        shape = (self.padded_shape + (self.batch,)) if self._batch_last else ((self.batch,) + self.padded_shape)
        return self._work.zeros("x_sum", (self.col_channels,) + shape, self.dtype)

    def _column_sum_block(self, x_sum, start, n):
        """The part of x_sum that images [start, start + n) add into (the whole of it when images come last:
        that layout is only used with one block)."""
        return x_sum if self._batch_last else x_sum[:, start:start + n]

    def _store_column_sum(self, x_sum, x_out):
        if self._batch_last:
            copy_split(x_out, np.moveaxis(x_sum[(slice(None),) + interior(self.pad, self.col_shape)], -1, 0))
        else:
            copy_split(x_out, x_sum[(Ellipsis,) + interior(self.pad, self.col_shape)].swapaxes(0, 1))

    def _grouped(self, weight):
        """W (O, C/g, *k) as (g, O/g, C/g * K): one matrix per group."""
        return weight.reshape(self.group, self.out_channels // self.group, -1)

    def _grouped_block(self, y, start, n):
        """Images [start, start + n) of an output-side blob as (g, O/g, n * P), one matrix per group; the positions
        in the columns' order: image-major, or image-fastest (P, n) when `_batch_last`."""
        flat = y.reshape(self.batch, self.out_channels, -1)
        if self._batch_last:
            block = self._work.get("y_block", (self.out_channels, flat.shape[2], n), self.dtype)
            copy_split(block, flat.transpose(1, 2, 0))
        else:
            block = self._work.get("y_block", (self.out_channels, n, flat.shape[2]), self.dtype)
            copy_split(block, flat[start:start + n].swapaxes(0, 1), axis=1)
        return block.reshape(self.group, -1, n * flat.shape[2])

    # -- im2col / col2im --------------------------------------------------------------------------
    def _column_blocks(self, data, keep=False, reuse=False):
        """Yield (start, columns) over blocks of images; columns[c, *k, i, *p] = padded x[start + i, c, p*s + k*d],
        so (C*K, n*P) in memory: one matrix product covers every image of the block and, reshaped, every group.

        A forward with `keep` leaves the columns of a one-block batch in this layer's workspace; the backward that
        follows (`reuse`, same input array) takes them instead of redoing im2col, as its input has not changed in
        between (Caffe's solver loop; pycaffe's forward then backward).
        """
        token = (data.__array_interface__["data"][0], data.shape, self._batch_last)
        kept, self._kept = self._kept, None
        if self._batch_last:
            shape = (self.col_channels,) + self.kernel + self.conv_shape + (self.batch,)
        else:
            shape = (self.col_channels,) + self.kernel + (self.batch,) + self.conv_shape
        if reuse and kept == token:
            yield 0, self._work.get("cols", shape, self.dtype)
            return
        scratch = None if self.need_backward else self._work
        if self._batch_last:
            yield 0, self._columns_last(data, scratch)
        else:
            padded = self._bordered.load(data, self.pad, self.padded_shape, scratch)
            for start in range(0, self.batch, self.block):
                yield start, self._columns(padded[start:start + self.block], self.stride, self.dilation,
                                           self.conv_shape)
        if keep and self.block >= self.batch:
            self._kept = token

    def _columns(self, block, stride, dilation, out_shape):
        """im2col of one block of padded images (n, C, *padded): the columns (C, *k, n, *out) in the workspace."""
        spatial = self.num_spatial
        windows = window_view(block, self.kernel, stride, dilation, out_shape)
        # window_view gives (n, C, *k, *p); the column layout wants (C, *k, n, *p).
        order = (1,) + tuple(range(2, 2 + spatial)) + (0,) + tuple(range(2 + spatial, 2 + 2 * spatial))
        cols = self._work.get("cols", (block.shape[1],) + self.kernel + (len(block),) + tuple(out_shape), self.dtype)
        copy_split(cols, windows.transpose(order), axis=1 + spatial)
        return cols

    def _columns_last(self, data, scratch):
        """im2col with images last, for stride 1 (see `_batch_last`): the columns (C, *k, *out, n) of the images
        (n, C, *in), copied from a bordered copy of them with images last (C, *padded, n), so that each copy runs
        over whole rows of every image at once. The images go into the border in the same pass that moves their
        axis, where bordering them first took one more copy of the input (in-process A/B on the 2-core VM,
        forward at batch 10, 20 alternations: CaffeNet's conv3-5 58.4 -> 55.2 and 63.7 -> 60.4 ms; GoogLeNet's
        inception 4a-5b 3x3 and 5x5, 99.4 -> 94.6 ms)."""
        images_last = np.moveaxis(self._col_side(data), 0, -1)
        if any(self.pad):
            moved = self._bordered.load(images_last, self.pad + (0,), self.padded_shape + (self.batch,), scratch)
        else:
            moved = self._work.get("images_last", images_last.shape, self.dtype)
            copy_split(moved, images_last)
        unit = (1,) * self.num_spatial
        windows = window_view(np.moveaxis(moved, -1, 0), self.kernel, unit, unit, self.conv_shape)
        cols = self._work.get("cols", (self.col_channels,) + self.kernel + self.conv_shape + (self.batch,), self.dtype)
        copy_split(cols, np.moveaxis(windows, 0, -1))
        return cols

    def _add_columns(self, cols, x_sum):
        """col2im: add column values (C, *k, n, *p) into x_sum (C, n, *padded), one strided slice per kernel offset;
        with `_batch_last`, (C, *k, *p, n) into (C, *padded, n), split over channels instead of images."""
        def add(lo, hi):
            images = slice(lo, hi)
            for offset, cells in zip(kernel_offsets(self.kernel), self._cells):
                add_into(x_sum[(slice(None), images) + cells], cols[(slice(None),) + offset + (images,)],
                         self._disjoint)

        def add_last(lo, hi):
            channels = slice(lo, hi)
            for offset, cells in zip(kernel_offsets(self.kernel), self._cells):
                add_into(x_sum[(channels,) + cells], cols[(channels,) + offset], self._disjoint)

        if self._batch_last:
            over_batch(x_sum.shape[0], add_last, cols.size)
        else:
            over_batch(x_sum.shape[1], add, cols.size)

    # -- depthwise: no columns, a sum over kernel offsets -------------------------------------------
    def _plan_depthwise(self):
        """How each kernel offset reads the padded (image, channel) rows.

        With stride 1 on every axis the "wide" layout is used: outputs are computed at every padded position of
        the axes after the first, so one kernel offset reads one contiguous run of each flat padded row (long
        inner loops; the extra positions are cropped away, and a tail past the buffer keeps the last run in
        range: each offset's view spans whole rows). Otherwise each offset reads an exact strided window.
        """
        self._rows = self.batch * self.group
        self._row_size = count(self.padded_shape)
        self._wide = all(s == 1 for s in self.stride)
        if self._wide:
            steps = [count(self.padded_shape, i + 1) for i in range(self.num_spatial)]
            extents = [d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation)]
            self._wide_shape = self.conv_shape[:1] + self.padded_shape[1:]
            self._positions = (count(self._wide_shape),)
            self._tail = sum((e - 1) * step for e, step in zip(extents, steps))
            self._starts = [
                sum(k * d * step for k, d, step in zip(offset, self.dilation, steps))
                for offset in kernel_offsets(self.kernel)
            ]
            self._valid = (slice(None), slice(None), slice(None)) + tuple(slice(0, n) for n in self.conv_shape[1:])
        else:
            self._positions = self.conv_shape
            self._tail = 0
        # Row blocks small enough to stay in cache through every kernel offset.
        self._block_rows = min(self._rows, max(1, DEPTHWISE_BLOCK // max(1, self.multiplier * count(self._positions))))
        self._row_blocks = [(start, min(start + self._block_rows, self._rows))
                            for start in range(0, self._rows, self._block_rows)]

    def _offset_reads(self, flat):
        """For each kernel offset, the (rows, *positions) view of the flat padded rows it reads."""
        if self._wide:
            length = self._positions[0]
            return [
                flat[start:start + self._rows * self._row_size].reshape(self._rows, self._row_size)[:, :length]
                for start in self._starts
            ]
        rows = flat[:self._rows * self._row_size].reshape((self._rows,) + self.padded_shape)
        return [rows[(slice(None),) + cells] for cells in self._cells]

    def _depthwise_weights(self, array):
        """W (g * m, 1, *k) as (rows, m, K): the m filters of each (image, channel) row, batch after batch."""
        weight = array.reshape(self.group, self.multiplier, -1)
        return np.broadcast_to(weight, (self.batch,) + weight.shape).reshape(self._rows, self.multiplier, -1)

    def _spread(self, values):
        """Per-row values, (r,) or (r, m), shaped to broadcast against (r, *positions) or (r, m, *positions)."""
        return values.reshape(values.shape + (1,) * len(self._positions))

    def _to_positions(self, y):
        """An output-side blob as (rows, m, *positions), zero at the wide layout's extra positions."""
        split = (self._rows, self.multiplier)
        if not self._wide:
            return y.reshape(split + self.conv_shape)
        wide = self._work.zeros("wide_in", split + self._positions, self.dtype)
        wide.reshape(split + self._wide_shape)[self._valid] = y.reshape(split + self.conv_shape)
        return wide

    def _depthwise_col_pass(self, x, apply_to, bias, weight_grad_with):
        flat = self._bordered.load_flat(x, self.pad, self.padded_shape, self._tail)
        reads = self._offset_reads(flat)
        weight = self._depthwise_weights(self.params[0].data)
        shape = (self._rows, self.multiplier) + self._positions
        y = None
        if apply_to is not None:
            y = self._work.get("wide_out", shape, self.dtype) if self._wide else apply_to.reshape(shape)
        dy = self._to_positions(weight_grad_with) if weight_grad_with is not None else None
        row_grad = self._work.get("row_grad", weight.shape, self.dtype) if dy is not None else None
        term = self._work.get("term", (self._block_rows,) + shape[1:], self.dtype)
        for start, stop in self._row_blocks:
            part = term[:stop - start]
            for index, read in enumerate(reads):
                window = read[start:stop, None]
                if y is not None:
                    tap = self._spread(weight[start:stop, :, index])
                    if index == 0:
                        np.multiply(window, tap, out=y[start:stop])
                    else:
                        np.multiply(window, tap, out=part)
                        y[start:stop] += part
                if dy is not None:
                    row_grad[start:stop, :, index] = np.matmul(
                        dy[start:stop].reshape(stop - start, self.multiplier, -1),
                        window.reshape(stop - start, -1, 1))[..., 0]
        if y is not None:
            self._finish_output(y, apply_to, bias)
        if dy is not None:
            per_channel = row_grad.reshape(self.batch, self.group, self.multiplier, -1).sum(axis=0)
            self.params[0].grad.reshape(per_channel.shape)[...] += per_channel

    def _finish_output(self, y, apply_to, bias):
        target = apply_to.reshape((self._rows, self.multiplier) + self.conv_shape)
        if self._wide:
            target[...] = y.reshape((self._rows, self.multiplier) + self._wide_shape)[self._valid]
        if bias is not None:
            apply_to.reshape(self.batch, self.out_channels, -1)[...] += bias[:, None]

    def _depthwise_transpose_pass(self, y, x_out):
        weight = self._depthwise_weights(self.params[0].data)
        dy = self._to_positions(y)
        x_sum = self._work.zeros("x_sum", (self._rows * self._row_size + self._tail,), self.dtype)
        reads = self._offset_reads(x_sum)
        term = self._work.get("term", (self._block_rows,) + self._positions, self.dtype)
        # Wide runs of different offsets overlap even where exact windows would not.
        disjoint = self._disjoint and not self._wide
        for start, stop in self._row_blocks:
            part = term[:stop - start]
            for index, read in enumerate(reads):
                if self.multiplier == 1:
                    np.multiply(dy[start:stop, 0], self._spread(weight[start:stop, 0, index]), out=part)
                else:
                    filters = dy[start:stop].reshape(stop - start, self.multiplier, -1)
                    np.matmul(weight[start:stop, None, :, index], filters, out=part.reshape(stop - start, 1, -1))
                add_into(read[start:stop], part, disjoint)
        padded = x_sum[:self._rows * self._row_size].reshape((self.batch, self.group) + self.padded_shape)
        x_out[...] = padded[(Ellipsis,) + interior(self.pad, self.col_shape)]
