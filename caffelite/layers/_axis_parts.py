"""What Concat and Slice share: the joining axis (with its legacy unsigned alias) and the block of each part."""

from caffelite.errors import NetError, ShapeError
from caffelite.layers._axis import canonical_axis


def check_axis_options(layer, options, legacy_name):
    """`axis` and its legacy alias (`concat_dim` / `slice_dim`) exclude each other."""
    if options.HasField("axis") and options.HasField(legacy_name):
        raise NetError(f"{layer.describe()}: give either axis or {legacy_name}, not both")


def parts_axis(layer, options, legacy_name, num_axes):
    """The axis to join or split along; the legacy alias is unsigned, so it never counts from the end."""
    if options.HasField(legacy_name):
        axis = getattr(options, legacy_name)
        if axis >= num_axes:
            raise ShapeError(f"{layer.describe()}: {legacy_name} {axis} out of range for a {num_axes}-axis blob")
        return axis
    return canonical_axis(layer, options.axis, num_axes)


def part_indices(axis, sizes):
    """For consecutive parts of the given sizes along `axis`, the index of each part's block in the whole."""
    indices, start = [], 0
    for size in sizes:
        indices.append((slice(None),) * axis + (slice(start, start + size),))
        start += size
    return indices
