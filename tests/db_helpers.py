"""Read a whole database with the raw lmdb/plyvel packages, independently of caffelite.data.db under test."""

import lmdb
import plyvel


def read_lmdb(path):
    """Every (key, value) of an LMDB, in key order."""
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        records = list(txn.cursor())
    env.close()
    return records


def read_leveldb(path):
    """Every (key, value) of a LevelDB, in key order."""
    handle = plyvel.DB(str(path))
    try:
        return list(handle.iterator())
    finally:
        handle.close()
