"""caffelite.data.mnist: IDX files (gzipped or raw) -> an LMDB of Datum records, as convert_mnist_data makes it."""

import gzip

import lmdb
import numpy as np
import pytest
from shared_data import shared_path

from caffelite.data import db
from caffelite.data.mnist import convert_mnist, read_idx_images
from caffelite.errors import CaffeliteError, FileFormatError
from caffelite.proto import caffe_pb2


def write_idx(path, magic, array, gz=False):
    header = np.array((magic,) + array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def tiny_mnist(directory, count=5, rows=3, cols=4, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, rows, cols), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    suffix = ".gz" if gz else ""
    image_file = write_idx(directory / f"images-idx3-ubyte{suffix}", 2051, images, gz)
    label_file = write_idx(directory / f"labels-idx1-ubyte{suffix}", 2049, labels, gz)
    return image_file, label_file, images, labels


def read_all(path):
    """Every (key, value) of an LMDB, read with the raw lmdb package."""
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        records = list(txn.cursor())
    env.close()
    return records


@pytest.mark.parametrize("gz", [False, True])
def test_every_image_becomes_one_datum_in_order(tmp_path, gz):
    image_file, label_file, images, labels = tiny_mnist(tmp_path, count=7, gz=gz)
    progress = []
    result = convert_mnist(image_file, label_file, tmp_path / "mnist_lmdb", progress=lambda *a: progress.append(a))
    assert (result.count, result.rows, result.cols) == (7, 3, 4)
    assert result.db_path == tmp_path / "mnist_lmdb"
    assert progress == [(0, 7), (7, 7)]
    records = read_all(tmp_path / "mnist_lmdb")
    assert [key for key, _ in records] == [b"%08d" % i for i in range(7)]
    for i, (_, value) in enumerate(records):
        datum = caffe_pb2.Datum.FromString(value)
        assert (datum.channels, datum.height, datum.width) == (1, 3, 4)
        assert datum.data == images[i].tobytes() and datum.label == labels[i]
        assert not datum.encoded and len(datum.float_data) == 0
        # Byte for byte what Caffe writes: channels, height, width, data, label (label 0 included).
        expected = bytes([0x08, 1, 0x10, 3, 0x18, 4, 0x22, 12]) + images[i].tobytes() + bytes([0x28, labels[i]])
        assert value == expected


def test_progress_reports_every_thousand_records(tmp_path):
    image_file, label_file, _, _ = tiny_mnist(tmp_path, count=2500, rows=2, cols=2)
    progress = []
    convert_mnist(image_file, label_file, tmp_path / "out", progress=lambda done, total: progress.append(done))
    assert progress == [0, 1000, 2000, 2500]
    assert len(read_all(tmp_path / "out")) == 2500


def test_bad_magic_names_the_file(tmp_path):
    image_file, label_file, _, _ = tiny_mnist(tmp_path)
    with pytest.raises(FileFormatError, match=r"'.*labels-idx1-ubyte' is not an MNIST image file: magic number 2049"):
        convert_mnist(label_file, label_file, tmp_path / "out")
    with pytest.raises(FileFormatError, match=r"'.*images-idx3-ubyte' is not an MNIST label file: magic number 2051"):
        convert_mnist(image_file, image_file, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_truncated_damaged_and_mismatched_files(tmp_path):
    image_file, label_file, _, _ = tiny_mnist(tmp_path, count=5)
    short = tmp_path / "short-idx3-ubyte"
    short.write_bytes(image_file.read_bytes()[:-3])
    with pytest.raises(FileFormatError, match=r"'.*short-idx3-ubyte' is truncated: .*5 x 3 x 4 = 60 bytes"):
        read_idx_images(short)
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(FileFormatError, match="too short"):
        read_idx_images(tmp_path / "tiny")
    damaged = tmp_path / "damaged.gz"
    damaged.write_bytes(gzip.compress(image_file.read_bytes())[:-10])
    with pytest.raises(FileFormatError, match=r"'.*damaged.gz' is a damaged gzip file"):
        read_idx_images(damaged)
    other_labels = write_idx(tmp_path / "six-labels", 2049, np.zeros(6, np.uint8))
    with pytest.raises(FileFormatError, match=r"holds 5 images but '.*six-labels' holds 6 labels"):
        convert_mnist(image_file, other_labels, tmp_path / "out")
    with pytest.raises(CaffeliteError, match=r"MNIST file '.*absent' does not exist"):
        convert_mnist(tmp_path / "absent", label_file, tmp_path / "out")


def test_an_existing_database_is_never_overwritten(tmp_path):
    image_file, label_file, _, _ = tiny_mnist(tmp_path)
    existing = tmp_path / "mnist_lmdb"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    with pytest.raises(CaffeliteError, match="already exists; refusing to overwrite"):
        convert_mnist(image_file, label_file, existing)
    assert (existing / "keep.txt").read_text() == "mine"


def test_an_interrupted_conversion_leaves_nothing_behind(tmp_path, monkeypatch):
    image_file, label_file, _, _ = tiny_mnist(tmp_path, count=2500, rows=2, cols=2)
    real_put = db.LmdbWriter.put
    calls = []

    def failing_put(self, key, value):
        calls.append(key)
        if len(calls) == 1500:  # one batch of 1000 is already committed
            raise KeyboardInterrupt
        real_put(self, key, value)

    monkeypatch.setattr(db.LmdbWriter, "put", failing_put)
    with pytest.raises(KeyboardInterrupt):
        convert_mnist(image_file, label_file, tmp_path / "mnist_lmdb")
    assert not (tmp_path / "mnist_lmdb").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images-idx3-ubyte", "labels-idx1-ubyte"]


def test_leveldb_output_holds_the_same_records(tmp_path):
    image_file, label_file, _, _ = tiny_mnist(tmp_path)
    convert_mnist(image_file, label_file, tmp_path / "mnist_lmdb")
    convert_mnist(image_file, label_file, tmp_path / "mnist_leveldb", backend="leveldb")
    with db.open_db(tmp_path / "mnist_leveldb", "leveldb") as database:
        assert list(database.items()) == read_all(tmp_path / "mnist_lmdb")


def test_real_mnist_test_set(tmp_path):
    image_file = shared_path("data", "mnist", "t10k-images-idx3-ubyte.gz")
    label_file = shared_path("data", "mnist", "t10k-labels-idx1-ubyte.gz")
    result = convert_mnist(image_file, label_file, tmp_path / "mnist_test_lmdb")
    assert (result.count, result.rows, result.cols) == (10000, 28, 28)
    with db.open_db(tmp_path / "mnist_test_lmdb") as database:
        assert len(database) == 10000
        key, value = database.cursor().read(1)[0]
    datum = caffe_pb2.Datum.FromString(value)
    assert key == b"00000000" and datum.label == 7
    assert (datum.channels, datum.height, datum.width) == (1, 28, 28)
    assert datum.data == read_idx_images(image_file)[0].tobytes()
