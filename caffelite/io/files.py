"""Whole-file reads whose errors name the path, and atomic writes."""

import os
import tempfile
from pathlib import Path

from caffelite.errors import CaffeliteError, FileFormatError

# protobuf cannot hold a message of 2 GiB or more; Caffe's own reader stops at the same limit.
PROTOBUF_MAX_BYTES = 2**31 - 1


def read_bytes(path, max_bytes=PROTOBUF_MAX_BYTES):
    """The content of `path`, or a CaffeliteError naming it (missing, unreadable, larger than `max_bytes`)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            # A device or pipe reports size 0 and may never end: read no more than the limit either way.
            data = handle.read(max_bytes + 1) if size <= max_bytes else b""
            if size > max_bytes or len(data) > max_bytes:
                raise FileFormatError(f"{name}: {max(size, len(data))} bytes or more is more than this kind of file "
                                      f"may hold ({max_bytes})")
            return data
    except FileNotFoundError:
        raise CaffeliteError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise CaffeliteError(f"{name}: is a directory, not a file") from None
    except OSError as exc:
        raise CaffeliteError(f"{name}: cannot read ({exc.strerror or exc})") from exc


def read_data_file(path, what, where=""):
    """The bytes of `path`, or a CaffeliteError that calls it `what` ("image file", ...), after `where` if given."""
    prefix = f"{where}: " if where else ""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CaffeliteError(f"{prefix}{what} '{path}' does not exist") from None
    except OSError as error:
        raise CaffeliteError(f"{prefix}cannot read {what} '{path}': {error.strerror or error}") from None


def read_text_file(path, what, where="", errors="strict"):
    """The UTF-8 text of `path` (a list or window file), or a CaffeliteError that calls it `what`, after `where`.

    `errors="surrogateescape"` keeps undecodable bytes, for file names that must survive byte for byte.
    """
    prefix = f"{where}: " if where else ""
    try:
        return Path(path).read_text(encoding="utf-8", errors=errors)
    except FileNotFoundError:
        raise CaffeliteError(f"{prefix}{what} '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CaffeliteError(f"{prefix}cannot read {what} '{path}': {error}") from None


def atomic_write(path, data):
    """Write `data` to `path` so that `path` holds either its old content or all of `data`, never a part."""
    name = os.fspath(path)
    try:
        _replace_atomically(name, data)
    except OSError as exc:
        raise CaffeliteError(f"{name}: cannot write ({exc.strerror or exc})") from exc


def _replace_atomically(name, data):
    # A temporary file in the same directory, so that os.replace is a rename within one filesystem.
    directory = os.path.dirname(os.path.abspath(name))
    fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(name)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, _NEW_FILE_MODE)  # mkstemp makes 0600; a saved model should be as readable as any new file
        os.replace(temp, name)
    except BaseException:
        _remove_quietly(temp)
        raise
    _sync_directory(directory)


def _sync_directory(directory):
    """Make the rename itself durable (a power cut after it must not bring the old entry back)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some systems cannot open a directory; the data itself is already on disk
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _process_umask():
    # The only portable way to read the umask is to set it and put it back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~_process_umask()
