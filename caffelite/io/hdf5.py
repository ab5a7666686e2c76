"""HDF5 weights and solver states in Caffe's layout (h5py), written atomically.

Weights (`.caffemodel.h5`, Caffe's Net::ToHDF5):
    /data/<layer name>/<i>   float dataset of blob i's shape, for every layer (a group even without blobs);
                             a blob shared from another layer is left out, its owner holds it
    /diff/<layer name>/<i>   the same for the gradients, only when asked for (snapshot_diff), shared blobs included
Solver state (`.solverstate.h5`, Caffe's SnapshotSolverStateToHDF5):
    /iter, /current_step     int32 datasets of shape (1,)
    /learned_net             a scalar, fixed-length, NUL-terminated string: the weights file
    /history/<i>             one float dataset per history blob, in SolverState order
"""

import io
import logging
import os
from dataclasses import dataclass

import numpy as np

from caffelite.errors import CaffeliteError, FileFormatError, ShapeError
from caffelite.io.files import atomic_write
from caffelite.limits import check_size

log = logging.getLogger("caffelite")

# The HDF5 format signature; H5Fis_hdf5 looks for it at offset 0 and at every power of two from 512 on
# (a file may carry a user block in front of the superblock).
_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _h5py():
    # Imported when first needed: `import caffelite` should not pay for HDF5 unless it is used.
    import h5py

    return h5py


@dataclass
class HDF5SolverState:
    """What a .solverstate.h5 holds; `learned_net` is None when the file has no such dataset."""

    iter: int
    learned_net: str | None
    current_step: int
    history: list


# -- detection ----------------------------------------------------------------------------------
def is_hdf5(path):
    """True when `path` is a readable file carrying the HDF5 signature (Caffe's H5Fis_hdf5 test)."""
    try:
        with open(os.fspath(path), "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            offset = 0
            while offset + len(_SIGNATURE) <= size:
                handle.seek(offset)
                if handle.read(len(_SIGNATURE)) == _SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False
    return False


# -- weights ------------------------------------------------------------------------------------
def write_weights_hdf5(path, layers, write_diff=False):
    """Save weights atomically. `layers`: (layer name, [(data or None, diff), ...]) per layer, in net order.

    A None data entry is a blob shared from another layer: Caffe writes only its owner's data, but every diff.
    """

    def fill(handle):
        data_group = handle.create_group("data")
        diff_group = handle.create_group("diff") if write_diff else None
        for name, blobs in layers:
            layer_data = data_group.require_group(name)  # require: "a" may follow "a/b"
            layer_diff = diff_group.require_group(name) if write_diff else None
            for index, (data, diff) in enumerate(blobs):
                if data is not None:
                    layer_data.create_dataset(str(index), data=np.ascontiguousarray(data))
                if write_diff:
                    layer_diff.create_dataset(str(index), data=np.ascontiguousarray(diff))

    _write_atomically(path, fill)


def read_weights_hdf5(path):
    """{layer name: {blob index: array}} from the /data group of an HDF5 weights file.

    A layer name holding '/' is a nested group path (h5py creates the intermediate groups on writing).
    """
    name = os.fspath(path)

    def collect(handle):
        data_group = handle.get("data")
        if not isinstance(data_group, _h5py().Group):
            raise FileFormatError(f"{name}: an HDF5 weights file needs a /data group (Caffe's ToHDF5 layout)")
        layers = {}
        for layer_name, group in _layer_groups(data_group):
            blobs = {}
            for key, item in group.items():
                if not isinstance(item, _h5py().Dataset):
                    continue
                if not key.isdigit():
                    raise FileFormatError(f"{name}: dataset {item.name}: blobs are named by their index (0, 1, …)")
                blobs[int(key)] = _read_array(item, name)
            layers[layer_name] = blobs
        return layers

    return _read(name, collect)


def _layer_groups(data_group):
    """(relative path, group) for each group under /data that holds datasets or nothing at all."""
    h5py = _h5py()
    found = []

    def visit(relative, item):
        if not isinstance(item, h5py.Group):
            return
        children = list(item.values())
        if not children or any(isinstance(child, h5py.Dataset) for child in children):
            found.append((relative, item))

    data_group.visititems(visit)
    return found


# -- solver state -------------------------------------------------------------------------------
def write_solverstate_hdf5(path, iteration, learned_net, current_step, history):
    """Save a solver state atomically in Caffe's .solverstate.h5 layout."""

    def fill(handle):
        handle.create_dataset("iter", data=np.array([iteration], dtype=np.int32))
        _write_c_string(handle, "learned_net", learned_net)
        handle.create_dataset("current_step", data=np.array([current_step], dtype=np.int32))
        group = handle.create_group("history")
        for index, values in enumerate(history):
            group.create_dataset(str(index), data=np.ascontiguousarray(values))

    _write_atomically(path, fill)


def read_solverstate_hdf5(path):
    """The HDF5SolverState of a .solverstate.h5 file; history blobs in index order 0, 1, …"""
    name = os.fspath(path)

    def collect(handle):
        h5py = _h5py()
        for required in ("iter", "current_step"):
            if not isinstance(handle.get(required), h5py.Dataset):
                raise FileFormatError(f"{name}: an HDF5 solver state needs a /{required} dataset")
        group = handle.get("history")
        if not isinstance(group, h5py.Group):
            raise FileFormatError(f"{name}: an HDF5 solver state needs a /history group")
        history = []
        for index in range(len(group)):
            item = group.get(str(index))
            if not isinstance(item, h5py.Dataset):
                raise FileFormatError(
                    f"{name}: /history holds {len(group)} entries but no dataset named '{index}'"
                )
            history.append(_read_array(item, name))
        learned = handle.get("learned_net")
        return HDF5SolverState(
            iter=_read_int(handle["iter"], name),
            learned_net=None if learned is None else _read_string(learned, name),
            current_step=_read_int(handle["current_step"], name),
            history=history,
        )

    return _read(name, collect)


# -- helpers ------------------------------------------------------------------------------------
def _write_atomically(path, fill):
    """Build the whole file in memory, then hand its bytes to atomic_write (temp file, fsync, rename)."""
    buffer = io.BytesIO()
    with _h5py().File(buffer, "w") as handle:
        fill(handle)
    atomic_write(path, buffer.getvalue())


def _read(name, collect):
    """Open `name` read-only and run `collect` on it; HDF5 failures become errors that name the file."""
    h5py = _h5py()
    if not os.path.exists(name):
        raise CaffeliteError(f"{name}: no such file")
    try:
        with h5py.File(name, "r") as handle:
            return collect(handle)
    except CaffeliteError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise FileFormatError(f"{name}: not a readable HDF5 file (truncated or corrupt: {exc})") from None


def _read_array(dataset, name):
    # Caffe reads float and integer datasets (converting them to its Dtype) and refuses any other kind.
    if dataset.dtype.kind not in "fiu":
        raise FileFormatError(f"{name}: dataset {dataset.name} holds {dataset.dtype}, expected numbers")
    _check_dataset_size(dataset, name)
    return np.asarray(dataset[()])


def _check_dataset_size(dataset, name):
    """A dataset may declare far more cells than its file stores (unwritten chunks read as fill values)."""
    try:
        check_size(dataset.shape, dataset.dtype.itemsize, f"dataset {dataset.name}")
    except ShapeError as error:
        raise FileFormatError(f"{name}: {error}") from None


def _read_int(dataset, name):
    values = _read_array(dataset, name).ravel()
    if values.size != 1:
        raise FileFormatError(f"{name}: dataset {dataset.name} should hold one integer, holds {values.size}")
    return int(values[0])


def _read_string(dataset, name):
    value = dataset[()]
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size == 1 else None
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("utf-8")
    if isinstance(value, str):
        return value
    raise FileFormatError(f"{name}: dataset {dataset.name} should hold a string")


def _write_c_string(handle, key, text):
    """A scalar fixed-length string of len+1 bytes, NUL-terminated: what H5LTmake_dataset_string makes."""
    h5py = _h5py()
    encoded = text.encode("utf-8")
    string_type = h5py.h5t.C_S1.copy()
    string_type.set_size(len(encoded) + 1)
    string_type.set_strpad(h5py.h5t.STR_NULLTERM)
    space = h5py.h5s.create(h5py.h5s.SCALAR)
    dataset = h5py.h5d.create(handle.id, key.encode(), string_type, space)
    dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(encoded + b"\0", dtype=f"S{len(encoded) + 1}"))
