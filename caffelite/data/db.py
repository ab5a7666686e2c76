"""Caffe's key-value databases of serialized records: open one read-only and walk it, or write a new one.

Caffe stores a dataset as an LMDB or a LevelDB directory whose values are serialized `Datum` messages and whose keys
sort in dataset order (`00000000`, `00000001`, ... for convert_mnist_data). Both backends offer the same interface
here: `open_db` gives a database whose `cursor()` walks the records in key order and wraps around at the end, and
`open_writer` gives a writer that commits in batches. LevelDB goes through the optional `plyvel` package.
"""

import contextlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

import lmdb

from caffelite.errors import CaffeliteError, FileFormatError
from caffelite.proto import caffe_pb2
from caffelite.rng import rng

LMDB = "lmdb"
LEVELDB = "leveldb"
_BACKEND_BY_ENUM = {caffe_pb2.DataParameter.LEVELDB: LEVELDB, caffe_pb2.DataParameter.LMDB: LMDB}

# Caffe commits a write transaction every 1000 records (convert_mnist_data, convert_imageset, extract_features).
COMMIT_EVERY = 1000
# Writers start with this map size and double it whenever LMDB reports the map full.
_INITIAL_MAP_SIZE = 64 << 20
# The options Caffe opens every LevelDB with, for reading and for writing (src/caffe/util/db_leveldb.cpp).
LEVELDB_OPTIONS = {"block_size": 65536, "write_buffer_size": 268435456, "max_open_files": 100}

_PLYVEL_MISSING = (
    "LevelDB databases need the plyvel package: install it with `pip install plyvel` "
    "(or `pip install caffelite[leveldb]`), or use LMDB instead (build the dataset with `--backend lmdb` "
    "and set `backend: LMDB` in data_param)"
)


def backend_name(backend):
    """'lmdb' or 'leveldb', from a DataParameter.DB value (LEVELDB = 0, LMDB = 1) or a name in any case."""
    if isinstance(backend, str):
        if backend.lower() in (LMDB, LEVELDB):
            return backend.lower()
    elif backend in _BACKEND_BY_ENUM:
        return _BACKEND_BY_ENUM[backend]
    raise CaffeliteError(f"unknown database backend {backend!r} (known: lmdb, leveldb)")


def open_db(source, backend=LMDB, layer=None):
    """Open the database at `source` read-only; `layer` (e.g. "layer 'mnist' (Data)") prefixes error messages."""
    where = f"{layer}: " if layer else ""
    name = backend_name(backend)
    path = Path(source)
    if not path.exists():
        raise CaffeliteError(f"{where}data source '{source}' does not exist")
    if name == LEVELDB:
        return LevelDbDatabase(path, where)
    return LmdbDatabase(path, where)


def open_writer(path, backend=LMDB, commit_every=COMMIT_EVERY, map_size=_INITIAL_MAP_SIZE):
    """A new database at `path` (which must not exist yet), filled with `put(key, value)`; call `close()` to finish.

    `map_size` is LMDB's initial map size (it grows as needed); a LevelDB is written with Caffe's options.
    """
    if backend_name(backend) == LEVELDB:
        return LevelDbWriter(path, commit_every=commit_every)
    return LmdbWriter(path, commit_every=commit_every, map_size=map_size)


def require_writable_backend(backend, path):
    """Raise unless caffelite can write databases of `backend` (converters check this before any work)."""
    if backend_name(backend) == LEVELDB:
        _plyvel(f"cannot write '{path}': ")


def check_new_path(path):
    """Raise unless a new database can be created at `path`: it must not exist, its directory must."""
    path = Path(path)
    if path.exists():
        raise CaffeliteError(f"'{path}' already exists; refusing to overwrite it (remove it or pick another path)")
    if not path.parent.is_dir():
        raise CaffeliteError(f"cannot create '{path}': directory '{path.parent}' does not exist")


@contextlib.contextmanager
def staged_build(path):
    """Yield a temporary path beside `path` to build a database at; it is renamed to `path` when the block ends
    without an error, and removed otherwise. An interrupted build thus leaves nothing at `path`, and an existing
    `path` is never overwritten (it is checked before and again just before the rename)."""
    path = Path(path)
    check_new_path(path)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        built = staging / path.name
        yield built
        check_new_path(path)  # it may have appeared while we were writing
        os.rename(built, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _plyvel(prefix=""):
    """The plyvel module, or a CaffeliteError saying how to get it (or do without it)."""
    try:
        import plyvel
    except ImportError:
        raise CaffeliteError(f"{prefix}{_PLYVEL_MISSING}") from None
    return plyvel


def _looks_like_lmdb(path):
    return (path / "data.mdb").is_file() if path.is_dir() else path.suffix == ".mdb"


def _looks_like_leveldb(path):
    return path.is_dir() and (path / "CURRENT").is_file()


def _leveldb_message(error):
    message = error.args[0] if error.args else error
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


def _open_lmdb(path):
    # No locking: datasets are not written while they are read, and a lock file cannot be created on a read-only
    # medium. The map size recorded in the file is adopted.
    return lmdb.open(path, subdir=Path(path).is_dir(), readonly=True, lock=False)


def _open_leveldb(path):
    return _plyvel().DB(path, create_if_missing=False, **LEVELDB_OPTIONS)


class _SharedEnvironments:
    """One read-only handle per database path and process, shared by every reader of it.

    Both LMDB and LevelDB refuse to open one database twice in a process, and Caffe nets often do (two test nets,
    or the train and test nets, reading the same source).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._open = {}  # (opener, resolved path) -> [handle, number of users]

    def acquire(self, path, opener=_open_lmdb):
        key = (opener, str(Path(path).resolve()))
        with self._lock:
            if key not in self._open:
                self._open[key] = [opener(key[1]), 0]
            self._open[key][1] += 1
            return self._open[key][0]

    def release(self, path, opener=_open_lmdb):
        key = (opener, str(Path(path).resolve()))
        with self._lock:
            entry = self._open[key]
            entry[1] -= 1
            if entry[1] == 0:
                entry[0].close()
                del self._open[key]


_ENVIRONMENTS = _SharedEnvironments()


class _Database:
    """What LMDB and LevelDB databases share: cursors with rand_skip, a full walk, closing."""

    _opener = None

    def __init__(self, path, where, handle):
        self.path = Path(path)
        self._where = where
        self._handle = handle

    def cursor(self, rand_skip=0, generator=None):
        """A Cursor at the first record, moved on by a random count in [0, rand_skip) when rand_skip > 0.

        The count is drawn from `generator` (default: caffelite's generator), so seeding makes it repeatable.
        """
        cursor = self._new_cursor()
        if rand_skip > 0:
            skip = int((generator or rng()).integers(rand_skip))
            cursor.skip(skip)
        return cursor

    def items(self):
        """Every (key, value) once, in key order (no wrap-around)."""
        raise NotImplementedError

    def _new_cursor(self):
        raise NotImplementedError

    def close(self):
        if self._handle is not None:
            # The last user's close invalidates its transactions, iterators and cursors.
            _ENVIRONMENTS.release(self.path, self._opener)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LmdbDatabase(_Database):
    """A read-only LMDB environment (a directory holding data.mdb, as Caffe makes it, or a bare .mdb file)."""

    _opener = staticmethod(_open_lmdb)

    def __init__(self, path, where=""):
        path = Path(path)
        try:
            handle = _ENVIRONMENTS.acquire(path, self._opener)
        except lmdb.Error as error:
            hint = ""
            if _looks_like_leveldb(path):
                hint = " (it looks like a LevelDB: set `backend: LEVELDB` in data_param, or `--backend leveldb`)"
            raise FileFormatError(f"{where}cannot open '{path}' as an LMDB database: {error}{hint}") from None
        super().__init__(path, where, handle)

    def __len__(self):
        return int(self._handle.stat()["entries"])

    def items(self):
        with self._handle.begin(buffers=False) as txn:
            yield from txn.cursor()

    def _new_cursor(self):
        return LmdbCursor(self._handle, self.path, self._where)


class LevelDbDatabase(_Database):
    """A LevelDB directory (CURRENT, MANIFEST-*, *.ldb / *.sst, ...), opened with Caffe's options."""

    _opener = staticmethod(_open_leveldb)

    def __init__(self, path, where=""):
        path = Path(path)
        plyvel = _plyvel(f"{where}cannot read '{path}': ")
        if not _looks_like_leveldb(path):
            # Checked first because LevelDB would leave LOCK and LOG files behind in whatever directory it tried.
            hint = " (it looks like an LMDB: set `backend: LMDB` in data_param)" if _looks_like_lmdb(path) else ""
            raise FileFormatError(f"{where}cannot open '{path}' as a LevelDB database: it has no CURRENT file{hint}")
        try:
            handle = _ENVIRONMENTS.acquire(path, self._opener)
        except plyvel.Error as error:
            raise FileFormatError(
                f"{where}cannot open '{path}' as a LevelDB database: {_leveldb_message(error)}"
            ) from None
        super().__init__(path, where, handle)

    def __len__(self):
        # LevelDB keeps no record count; count the keys.
        return sum(1 for _ in self._handle.iterator(include_value=False))

    def items(self):
        iterator = self._handle.iterator()
        try:
            yield from iterator
        finally:
            iterator.close()

    def _new_cursor(self):
        return LevelDbCursor(self._handle, self.path, self._where)


class Cursor:
    """Walks the records in key order and starts again at the first after the last (Caffe's data layer never
    runs dry); `epochs` counts those wrap-arounds and `offset` the records passed. Subclasses say how to go to the
    first and the next record."""

    def __init__(self, path, where=""):
        self.path = path
        self.epochs = 0
        self.offset = 0
        if not self._first():
            raise FileFormatError(f"{where}database '{path}' is empty")

    @property
    def key(self):
        return self.item()[0]

    @property
    def value(self):
        return self.item()[1]

    def item(self):
        """The current (key, value)."""
        raise NotImplementedError

    def next(self):
        self.offset += 1
        if not self._next():
            self._first()
            self.epochs += 1

    def skip(self, count):
        for _ in range(count):
            self.next()

    def read(self, count, share=(0, 1)):
        """The next `count` records as a list of (key, value) pairs, leaving the cursor just past them.

        share = (rank, size): keep only the records whose offset is rank modulo size, passing over the others
        (Caffe's parallel readers: each of `size` processes reads its own share of the records).
        """
        rank, size = share
        records = []
        while len(records) < count:
            if self.offset % size == rank:
                records.append(self.item())
            self.next()
        return records

    def _first(self):
        """Go to the first record; False when there is none."""
        raise NotImplementedError

    def _next(self):
        """Go to the next record; False past the last one."""
        raise NotImplementedError

    def close(self):
        raise NotImplementedError


class LmdbCursor(Cursor):
    def __init__(self, env, path, where=""):
        self._txn = env.begin(buffers=False)
        self._cursor = self._txn.cursor()
        super().__init__(path, where)

    def item(self):
        return self._cursor.item()

    def _first(self):
        return self._cursor.first()

    def _next(self):
        return self._cursor.next()

    def close(self):
        self._txn.abort()


class LevelDbCursor(Cursor):
    def __init__(self, db, path, where=""):
        self._iterator = db.iterator()  # reads one implicit snapshot of the database
        self._item = None
        super().__init__(path, where)

    def item(self):
        return self._item

    def _first(self):
        self._iterator.seek_to_start()
        return self._next()

    def _next(self):
        self._item = next(self._iterator, None)
        return self._item is not None

    def close(self):
        self._iterator.close()


class _Writer:
    """Builds a new database: records are buffered and written `commit_every` at a time (Caffe's transactions)."""

    def __init__(self, path, commit_every):
        self.path = Path(path)
        check_new_path(self.path)
        self.commit_every = max(1, int(commit_every))
        self.count = 0  # records committed so far
        self._pending = []

    def put(self, key, value):
        if isinstance(key, str):
            key = key.encode()
        self._pending.append((key, bytes(value)))
        if len(self._pending) >= self.commit_every:
            self.commit()

    def commit(self):
        if not self._pending:
            return
        self._write(self._pending)
        self.count += len(self._pending)
        self._pending.clear()

    def close(self):
        """Commit what is pending, flush to disk and close."""
        if not self._is_open():
            return
        try:
            self.commit()
            self._flush()
        finally:
            self.abort()

    def abort(self):
        """Drop what is not committed yet and close (the directory stays; its committed records are intact)."""
        self._pending.clear()
        if self._is_open():
            self._close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def _write(self, records):
        raise NotImplementedError

    def _flush(self):
        raise NotImplementedError

    def _is_open(self):
        raise NotImplementedError

    def _close(self):
        raise NotImplementedError


class LmdbWriter(_Writer):
    """A new LMDB directory; the map doubles whenever it fills up (Caffe's LMDBTransaction does the same)."""

    def __init__(self, path, commit_every=COMMIT_EVERY, map_size=_INITIAL_MAP_SIZE):
        super().__init__(path, commit_every)
        self.path.mkdir()
        # No fsync per transaction: close() syncs once, and callers that need atomicity build into a temporary
        # directory and rename it into place after close().
        self._env = lmdb.open(str(self.path), map_size=map_size, subdir=True, sync=False, mode=0o664)

    def _write(self, records):
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for key, value in records:
                        txn.put(key, value)
                return
            except lmdb.MapFullError:
                # The failed transaction was aborted; grow the map and write the whole batch again.
                self._env.set_mapsize(2 * self._env.info()["map_size"])

    def _flush(self):
        self._env.sync(True)

    def _is_open(self):
        return self._env is not None

    def _close(self):
        self._env.close()
        self._env = None


class LevelDbWriter(_Writer):
    """A new LevelDB directory, created with Caffe's options (create_if_missing, error_if_exists, a 256 MiB write
    buffer, 64 KiB blocks); each batch is one WriteBatch."""

    def __init__(self, path, commit_every=COMMIT_EVERY):
        plyvel = _plyvel(f"cannot write '{path}': ")
        super().__init__(path, commit_every)
        try:
            self._db = plyvel.DB(str(self.path), create_if_missing=True, error_if_exists=True, **LEVELDB_OPTIONS)
        except plyvel.Error as error:
            raise CaffeliteError(f"cannot create LevelDB '{self.path}': {_leveldb_message(error)}") from None

    def _write(self, records):
        with self._db.write_batch() as batch:
            for key, value in records:
                batch.put(key, value)

    def _flush(self):
        # A synchronous empty write makes LevelDB fsync its log, which holds every earlier write not yet in a table.
        self._db.write_batch(sync=True).write()

    def _is_open(self):
        return self._db is not None

    def _close(self):
        self._db.close()
        self._db = None
