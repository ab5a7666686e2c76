"""caffelite.data.db: read-only LMDB cursors (order, wrap-around, rand_skip), errors, and the batching writer."""

import lmdb
import numpy as np
import pytest

from caffelite.data import db
from caffelite.errors import CaffeliteError, FileFormatError
from caffelite.proto import caffe_pb2
from caffelite.rng import set_random_seed


def make_lmdb(path, records):
    """Write {key: value} with the raw lmdb package, independently of the writer under test."""
    env = lmdb.open(str(path), map_size=16 << 20, subdir=True)
    with env.begin(write=True) as txn:
        for key, value in records.items():
            txn.put(key, value)
    env.close()
    return path


def numbered(count):
    return {b"%08d" % i: b"value-%d" % i for i in range(count)}


def test_cursor_walks_in_key_order(tmp_path):
    records = {b"b": b"2", b"c": b"3", b"a": b"1", b"aa": b"11"}  # inserted out of order
    with db.open_db(make_lmdb(tmp_path / "x_lmdb", records), "lmdb") as database:
        assert len(database) == 4
        cursor = database.cursor()
        assert cursor.read(4) == [(b"a", b"1"), (b"aa", b"11"), (b"b", b"2"), (b"c", b"3")]


def test_cursor_wraps_around_to_the_first_record(tmp_path):
    with db.open_db(make_lmdb(tmp_path / "x_lmdb", numbered(3)), caffe_pb2.DataParameter.LMDB) as database:
        cursor = database.cursor()
        keys = [key for key, _ in cursor.read(8)]
        assert keys == [b"%08d" % i for i in (0, 1, 2, 0, 1, 2, 0, 1)]
        assert cursor.epochs == 2
        assert (cursor.key, cursor.value) == (b"00000002", b"value-2")
        cursor.next()
        assert cursor.key == b"00000000"


def test_one_source_can_be_opened_by_several_readers_at_once(tmp_path):
    """Two test nets (or train and test nets) often read one LMDB; LMDB itself allows one open per process."""
    path = make_lmdb(tmp_path / "x_lmdb", numbered(3))
    first = db.open_db(path)
    second = db.open_db(tmp_path / "." / "x_lmdb")
    assert first.cursor().read(2) == second.cursor().read(2)
    first.close()
    assert [key for key, _ in second.cursor().read(3)] == [b"%08d" % i for i in range(3)]
    second.close()
    with db.open_db(path) as third:  # reopened after the last close
        assert len(third) == 3


def test_rand_skip_starts_at_a_seeded_random_offset_below_rand_skip(tmp_path):
    source = make_lmdb(tmp_path / "x_lmdb", numbered(50))
    with db.open_db(source) as database:
        for seed in range(20):
            expected = int(np.random.default_rng(seed).integers(7))
            cursor = database.cursor(rand_skip=7, generator=np.random.default_rng(seed))
            assert cursor.key == b"%08d" % expected
        starts = set()
        for seed in range(40):
            set_random_seed(seed)  # the default generator is caffelite's
            starts.add(database.cursor(rand_skip=7).key)
        assert starts <= {b"%08d" % i for i in range(7)} and len(starts) > 3
        set_random_seed(3)
        first = database.cursor(rand_skip=7).key
        set_random_seed(3)
        assert database.cursor(rand_skip=7).key == first


def test_rand_skip_larger_than_the_database_wraps(tmp_path):
    with db.open_db(make_lmdb(tmp_path / "x_lmdb", numbered(3))) as database:
        skip = int(np.random.default_rng(5).integers(100))
        cursor = database.cursor(rand_skip=100, generator=np.random.default_rng(5))
        assert cursor.key == b"%08d" % (skip % 3)


def test_missing_source_names_the_path_and_the_layer(tmp_path):
    missing = tmp_path / "nowhere_lmdb"
    with pytest.raises(CaffeliteError, match=r"layer 'mnist' \(Data\): data source '.*nowhere_lmdb' does not exist"):
        db.open_db(missing, "lmdb", layer="layer 'mnist' (Data)")


def test_leveldb_is_refused_with_a_conversion_hint(tmp_path):
    source = make_lmdb(tmp_path / "x_lmdb", numbered(2))
    with pytest.raises(CaffeliteError) as caught:
        db.open_db(source, caffe_pb2.DataParameter.LEVELDB, layer="layer 'data' (Data)")
    message = str(caught.value)
    assert "LevelDB is not supported yet" in message
    assert "caffelite convert_imageset --backend lmdb" in message
    assert "backend: LMDB" in message and "layer 'data' (Data)" in message
    with pytest.raises(CaffeliteError, match="LevelDB is not supported yet"):
        db.open_writer(tmp_path / "new_leveldb", backend="leveldb")


def test_backend_names():
    assert db.backend_name(caffe_pb2.DataParameter.LMDB) == "lmdb"
    assert db.backend_name(caffe_pb2.DataParameter.LEVELDB) == "leveldb"
    assert db.backend_name("LMDB") == "lmdb"
    with pytest.raises(CaffeliteError, match="unknown database backend 'rocksdb'"):
        db.backend_name("rocksdb")


def test_a_directory_that_is_not_an_lmdb_is_a_clear_error(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(FileFormatError, match="cannot open .*images' as an LMDB database"):
        db.open_db(tmp_path / "images")


def test_an_empty_database_is_an_error(tmp_path):
    with pytest.raises(FileFormatError, match="is empty"):
        db.open_db(make_lmdb(tmp_path / "x_lmdb", {})).cursor()


def test_a_bare_mdb_file_opens_too(tmp_path):
    env = lmdb.open(str(tmp_path / "flat.mdb"), subdir=False, map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"k", b"v")
    env.close()
    with db.open_db(tmp_path / "flat.mdb") as database:
        assert database.cursor().read(1) == [(b"k", b"v")]


def test_writer_commits_in_batches_and_grows_the_map(tmp_path):
    path = tmp_path / "out_lmdb"
    value = bytes(range(256)) * 8  # 2 KiB: 3000 records need far more than the 64 KiB map we start with
    writer = db.open_writer(path, commit_every=1000, map_size=64 << 10)
    for i in range(3000):
        writer.put("%08d" % i, value + b"%d" % i)
        assert writer.count == (i + 1) // 1000 * 1000
    writer.close()
    writer.close()  # idempotent
    with db.open_db(path) as database:
        assert len(database) == 3000
        records = database.cursor().read(3000)
    assert [k for k, _ in records] == [b"%08d" % i for i in range(3000)]
    assert all(v == value + b"%d" % i for i, (_, v) in enumerate(records))


def test_writer_context_drops_the_uncommitted_batch_on_error(tmp_path):
    path = tmp_path / "out_lmdb"
    with pytest.raises(RuntimeError):
        with db.open_writer(path, commit_every=10) as writer:
            for i in range(25):
                writer.put(b"%08d" % i, b"x")
            raise RuntimeError("interrupted")
    with db.open_db(path) as database:
        assert len(database) == 20


def test_writer_refuses_an_existing_path(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(CaffeliteError, match="already exists; refusing to overwrite"):
        db.open_writer(tmp_path / "taken")
    with pytest.raises(CaffeliteError, match="does not exist"):
        db.open_writer(tmp_path / "no" / "such" / "dir")
