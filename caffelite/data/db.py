"""Caffe's key-value databases of serialized records: open one read-only and walk it, or write a new one.

Caffe stores a dataset as an LMDB (or LevelDB) directory whose values are serialized `Datum` messages and whose keys
sort in dataset order (`00000000`, `00000001`, ... for convert_mnist_data). Only LMDB is supported for now.
"""

import threading
from pathlib import Path

import lmdb

from caffelite.errors import CaffeliteError, FileFormatError
from caffelite.proto import caffe_pb2
from caffelite.rng import rng

LMDB = "lmdb"
LEVELDB = "leveldb"
_BACKEND_BY_ENUM = {caffe_pb2.DataParameter.LEVELDB: LEVELDB, caffe_pb2.DataParameter.LMDB: LMDB}

# Caffe commits a write transaction every 1000 records (convert_mnist_data, convert_imageset).
COMMIT_EVERY = 1000
# Writers start with this map size and double it whenever LMDB reports the map full.
_INITIAL_MAP_SIZE = 64 << 20

_LEVELDB_UNSUPPORTED = (
    "LevelDB is not supported yet; convert the dataset with `caffelite convert_imageset --backend lmdb` "
    "(or caffelite's MNIST converter) and read it as LMDB (`backend: LMDB` in data_param)"
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
        hint = " (this source looks like an LMDB already: set `backend: LMDB`)" if _looks_like_lmdb(path) else ""
        raise CaffeliteError(f"{where}cannot read '{source}': {_LEVELDB_UNSUPPORTED}{hint}")
    return LmdbDatabase(path, where)


def open_writer(path, backend=LMDB, commit_every=COMMIT_EVERY, map_size=_INITIAL_MAP_SIZE):
    """A new database at `path` (which must not exist yet), filled with `put(key, value)`; call `close()` to finish."""
    require_writable_backend(backend, path)
    return LmdbWriter(path, commit_every=commit_every, map_size=map_size)


def require_writable_backend(backend, path):
    """Raise unless caffelite can write databases of `backend` (converters check this before any work)."""
    if backend_name(backend) == LEVELDB:
        raise CaffeliteError(f"cannot write '{path}': {_LEVELDB_UNSUPPORTED}")


def _looks_like_lmdb(path):
    return (path / "data.mdb").is_file() if path.is_dir() else path.suffix == ".mdb"


def _looks_like_leveldb(path):
    return path.is_dir() and (path / "CURRENT").is_file()


class _SharedEnvironments:
    """One read-only LMDB environment per path and process, shared by every reader of it.

    LMDB refuses to open one environment twice in a process, and Caffe nets often do (two test nets, or the
    train and test nets, reading the same source).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._open = {}  # resolved path -> [environment, number of users]

    def acquire(self, path):
        key = str(Path(path).resolve())
        with self._lock:
            if key not in self._open:
                # No locking: datasets are not written while they are read, and a lock file cannot be created on
                # a read-only medium. The map size recorded in the file is adopted.
                self._open[key] = [lmdb.open(key, subdir=Path(key).is_dir(), readonly=True, lock=False), 0]
            self._open[key][1] += 1
            return self._open[key][0]

    def release(self, path):
        key = str(Path(path).resolve())
        with self._lock:
            entry = self._open[key]
            entry[1] -= 1
            if entry[1] == 0:
                entry[0].close()
                del self._open[key]


_ENVIRONMENTS = _SharedEnvironments()


class LmdbDatabase:
    """A read-only LMDB environment (a directory holding data.mdb, as Caffe makes it, or a bare .mdb file)."""

    def __init__(self, path, where=""):
        self.path = Path(path)
        self._where = where
        try:
            self._env = _ENVIRONMENTS.acquire(self.path)
        except lmdb.Error as error:
            hint = " (it looks like a LevelDB: " + _LEVELDB_UNSUPPORTED + ")" if _looks_like_leveldb(self.path) else ""
            raise FileFormatError(f"{where}cannot open '{self.path}' as an LMDB database: {error}{hint}") from None

    def __len__(self):
        return int(self._env.stat()["entries"])

    def cursor(self, rand_skip=0, generator=None):
        """A Cursor at the first record, moved on by a random count in [0, rand_skip) when rand_skip > 0.

        The count is drawn from `generator` (default: caffelite's generator), so seeding makes it repeatable.
        """
        cursor = Cursor(self._env, self.path, self._where)
        if rand_skip > 0:
            skip = int((generator or rng()).integers(rand_skip))
            cursor.skip(skip)
        return cursor

    def close(self):
        if self._env is not None:
            _ENVIRONMENTS.release(self.path)  # the last user's close invalidates its transactions and cursors
            self._env = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Cursor:
    """Walks the records in key order and starts again at the first after the last (Caffe's data layer never
    runs dry); `epochs` counts those wrap-arounds."""

    def __init__(self, env, path, where=""):
        self.path = path
        self._txn = env.begin(buffers=False)
        self._cursor = self._txn.cursor()
        self.epochs = 0
        if not self._cursor.first():
            raise FileFormatError(f"{where}database '{path}' is empty")

    @property
    def key(self):
        return self._cursor.key()

    @property
    def value(self):
        return self._cursor.value()

    def next(self):
        if not self._cursor.next():
            self._cursor.first()
            self.epochs += 1

    def skip(self, count):
        for _ in range(count):
            self.next()

    def read(self, count):
        """The next `count` records as a list of (key, value) pairs, leaving the cursor just past them."""
        records = []
        for _ in range(count):
            records.append(self._cursor.item())
            self.next()
        return records

    def close(self):
        self._txn.abort()


class LmdbWriter:
    """Builds a new LMDB directory: records are buffered and committed `commit_every` at a time; the map doubles
    whenever it fills up (Caffe's LMDBTransaction does the same)."""

    def __init__(self, path, commit_every=COMMIT_EVERY, map_size=_INITIAL_MAP_SIZE):
        self.path = Path(path)
        if self.path.exists():
            raise CaffeliteError(
                f"'{self.path}' already exists; refusing to overwrite it (remove it or pick another path)"
            )
        if not self.path.parent.is_dir():
            raise CaffeliteError(f"cannot create '{self.path}': directory '{self.path.parent}' does not exist")
        self.commit_every = max(1, int(commit_every))
        self.count = 0  # records committed so far
        self._pending = []
        self.path.mkdir()
        # No fsync per transaction: close() syncs once, and callers that need atomicity build into a temporary
        # directory and rename it into place after close().
        self._env = lmdb.open(str(self.path), map_size=map_size, subdir=True, sync=False, mode=0o664)

    def put(self, key, value):
        if isinstance(key, str):
            key = key.encode()
        self._pending.append((key, bytes(value)))
        if len(self._pending) >= self.commit_every:
            self.commit()

    def commit(self):
        if not self._pending:
            return
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for key, value in self._pending:
                        txn.put(key, value)
                break
            except lmdb.MapFullError:
                # The failed transaction was aborted; grow the map and write the whole batch again.
                self._env.set_mapsize(2 * self._env.info()["map_size"])
        self.count += len(self._pending)
        self._pending.clear()

    def close(self):
        """Commit what is pending, flush to disk and close."""
        if self._env is None:
            return
        try:
            self.commit()
            self._env.sync(True)
        finally:
            self.abort()

    def abort(self):
        """Drop what is not committed yet and close (the directory stays; its committed records are intact)."""
        self._pending.clear()
        if self._env is not None:
            self._env.close()
            self._env = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
