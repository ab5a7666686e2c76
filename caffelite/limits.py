"""How large an array caffelite agrees to make from a prototxt or a file: refused before numpy allocates it.

A hostile or mistaken file can claim any shape (a Tile of two billion copies, a 10^9 kernel, an HDF5 dataset of
10^12 cells stored in a few bytes). Caffe refuses a blob of more than INT_MAX elements; an array larger than the
machine's memory cannot be meant either. Both are refused here with a ShapeError naming the shape, which the Net
prefixes with the layer.
"""

import os

from caffelite.errors import ShapeError

MAX_COUNT = 2**31 - 1  # Caffe's Blob: CHECK_LE(count_, INT_MAX)


def physical_memory():
    """Bytes of memory this machine has (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


_MEMORY = physical_memory()


def check_size(shape, itemsize, what="an array"):
    """Raise ShapeError if `shape` has more elements than a blob may hold or needs more bytes than the machine has."""
    count = 1
    for dim in shape:
        count *= int(dim)
    if count > MAX_COUNT:
        raise ShapeError(f"{what} of shape {tuple(shape)} would hold {count} values, more than a blob may "
                         f"({MAX_COUNT}, Caffe's limit)")
    if _MEMORY is not None and count * itemsize > _MEMORY:
        raise ShapeError(f"{what} of shape {tuple(shape)} would need {count * itemsize / 2**30:.1f} GiB, more "
                         f"than this machine's {_MEMORY / 2**30:.1f} GiB")
