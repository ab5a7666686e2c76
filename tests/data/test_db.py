"""caffelite.data.db: read-only LMDB and LevelDB cursors (order, wrap-around, rand_skip), errors, and the batching
writers."""

import sys

import lmdb
import numpy as np
import plyvel
import pytest

from caffelite.data import db
from caffelite.errors import CaffeliteError, FileFormatError
from caffelite.proto import caffe_pb2
from caffelite.rng import set_random_seed

BACKENDS = ["lmdb", "leveldb"]


def make_lmdb(path, records):
    """Write {key: value} with the raw lmdb package, independently of the writer under test."""
    env = lmdb.open(str(path), map_size=16 << 20, subdir=True)
    with env.begin(write=True) as txn:
        for key, value in records.items():
            txn.put(key, value)
    env.close()
    return path


def make_leveldb(path, records):
    """Write {key: value} with the raw plyvel package, independently of the writer under test."""
    handle = plyvel.DB(str(path), create_if_missing=True)
    for key, value in records.items():
        handle.put(key, value)
    handle.close()
    return path


def make_db(path, records, backend):
    return (make_leveldb if backend == "leveldb" else make_lmdb)(path, records)


def read_leveldb(path):
    handle = plyvel.DB(str(path))
    try:
        return list(handle.iterator())
    finally:
        handle.close()


def numbered(count):
    return {b"%08d" % i: b"value-%d" % i for i in range(count)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_cursor_walks_in_key_order(tmp_path, backend):
    records = {b"b": b"2", b"c": b"3", b"a": b"1", b"aa": b"11"}  # inserted out of order
    with db.open_db(make_db(tmp_path / "x_db", records, backend), backend) as database:
        assert len(database) == 4
        cursor = database.cursor()
        assert cursor.read(4) == [(b"a", b"1"), (b"aa", b"11"), (b"b", b"2"), (b"c", b"3")]
        assert list(database.items()) == sorted(records.items())


@pytest.mark.parametrize("backend", [caffe_pb2.DataParameter.LMDB, caffe_pb2.DataParameter.LEVELDB])
def test_cursor_wraps_around_to_the_first_record(tmp_path, backend):
    name = db.backend_name(backend)
    with db.open_db(make_db(tmp_path / "x_db", numbered(3), name), backend) as database:
        cursor = database.cursor()
        keys = [key for key, _ in cursor.read(8)]
        assert keys == [b"%08d" % i for i in (0, 1, 2, 0, 1, 2, 0, 1)]
        assert cursor.epochs == 2
        assert (cursor.key, cursor.value) == (b"00000002", b"value-2")
        cursor.next()
        assert cursor.key == b"00000000"
        cursor.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_source_can_be_opened_by_several_readers_at_once(tmp_path, backend):
    """Two test nets (or train and test nets) often read one source; LMDB and LevelDB allow one open per process."""
    path = make_db(tmp_path / "x_db", numbered(3), backend)
    first = db.open_db(path, backend)
    second = db.open_db(tmp_path / "." / "x_db", backend)
    assert first.cursor().read(2) == second.cursor().read(2)
    first.close()
    assert [key for key, _ in second.cursor().read(3)] == [b"%08d" % i for i in range(3)]
    second.close()
    with db.open_db(path, backend) as third:  # reopened after the last close
        assert len(third) == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_rand_skip_starts_at_a_seeded_random_offset_below_rand_skip(tmp_path, backend):
    source = make_db(tmp_path / "x_db", numbered(50), backend)
    with db.open_db(source, backend) as database:
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_rand_skip_larger_than_the_database_wraps(tmp_path, backend):
    with db.open_db(make_db(tmp_path / "x_db", numbered(3), backend), backend) as database:
        skip = int(np.random.default_rng(5).integers(100))
        cursor = database.cursor(rand_skip=100, generator=np.random.default_rng(5))
        assert cursor.key == b"%08d" % (skip % 3)


def test_missing_source_names_the_path_and_the_layer(tmp_path):
    missing = tmp_path / "nowhere_lmdb"
    with pytest.raises(CaffeliteError, match=r"layer 'mnist' \(Data\): data source '.*nowhere_lmdb' does not exist"):
        db.open_db(missing, "lmdb", layer="layer 'mnist' (Data)")


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


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_empty_database_is_an_error(tmp_path, backend):
    with pytest.raises(FileFormatError, match="is empty"):
        db.open_db(make_db(tmp_path / "x_db", {}, backend), backend).cursor()


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


def test_leveldb_writer_commits_in_batches_with_caffes_options(tmp_path, monkeypatch):
    opened = []
    real_db = plyvel.DB

    def spy(name, **options):
        opened.append(options)
        return real_db(name, **options)

    monkeypatch.setattr(plyvel, "DB", spy)
    path = tmp_path / "out_leveldb"
    writer = db.open_writer(path, backend=caffe_pb2.DataParameter.LEVELDB, commit_every=1000)
    assert opened == [{
        "create_if_missing": True, "error_if_exists": True,
        "block_size": 65536, "write_buffer_size": 268435456, "max_open_files": 100,
    }]
    for i in range(2500):
        writer.put("%08d" % i, b"v%d" % i)
        assert writer.count == (i + 1) // 1000 * 1000
    writer.close()
    writer.close()  # idempotent
    assert writer.count == 2500
    monkeypatch.undo()
    records = read_leveldb(path)
    assert records == [(b"%08d" % i, b"v%d" % i) for i in range(2500)]
    with db.open_db(path, "leveldb") as database:
        assert len(database) == 2500
        assert database.cursor().read(2) == records[:2]


def test_leveldb_writer_context_drops_the_uncommitted_batch_on_error(tmp_path):
    path = tmp_path / "out_leveldb"
    with pytest.raises(RuntimeError):
        with db.open_writer(path, "leveldb", commit_every=10) as writer:
            for i in range(25):
                writer.put(b"%08d" % i, b"x")
            raise RuntimeError("interrupted")
    assert len(read_leveldb(path)) == 20


def test_leveldb_writer_refuses_an_existing_path(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(CaffeliteError, match="already exists; refusing to overwrite"):
        db.open_writer(tmp_path / "taken", "leveldb")
    assert list((tmp_path / "taken").iterdir()) == []


def test_an_lmdb_read_as_leveldb_is_a_clear_error_that_leaves_it_untouched(tmp_path):
    source = make_lmdb(tmp_path / "x_lmdb", numbered(2))
    before = sorted(p.name for p in source.iterdir())
    with pytest.raises(FileFormatError) as caught:
        db.open_db(source, caffe_pb2.DataParameter.LEVELDB, layer="layer 'data' (Data)")
    message = str(caught.value)
    assert message.startswith("layer 'data' (Data): cannot open ")
    assert "as a LevelDB database: it has no CURRENT file" in message and "set `backend: LMDB`" in message
    assert sorted(p.name for p in source.iterdir()) == before  # no LOCK or LOG file left behind


def test_a_leveldb_read_as_lmdb_names_the_right_backend(tmp_path):
    source = make_leveldb(tmp_path / "x_leveldb", numbered(2))
    with pytest.raises(FileFormatError, match=r"as an LMDB database: .*it looks like a LevelDB: set `backend: LEVELDB"):
        db.open_db(source, "lmdb")


def test_a_damaged_leveldb_is_a_file_format_error(tmp_path):
    source = make_leveldb(tmp_path / "x_leveldb", numbered(2))
    (source / "CURRENT").write_text("MANIFEST-999999\n")
    with pytest.raises(FileFormatError, match=r"layer 'd' \(Data\): cannot open .*x_leveldb' as a LevelDB database: "):
        db.open_db(source, "leveldb", layer="layer 'd' (Data)")


def test_without_plyvel_leveldb_names_the_package_and_the_alternative(tmp_path, monkeypatch):
    source = make_leveldb(tmp_path / "x_leveldb", numbered(2))
    monkeypatch.setitem(sys.modules, "plyvel", None)  # makes `import plyvel` fail
    expected = r"pip install plyvel.*caffelite\[leveldb\].*backend: LMDB"
    with pytest.raises(CaffeliteError, match=r"layer 'data' \(Data\): cannot read .*x_leveldb': LevelDB.*" + expected):
        db.open_db(source, "leveldb", layer="layer 'data' (Data)")
    with pytest.raises(CaffeliteError, match=r"cannot write .*new_leveldb': LevelDB.*" + expected):
        db.open_writer(tmp_path / "new_leveldb", "leveldb")
    with pytest.raises(CaffeliteError, match=expected):
        db.require_writable_backend("leveldb", tmp_path / "new_leveldb")
    assert not (tmp_path / "new_leveldb").exists()
    db.require_writable_backend("lmdb", tmp_path / "new_lmdb")  # LMDB needs nothing extra


@pytest.mark.parametrize("backend", BACKENDS)
def test_staged_build_renames_only_a_finished_database(tmp_path, backend):
    target = tmp_path / "built_db"
    with pytest.raises(RuntimeError):
        with db.staged_build(target) as building:
            with db.open_writer(building, backend) as writer:
                writer.put(b"a", b"1")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with db.staged_build(target) as building:
        assert building.parent.parent == tmp_path and building.name == target.name
        with db.open_writer(building, backend) as writer:
            writer.put(b"a", b"1")
    assert [p.name for p in tmp_path.iterdir()] == ["built_db"]
    with db.open_db(target, backend) as database:
        assert list(database.items()) == [(b"a", b"1")]
    with pytest.raises(CaffeliteError, match="already exists"):
        with db.staged_build(target):
            pass
