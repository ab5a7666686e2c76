"""HDF5Data: rows of the datasets named after the tops, file after file, wrapping; shuffle permutes files and rows."""

import h5py
import numpy as np
import pytest
from layer_harness import make_layer, run_forward
from shared_data import shared_path

from caffelite.errors import CaffeliteError, FileFormatError, NetError


def hdf5_layer(source, batch_size, tops=("data", "label"), extra="", seed=1701):
    top_text = " ".join(f'top: "{name}"' for name in tops)
    text = (f'name: "h5" type: "HDF5Data" {top_text} '
            f'hdf5_data_param {{ source: "{source}" batch_size: {batch_size} {extra} }}')
    return make_layer(text, [], seed=seed)


def write_files(tmp_path, sizes, item_shape=(2, 3)):
    """One .h5 file per size; row r of file f holds data f*100 + r everywhere and label f*100 + r."""
    names = []
    for f, size in enumerate(sizes):
        rows = f * 100 + np.arange(size)
        path = tmp_path / f"part{f}.h5"
        with h5py.File(path, "w") as handle:
            handle["data"] = np.broadcast_to(rows.reshape((-1,) + (1,) * len(item_shape)), (size,) + item_shape)
            handle["label"] = rows.astype(np.int32)
        names.append(str(path))
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(names) + "\n")
    return listing


def test_caffe_sample_data_like_caffes_test_read(monkeypatch):
    # The list names the files relative to Caffe's root, which must be the current directory (as in Caffe).
    root = shared_path("conformance", "bvlc_caffe")
    monkeypatch.chdir(root)
    layer, bottom, top = hdf5_layer("src/caffe/test/test_data/sample_data_list.txt", 5, ("data", "label", "label2"))
    assert top[0].shape == (5, 8, 6, 5) and top[1].shape == (5, 1) and top[2].shape == (5, 1)
    data_size = 8 * 6 * 5
    for iteration in range(10):
        data, label, label2 = run_forward(layer, bottom, top)
        label_offset = 1 + (0 if iteration % 2 == 0 else 5)
        data_offset = 0 if iteration % 2 == 0 else 5 * data_size
        file_offset = 0 if iteration % 4 < 2 else 2400  # the second file's data is shifted by 2400
        np.testing.assert_array_equal(label.ravel(), label_offset + np.arange(5))
        np.testing.assert_array_equal(label2.ravel(), label_offset + 1 + np.arange(5))
        expected = file_offset + data_offset + np.arange(5 * data_size).reshape(5, 8, 6, 5)
        np.testing.assert_array_equal(data, expected)


def test_batches_cross_files_and_wrap(tmp_path):
    listing = write_files(tmp_path, [3, 2])
    layer, bottom, top = hdf5_layer(listing, 4)
    assert top[0].shape == (4, 2, 3) and top[1].shape == (4,)
    order = [0, 1, 2, 100, 101]
    for batch in range(4):
        expected = [order[(batch * 4 + i) % 5] for i in range(4)]
        data, label = run_forward(layer, bottom, top)
        np.testing.assert_array_equal(label, expected)
        np.testing.assert_array_equal(data, np.broadcast_to(np.array(expected)[:, None, None], (4, 2, 3)))


def test_shuffle_permutes_files_and_rows_and_keeps_rows_together(tmp_path):
    listing = write_files(tmp_path, [4, 4, 4], item_shape=(2,))
    layer, bottom, top = hdf5_layer(listing, 6, extra="shuffle: true", seed=3)
    seen = []
    for _ in range(4):  # two full passes over the 12 rows
        data, label = run_forward(layer, bottom, top)
        np.testing.assert_array_equal(data, np.stack([label, label], axis=1))
        seen.extend(label.tolist())
    everything = sorted(f * 100 + r for f in range(3) for r in range(4))
    for one_pass in (seen[:12], seen[12:]):
        assert sorted(one_pass) == everything
        files = [value // 100 for value in one_pass]
        assert files == sorted(files, key=lambda f: files.index(f))  # one file at a time
    assert seen[:12] != sorted(seen[:12]) or seen[12:] != sorted(seen[12:])
    again = hdf5_layer(listing, 6, extra="shuffle: true", seed=3)
    assert [run_forward(*again)[1].tolist() for _ in range(4)] == [seen[i : i + 6] for i in range(0, 24, 6)]


def test_single_file_reshuffles_its_rows_each_pass(tmp_path):
    listing = write_files(tmp_path, [5])
    layer, bottom, top = hdf5_layer(listing, 5, extra="shuffle: true", seed=11)
    passes = [run_forward(layer, bottom, top)[1].tolist() for _ in range(6)]
    assert all(sorted(p) == list(range(5)) for p in passes)
    assert len({tuple(p) for p in passes}) > 1


def test_errors_name_the_files(tmp_path):
    with pytest.raises(CaffeliteError, match=r"layer 'h5' \(HDF5Data\): HDF5 file list .*absent.txt' does not exist"):
        hdf5_layer(tmp_path / "absent.txt", 2)
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'missing.h5'}\n")
    with pytest.raises(CaffeliteError, match=r"list.txt:1: HDF5 file .*missing.h5' does not exist"):
        hdf5_layer(listing, 2)
    listing = write_files(tmp_path, [2])
    with pytest.raises(FileFormatError, match=r"has no dataset 'target' \(datasets: data, label\)"):
        hdf5_layer(listing, 2, tops=("data", "target"))
    with h5py.File(tmp_path / "part0.h5", "a") as handle:
        handle["short"] = np.zeros(1)
    with pytest.raises(FileFormatError, match="dataset 'short' has 1 rows, but dataset 'data' has 2"):
        hdf5_layer(listing, 2, tops=("data", "short"))
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(FileFormatError, match="lists no files"):
        hdf5_layer(tmp_path / "empty.txt", 2)


def test_a_later_file_with_other_row_shapes_fails_at_forward(tmp_path):
    listing = write_files(tmp_path, [2])
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle["data"] = np.zeros((2, 5))
        handle["label"] = np.zeros(2)
    listing.write_text(f"{tmp_path / 'part0.h5'}\n{tmp_path / 'other.h5'}\n")
    layer, bottom, top = hdf5_layer(listing, 2)
    with pytest.raises(FileFormatError, match=r"list.txt:2: .*rows of shape \(5,\), but the first file's have "
                                              r"shape \(2, 3\)"):
        run_forward(layer, bottom, top)


def test_transform_param_and_batch_size_are_refused(tmp_path):
    listing = write_files(tmp_path, [2])
    with pytest.raises(NetError, match="does not transform data"):
        make_layer(f'name: "h5" type: "HDF5Data" top: "data" transform_param {{ scale: 2 }} '
                   f'hdf5_data_param {{ source: "{listing}" batch_size: 2 }}', [])
    with pytest.raises(NetError, match="batch_size must be positive"):
        hdf5_layer(listing, 0)
